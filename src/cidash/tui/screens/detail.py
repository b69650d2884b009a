"""Drill-down screens: a pipeline's jobs with stacked phase bars, and one job's log with foldable sections."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static

from cidash.errors import CidashError
from cidash.models import Job, Pipeline
from cidash.textsafe import clean
from cidash.tui.charts import phase_bar, phase_legend
from cidash.tui.data import JobRow, fmt_seconds, fmt_time, pipeline_jobs
from cidash.tui.logview import LogSection, Row, find, first_error, split_sections
from cidash.tui.screens.base import seconds_in, status_text, texts
from cidash.tui.widgets.footer import KeyFooter
from cidash.tui.widgets.loglines import LogLines
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
    if j.started_at is None and not j.runner:  # a manual, skipped or created job: no runner took it
        text.append(" · never started\n")
    else:
        text.append(clean(f" · runner {j.runner or 'unknown'} · queued {fmt_seconds(j.queued_duration)}") + "\n")
    f = row.facts
    if f is None:
        if j.started_at is None:
            text.append("no log: the job never ran", style="dim")
        else:
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
        self.loads = 0  # how many times the jobs were (re)loaded: the screen is live

    @property
    def dash(self) -> CidashApp:
        return cast("CidashApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static(f"[b]Pipeline #{self.pipeline_id}[/b] · loading…", id="pipeline-title")
        yield Static(phase_legend(), id="phase-legend")
        yield Static("", id="pipeline-activity", classes="hidden")
        yield NavTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="job-facts")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one("#jobs-table", DataTable)
        table.add_columns("Job", "Name", "Stage", "Status", "Duration", "Start-up", "Phases", "Cache")
        self._load()

    def refresh_data(self) -> None:
        """Called by the App after each refresh (poll, r, a followed action): the jobs reload from the store."""
        self._load()

    def show_activity(self, text: str) -> None:
        """A followed rebuild or retry's progress, on this screen (the header is under it)."""
        box = self.query_one("#pipeline-activity", Static)
        box.update(Text(clean(text), style="bold cyan"))
        box.set_class(not text, "hidden")

    @work(thread=True, exclusive=True, group="pipeline-detail")
    def _load(self) -> None:
        store = self.dash.store
        self.post_message(self.Loaded(pipeline_jobs(store, self.pipeline_id), store.pipeline(self.pipeline_id)))

    def on_pipeline_screen_loaded(self, message: Loaded) -> None:
        self.loads += 1
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
        keep = self.highlighted_job_id() if table.row_count else None
        cursor = table.cursor_row
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
                        seconds_in(j.duration, "s"),
                        seconds_in(r.facts.facts.startup_seconds if r.facts else None, "s"),
                        phase_bar(r.phases(), bar, scale),
                        cache,
                    )
                ),
                key=str(j.id),
            )
        if self.rows:
            ids = [r.job.id for r in self.rows]
            row = ids.index(keep) if keep in ids else min(max(cursor, 0), len(ids) - 1)
            table.move_cursor(row=row, animate=False)
            self.query_one("#job-facts", Static).update(_facts_text(self.rows[row]))

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


#: Job statuses with no log yet (the job never started), and what the log screen says for each.
NEVER_RAN = {
    "manual": "This manual job has never run, so it has no log: play it in GitLab (b rebuilds the CI image).",
    "created": "This job has not started yet (created): no log so far.",
    "pending": "This job is waiting for a runner (pending): no log so far.",
    "waiting_for_resource": "This job waits for its resource group: no log so far.",
    "scheduled": "This job is scheduled and has not started: no log so far.",
    "skipped": "This job was skipped (an earlier stage failed or a rule excluded it): it has no log.",
    "canceled": "This job was canceled before it started: it has no log.",
}

#: How often a running job's log is re-fetched while its screen is open.
TAIL_SECONDS = 5.0

#: Statuses whose log still grows: the screen re-fetches it with each poll (tailing).
LIVE = ("running", "pending", "created", "waiting_for_resource", "preparing")


class JobLogScreen(Screen[None]):
    """A job's log, dense (:class:`LogLines`): one row per folded section with its duration, line numbers,
    timestamps when the log has them; search, first error, fold all / unfold all keeping the view."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("slash", "search", "Search", key_display="/"),
        Binding("n", "next_match(1)", "Next", show=False),
        Binding("N", "next_match(-1)", "Previous", show=False),
        Binding("E", "first_error", "Error", key_display="E"),
        # +/- are in the ? help and the log's own hint line; the footer keeps its room for quit and export at 80x24
        Binding("plus", "expand_all", "Unfold all", key_display="+", show=False),
        Binding("minus", "collapse_all", "Fold all", key_display="-", show=False),
    ]

    class Loaded(Message):
        def __init__(self, sections: list[LogSection], note: str, job: Job, keep: bool) -> None:
            super().__init__()
            self.sections = sections
            self.note = note
            self.job = job
            self.keep = keep

    def __init__(self, row: JobRow) -> None:
        super().__init__()
        self.row = row
        self.job = row.job
        self.sections: list[LogSection] = []
        self.note = ""
        self.matches: list[Row] = []
        self.match = -1
        self._tail: Timer | None = None

    @property
    def dash(self) -> CidashApp:
        return cast("CidashApp", self.app)

    def compose(self) -> ComposeResult:
        yield Static(_job_title(self.job, "loading the log…"), id="log-title")
        yield LogLines(id="log-lines")
        yield Input(placeholder="search the log (Enter finds, n / N next / previous, Esc closes)", id="log-search")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#log-search", Input).display = False
        self.query_one(LogLines).focus()
        self._load(False)

    def selected_link(self) -> tuple[str, int | None]:
        return "job", self.job.id

    def refresh_data(self) -> None:
        """Called by the App after each poll: a running job's log tails (re-fetched, the view follows the end)."""
        if self.job.status in LIVE or self.job.started_at is None:
            self._load(True)

    @work(thread=True, exclusive=True, group="job-log")
    def _load(self, keep: bool) -> None:
        j = self.job
        store = self.dash.store
        fresh = next(iter(store.jobs(ids=[j.id])), j) if keep else j
        fetch = self.dash.log_fetcher
        if fetch is not None and fresh.started_at is not None:
            try:
                data = fetch(j.project_id, j.id)
                text = data.decode("utf-8", "replace")
                self.post_message(self.Loaded(split_sections(text), "from GitLab", fresh, keep))
                return
            except CidashError as exc:
                if not keep:
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
        note = "sections from the store (no connection for the log text)" if sections else "no log"
        self.post_message(self.Loaded(sections, note, fresh, keep))

    def on_job_log_screen_loaded(self, message: Loaded) -> None:
        self.job = message.job
        self.sections = message.sections
        self.note = message.note
        view = self.query_one(LogLines)
        empty = ""
        if not message.sections:
            empty = NEVER_RAN.get(self.job.status, "") if self.job.started_at is None else ""
            empty = empty or "The log is empty (GitLab returned no text for this job)."
        view.load(message.sections, empty=empty, keep=message.keep)
        if self.matches:
            self._search(view.needle, jump=False)
        self._title()
        if self.job.status in LIVE and self.job.started_at is not None and self.dash.poll:
            if self._tail is not None:
                self._tail.stop()
            self._tail = self.set_timer(TAIL_SECONDS, self.refresh_data)  # re-armed after each load: it tails

    def _title(self) -> None:
        view = self.query_one(LogLines)
        lines = sum(len(s.lines) for s in self.sections)
        named = sum(1 for s in self.sections if s.name)
        parts = [f"{named} sections, {lines} lines ({self.note})"]
        if self.job.status in LIVE and self.job.started_at is not None:
            parts.append("tailing")
        if view.needle:
            found = f"{self.match + 1}/{len(self.matches)}" if self.matches else "no match"
            parts.append(f"/{clean(view.needle)}: {found}")
        self.query_one("#log-title", Static).update(_job_title(self.job, " · ".join(parts)))

    # -- keys -------------------------------------------------------------------------------------------------

    def action_back(self) -> None:
        box = self.query_one("#log-search", Input)
        if box.has_focus:
            box.display = False
            self.query_one(LogLines).focus()
            return
        self.app.pop_screen()

    def action_search(self) -> None:
        box = self.query_one("#log-search", Input)
        box.display = True
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.input.display = False
        self.query_one(LogLines).focus()
        self._search(event.value, jump=True)

    def _search(self, needle: str, *, jump: bool) -> None:
        view = self.query_one(LogLines)
        view.set_needle(needle)
        self.matches = find(self.sections, needle)
        if not self.matches:
            self.match = -1
        elif jump:
            here = view.rows[view.cursor] if view.rows else (0, -1)
            self.match = next((i for i, m in enumerate(self.matches) if m >= here), 0)
            view.reveal(self.matches[self.match])
        self._title()

    def action_next_match(self, step: int) -> None:
        if not self.matches:
            self.notify("No search: press / first." if not self.query_one(LogLines).needle else "No match.")
            return
        self.match = (self.match + step) % len(self.matches)
        self.query_one(LogLines).reveal(self.matches[self.match])
        self._title()

    def action_first_error(self) -> None:
        row = first_error(self.sections)
        if row is None:
            self.notify("No error line in this log.", title="Log")
            return
        self.query_one(LogLines).reveal(row)

    def action_expand_all(self) -> None:
        self.query_one(LogLines).fold_all(False)

    def action_collapse_all(self) -> None:
        self.query_one(LogLines).fold_all(True)
