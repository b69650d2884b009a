"""Drill-down screens: a pipeline's jobs with stacked phase bars, and one job's log with foldable sections."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Collapsible, DataTable, Footer, Static

from cidash.errors import CidashError
from cidash.models import Job, Pipeline
from cidash.textsafe import clean, markup_escape, safe_log_text
from cidash.tui.charts import phase_bar, phase_legend
from cidash.tui.data import JobRow, fmt_seconds, fmt_time, pipeline_jobs
from cidash.tui.logview import LogSection, split_sections
from cidash.tui.screens.base import status_text, texts
from cidash.tui.widgets.table import NavTable

if TYPE_CHECKING:
    from cidash.tui.app import CidashApp


def _job_title(j: Job, rest: str) -> Text:
    """``Job 123 name · status · rest``: the GitLab strings cleaned, never read as markup."""
    return Text.assemble((clean(f"Job {j.id} {j.name}"), "bold"), clean(f" · {j.status} · ") + rest)


def _facts_text(row: JobRow) -> Text:
    j = row.job
    text = Text()
    text.append(clean(f"job {j.id} {j.name}"), style="bold")
    text.append(clean(f"  stage {j.stage} · {j.status}"))
    if j.failure_reason:
        text.append(clean(f" ({j.failure_reason})"), style="red")
    text.append(clean(f" · runner {j.runner or '?'} · queued {fmt_seconds(j.queued_duration)}") + "\n")
    f = row.facts
    if f is None:
        text.append("log not parsed (not fetched yet, skipped, or unavailable)", style="dim")
        return text
    facts = f.facts
    if facts.image is not None:
        pulled = {True: "pulled", False: "found locally", None: "pull unknown"}[facts.image.pulled]
        text.append(clean(f"image {facts.image.name} ({pulled}) {facts.image.digest or ''}") + "\n")
    text.append(f"start-up {fmt_seconds(facts.startup_seconds)}")
    text.append(clean(f" · runner {facts.runner_version or '?'} {facts.executor or ''}"))
    if facts.truncated:
        text.append(" · log truncated", style="yellow")
    text.append("\n")
    for ev in facts.cache:
        style = (
            "green"
            if ev.outcome in ("hit", "created", "up_to_date")
            else "red"
            if ev.outcome in ("miss", "failed")
            else "dim"
        )
        text.append(clean(f"cache {ev.op} {ev.key}: "), style="")
        text.append(clean(ev.outcome), style=style)
        if ev.detail:
            text.append(clean(f" ({ev.detail})"), style="dim")
        text.append("\n")
    return text


class PipelineScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]

    class Loaded(Message):
        def __init__(self, rows: list[JobRow], pipeline: Pipeline | None) -> None:
            super().__init__()
            self.rows = rows
            self.pipeline = pipeline

    def __init__(self, pipeline_id: int) -> None:
        super().__init__()
        self.pipeline_id = pipeline_id
        self.rows: list[JobRow] = []

    @property
    def dash(self) -> CidashApp:
        return cast("CidashApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static(f"[b]Pipeline #{self.pipeline_id}[/b] · loading…", id="pipeline-title")
        yield Static(phase_legend(), id="phase-legend")
        yield NavTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="job-facts")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#jobs-table", DataTable)
        table.add_columns("Job", "Name", "Stage", "Status", "Duration", "Start-up", "Phases", "Cache")
        self._load()

    @work(thread=True, exclusive=True, group="pipeline-detail")
    def _load(self) -> None:
        store = self.dash.store
        self.post_message(self.Loaded(pipeline_jobs(store, self.pipeline_id), store.pipeline(self.pipeline_id)))

    def on_pipeline_screen_loaded(self, message: Loaded) -> None:
        self.rows = message.rows
        pipeline = message.pipeline
        title = Text(f"Pipeline #{self.pipeline_id}", style="bold")
        if pipeline is not None:
            title.append(
                clean(
                    f" · {pipeline.ref} @ {pipeline.sha[:8]} · {pipeline.status} · {pipeline.source or ''} · "
                    f"created {fmt_time(pipeline.created_at)} · duration {fmt_seconds(pipeline.duration)}"
                )
            )
        title.append(f" · {len(self.rows)} jobs · Enter opens the log")
        self.query_one("#pipeline-title", Static).update(title)
        scale = max((sum(v or 0 for v in r.phases().values()) for r in self.rows), default=0.0)
        bar = max(12, min(30, self.app.size.width - 66))  # 30 cells, fewer when the columns before need them
        table = self.query_one("#jobs-table", DataTable)
        table.clear()
        for r in self.rows:
            j = r.job
            cache = ""
            if r.facts is not None:
                outs = [ev.outcome for ev in r.facts.facts.cache if ev.op == "restore"]
                cache = ", ".join(outs)
            name = j.name + (" (retried)" if j.retried else "")
            table.add_row(
                *texts(
                    (
                        str(j.id),
                        name,
                        j.stage,
                        status_text(j.status),
                        fmt_seconds(j.duration),
                        fmt_seconds(r.facts.facts.startup_seconds if r.facts else None),
                        phase_bar(r.phases(), bar, scale),
                        cache,
                    )
                ),
                key=str(j.id),
            )
        if self.rows:
            self.query_one("#job-facts", Static).update(_facts_text(self.rows[0]))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.rows):
            self.query_one("#job-facts", Static).update(_facts_text(self.rows[event.cursor_row]))

    def selected_link(self) -> tuple[str, int | None]:
        job = self.highlighted_job_id()
        return ("job", job) if job is not None else ("pipeline", self.pipeline_id)

    def highlighted_job_id(self) -> int | None:
        row = self.query_one("#jobs-table", DataTable).cursor_row
        return self.rows[row].job.id if 0 <= row < len(self.rows) else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if 0 <= event.cursor_row < len(self.rows):
            row = self.rows[event.cursor_row]
            self.app.push_screen(JobLogScreen(row))


class JobLogScreen(Screen[None]):
    """A job's log split into sections (``Collapsible``; runner sections start folded)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("plus", "expand_all", "Expand all", key_display="+"),
        Binding("minus", "collapse_all", "Collapse all", key_display="-"),
    ]

    class Loaded(Message):
        def __init__(self, sections: list[LogSection], note: str) -> None:
            super().__init__()
            self.sections = sections
            self.note = note

    def __init__(self, row: JobRow) -> None:
        super().__init__()
        self.row = row

    @property
    def dash(self) -> CidashApp:
        return cast("CidashApp", self.app)

    def compose(self) -> ComposeResult:
        j = self.row.job
        yield Static(_job_title(j, "loading the log…"), id="log-title")
        yield VerticalScroll(id="log-sections")
        yield Footer()

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="job-log")
    def _load(self) -> None:
        j = self.row.job
        fetch = self.dash.log_fetcher
        if fetch is not None:
            try:
                data = fetch(j.project_id, j.id)
                self.post_message(self.Loaded(split_sections(data.decode("utf-8", "replace")), "from GitLab"))
                return
            except CidashError as exc:
                self.dash.call_from_thread(self.dash.report_error, exc)
        sections = []
        if self.row.facts is not None:
            for s in self.row.facts.facts.sections:
                sections.append(
                    LogSection(
                        s.name,
                        header="(log text not available: section timing from the store)",
                        start=int(s.start),
                        end=int(s.end) if s.end is not None else None,
                        collapsed=True,
                    )
                )
        self.post_message(self.Loaded(sections, "sections from the store (no connection for the log text)"))

    async def on_job_log_screen_loaded(self, message: Loaded) -> None:
        j = self.row.job
        self.query_one("#log-title", Static).update(
            _job_title(j, f"{len(message.sections)} sections ({message.note}) · Enter/click folds · + / - all")
        )
        box = self.query_one("#log-sections", VerticalScroll)
        await box.remove_children()
        widgets = []
        for s in message.sections:
            dur = f" ({s.duration} s)" if s.duration is not None else ""
            header = safe_log_text(s.header).plain[:80]
            title = markup_escape(f"{s.name or 'output'}{dur}  {header}")
            body = safe_log_text("\n".join(s.lines)) if s.lines else Text("(empty)", style="dim")
            collapsed = s.collapsed or s.name not in ("step_script", "build_script", "")
            widgets.append(Collapsible(Static(body, markup=False), title=title, collapsed=collapsed))
        await box.mount_all(widgets)

    def action_expand_all(self) -> None:
        for c in self.query(Collapsible):
            c.collapsed = False

    def action_collapse_all(self) -> None:
        for c in self.query(Collapsible):
            c.collapsed = True
