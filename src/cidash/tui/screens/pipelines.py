"""Pipelines: the newest pipelines, paged lazily from SQL, filterable with ``/`` (ref:, status:, source:, words)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from cidash.formatting import fmt_time
from cidash.textsafe import clean
from cidash.tui.screens.base import KNOWN_STATUSES, TabView, plural, seconds_in, status_text, texts
from cidash.tui.widgets.table import NavTable

if TYPE_CHECKING:
    from cidash.tui.data import PipelineFilter, PipelineRow

PAGE = 100

#: The most telling columns first: at 80 columns id, status, ref, start-up, cache and image stay in view (the
#: id column is frozen when the table scrolls sideways).
COLUMNS = (
    "Pipeline",
    "Status",
    "Ref",
    "Start-up",
    "Cache",
    "Image",
    "Created",
    "Duration",
    "Queue",
    "Source",
    "Jobs",
)


class PipelinesView(TabView):
    class Page(Message):
        """A page of rows arrived (``replace``: a new query, not a continuation)."""

        def __init__(self, rows: list[PipelineRow], total: int, replace: bool, generation: int, started: float) -> None:
            super().__init__()
            self.rows = rows
            self.total = total
            self.replace = replace
            self.generation = generation
            self.started = started

    def __init__(self) -> None:
        super().__init__(id="pipelines-view")
        self.filter: PipelineFilter | None = None  # None: no filter (cidash.tui.data is imported when it loads)
        self.filter_text = ""
        self.loaded = 0
        self.total = 0
        self.generation = 0
        self.loading = False
        self.last_filter_ms: float | None = None
        self.rows: dict[int, PipelineRow] = {}

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="filter: ref:main status:failed source:push, or words; Enter applies, Esc closes",
            id="pipeline-filter",
            classes="hidden",
        )
        yield Static("", id="pipelines-summary")
        yield NavTable(id="pipelines-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#pipelines-table", DataTable)
        for label in COLUMNS:
            table.add_column(label, key=label.lower())
        self.ready()

    # -- loading ----------------------------------------------------------------------------------------------

    def reload(self) -> None:
        """Load the first page of the current filter (once the tab is mounted: a tab never shown reads nothing)."""
        self.when_ready("reload", self._reload)

    def _reload(self) -> None:
        self.generation += 1
        self._fetch(self.filter, 0, self.generation, time.perf_counter())

    @work(thread=True, exclusive=True, group="pipelines")
    def _fetch(self, filt: PipelineFilter | None, offset: int, generation: int, started: float) -> None:
        from cidash.tui.data import PipelineFilter, count_pipelines, query_pipelines

        project = self.dash.project
        if project is None:
            return
        store = self.dash.store
        filt = filt or PipelineFilter()
        rows = query_pipelines(store, project.id, filt, offset=offset, limit=PAGE)
        if offset:
            total = self.total
        elif len(rows) < PAGE:
            total = len(rows)  # every match is on this first page: no second scan to count them
        else:
            total = count_pipelines(store, project.id, filt)
        self.post_message(self.Page(rows, total, offset == 0, generation, started))

    def on_pipelines_view_page(self, message: Page) -> None:
        if message.generation != self.generation:
            return  # a newer query replaced this one
        table = self.query_one("#pipelines-table", DataTable)
        if message.replace:
            table.clear()
            self.rows.clear()
            self.loaded = 0
        self.total = message.total
        ref_width = 16 if self.app.size.width < 100 else 32  # at 80 columns the image column stays in view
        for r in message.rows:
            p = r.pipeline
            if str(p.id) in table.rows:
                continue
            table.add_row(
                *texts(
                    (
                        f"#{p.id}",
                        status_text(p.status),
                        p.ref if len(p.ref) <= ref_width else p.ref[: ref_width - 1] + "…",
                        seconds_in(r.startup_median, "s"),
                        r.cache_summary,
                        r.image,
                        fmt_time(p.created_at),
                        seconds_in(p.duration, "min"),
                        seconds_in(p.queued_duration, "s"),
                        p.source or "",
                        str(r.jobs),
                    )
                ),
                key=str(p.id),
            )
            self.rows[p.id] = r
        self.loaded += len(message.rows)
        self.loading = False
        if message.replace:
            self.last_filter_ms = (time.perf_counter() - message.started) * 1000
        shown = f"{self.loaded} of {plural(self.total, 'pipeline')}"
        if self.filter_text:
            shown += f" matching `{self.filter_text}`"
        summary = Text(clean(shown) + " · Enter opens a pipeline · / filters", style="dim")
        status = self.filter.status if self.filter is not None else None
        if status is not None and status not in KNOWN_STATUSES:
            known = ", ".join(sorted(KNOWN_STATUSES))
            summary.append(clean(f"\nunknown status `{status}` (GitLab's are: {known})"), style="bold yellow")
        self.query_one("#pipelines-summary", Static).update(summary)

    def highlighted_pipeline_id(self) -> int | None:
        if not self.view_ready:
            return None
        table = self.query_one("#pipelines-table", DataTable)
        if not 0 <= table.cursor_row < table.row_count:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return int(key) if key and key.isdigit() else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id != "pipelines-table":
            return
        if not self.loading and self.loaded < self.total and event.cursor_row >= self.loaded - 20:
            self.loading = True
            self._fetch(self.filter, self.loaded, self.generation, time.perf_counter())

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "pipelines-table" and event.row_key.value:
            self.dash.open_pipeline(int(event.row_key.value))

    # -- filtering --------------------------------------------------------------------------------------------

    def start_filter(self) -> bool:
        self.when_ready("filter", self._open_filter)
        return True

    def _open_filter(self) -> None:
        if not self.shown:
            return
        box = self.query_one("#pipeline-filter", Input)
        box.remove_class("hidden")
        box.focus()  # after the style update that shows it (a hidden box cannot take the focus)

    def apply_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        from cidash.tui.data import PipelineFilter

        self.filter = PipelineFilter.parse(self.filter_text)
        self.reload()

    @on(Input.Submitted, "#pipeline-filter")
    def _submitted(self, event: Input.Submitted) -> None:
        self.apply_filter(event.value)
        if not event.value.strip():
            event.input.add_class("hidden")
        self.query_one("#pipelines-table", DataTable).focus()

    @on(Input.Changed, "#pipeline-filter")
    def _changed(self, event: Input.Changed) -> None:
        self.apply_filter(event.value)
