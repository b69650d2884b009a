"""Health: one row per criterion with target, value, baseline, change, status, a 30-day sparkline, evidence."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from cidash.textsafe import clean
from cidash.tui.charts import resample, sparkline
from cidash.tui.healthcache import Health, HealthRow
from cidash.tui.screens.base import STATUS_STYLES, TabView, status_text, texts
from cidash.tui.widgets.table import NavTable

COLUMNS = (
    ("Criterion", "title"),
    ("Status", "status"),
    ("Value", "value"),
    ("Target", "target"),
    ("Baseline", "baseline"),
    ("Change", "change"),
    ("Last 30 days", "spark"),
)

NARROW = 100  # columns: below this the table drops NARROW_HIDDEN
NARROW_HIDDEN = frozenset({"baseline"})


def _cells(r: HealthRow) -> tuple[str, ...]:
    """The text cells before the sparkline (status as its label)."""
    label = STATUS_STYLES.get(r.status, (r.status, ""))[0]
    # the short name (the registry's) in the table; the full title leads the evidence line under it
    return (r.short_title or r.title, label, r.value, r.target, r.baseline, r.change)


class HealthView(TabView):
    def __init__(self) -> None:
        super().__init__(id="health-view")
        self.health: Health | None = None
        self._cached = False
        self._current: bool | None = None
        self._layout: tuple[int, bool] = (0, False)

    def compose(self) -> ComposeResult:
        yield Static("Loading the criteria from the store…", id="verdict")
        table: DataTable[str | Text] = NavTable(id="health-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="health-evidence")

    def on_mount(self) -> None:
        self._columns(16, narrow=False)
        self.ready()

    def _columns(self, spark_width: int, *, narrow: bool) -> None:
        table = self.query_one("#health-table", DataTable)
        table.clear(columns=True)
        for label, key in COLUMNS:
            if not (narrow and key in NARROW_HIDDEN):
                # a Text: a str label is read as Rich markup, whose emoji table (~3 ms to import) nothing else of the
                # first screen needs
                table.add_column(Text(label), key=key, width=spark_width if key == "spark" else None)
        self._layout = (spark_width, narrow)

    def _fit(self) -> tuple[int, bool]:
        """(sparkline cells, narrow): the sparklines get what the other columns leave of the table's width, 8 to
        30 (one per day); under 100 columns the baseline column gives way (the change still tells it)."""
        width = self.query_one("#health-table", DataTable).size.width or self.size.width or self.app.size.width
        narrow = width < NARROW
        if self.health is None:
            return 16, narrow
        others = 0
        for i, (label, key) in enumerate(COLUMNS[:-1]):
            if not (narrow and key in NARROW_HIDDEN):
                others += max([cell_len(label), *(cell_len(_cells(r)[i]) for r in self.health.rows)]) + 2
        return max(8, min(30, width - others - 3)), narrow  # 2: the sparkline's padding, 1: a scrollbar's room

    def on_resize(self) -> None:
        if self.health is not None and self._fit() != self._layout:
            self.show_health(self.health, cached=self._cached, current=self._current)

    def waiting(self, text: str) -> None:
        self.query_one("#verdict", Static).update(Text(text, style="italic"))

    def show_health(self, health: Health, *, cached: bool = False, current: bool | None = None) -> None:
        """``cached``: the Health from the cache, being computed again; ``current``: whether the store was not
        synced since it was computed (False: it was; None: unknown)."""
        self.health = health
        verdict = self.query_one("#verdict", Static)
        style = "bold red" if not health.ok else ("bold yellow" if health.counts.get("no_data") else "bold green")
        text = Text()
        text.append(clean(health.verdict), style=style)
        text.append("\n" + clean(f"period: {health.period}"), style="dim")
        if not health.complete:
            text.append("\n(baselines and the last 30 days: computing…)", style="italic dim")
        if cached:
            since = (
                ""
                if current is None
                else ", the store unchanged since"
                if current
                else ", before the store's last sync"
            )
            text.append(
                f"\n(cached from {health.generated_at:%Y-%m-%d %H:%M} UTC{since}; recomputing…)", style="italic dim"
            )
        verdict.update(text)
        self._cached = cached
        self._current = current
        table = self.query_one("#health-table", DataTable)
        row = table.cursor_row
        layout = self._fit()
        if layout != self._layout:
            self._columns(*layout[:1], narrow=layout[1])
        width, narrow = layout
        table.clear()
        for r in health.rows:
            cells: list[Text] = [*texts(_cells(r)[:1]), status_text(r.status), *texts(_cells(r)[2:])]
            if narrow:
                cells = [c for c, (_, key) in zip(cells, COLUMNS, strict=False) if key not in NARROW_HIDDEN]
            table.add_row(*cells, Text(sparkline(resample(r.series, width)), style="cyan"), key=r.id)
        if health.rows:
            table.move_cursor(row=min(max(row, 0), len(health.rows) - 1))
            self._show_evidence(min(max(row, 0), len(health.rows) - 1))

    def _show_evidence(self, index: int) -> None:
        if self.health is None or not 0 <= index < len(self.health.rows):
            return
        r = self.health.rows[index]
        text = Text()
        text.append(clean(f"{r.title}: "), style="bold")
        text.append(clean(r.evidence))
        text.append(f" (n={r.n})", style="dim")
        text.append("  (Enter: the pipelines, jobs and keys behind it)", style="dim")
        self.query_one("#health-evidence", Static).update(text)

    def highlighted_criterion(self) -> str | None:
        row = self.query_one("#health-table", DataTable).cursor_row
        return self.health.rows[row].id if self.health is not None and 0 <= row < len(self.health.rows) else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_evidence(event.cursor_row)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.dash.open_evidence(event.row_key.value)
