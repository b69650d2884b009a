"""Health: one row per criterion with target, value, baseline, change, status, a 30-day sparkline, evidence."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from cidash.tui.charts import resample, sparkline
from cidash.tui.data import Health
from cidash.tui.screens.base import TabView, status_text, texts


class HealthView(TabView):
    def __init__(self) -> None:
        super().__init__(id="health-view")
        self.health: Health | None = None

    def compose(self) -> ComposeResult:
        yield Static("Loading the criteria from the store…", id="verdict")
        table: DataTable[str | Text] = DataTable(id="health-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="health-evidence")

    def on_mount(self) -> None:
        table = self.query_one("#health-table", DataTable)
        for label, key in (
            ("Criterion", "title"),
            ("Status", "status"),
            ("Value", "value"),
            ("Target", "target"),
            ("Baseline", "baseline"),
            ("Change", "change"),
            ("Last 30 days", "spark"),
        ):
            table.add_column(label, key=key, width=16 if key == "spark" else None)

    def waiting(self, text: str) -> None:
        self.query_one("#verdict", Static).update(Text(text, style="italic"))

    def show_health(self, health: Health, *, cached: bool = False) -> None:
        self.health = health
        verdict = self.query_one("#verdict", Static)
        style = "bold red" if not health.ok else ("bold yellow" if health.counts.get("no_data") else "bold green")
        text = Text()
        text.append(health.verdict, style=style)
        text.append(f"\nperiod: {health.period}", style="dim")
        if cached:
            text.append(f"\n(cached from {health.generated_at:%Y-%m-%d %H:%M} UTC; recomputing…)", style="italic dim")
        verdict.update(text)
        table = self.query_one("#health-table", DataTable)
        row = table.cursor_row
        table.clear()
        for r in health.rows:
            table.add_row(
                *texts((r.title, status_text(r.status), r.value, r.target, r.baseline, r.change)),
                Text(sparkline(resample(r.series, 16)), style="cyan"),
                key=r.id,
            )
        if health.rows:
            table.move_cursor(row=min(max(row, 0), len(health.rows) - 1))
            self._show_evidence(min(max(row, 0), len(health.rows) - 1))

    def _show_evidence(self, index: int) -> None:
        if self.health is None or not 0 <= index < len(self.health.rows):
            return
        r = self.health.rows[index]
        text = Text()
        text.append(f"{r.title}: ", style="bold")
        text.append(r.evidence)
        text.append(f" (n={r.n})", style="dim")
        text.append("  (Enter: the pipelines, jobs and keys behind it)", style="dim")
        self.query_one("#health-evidence", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_evidence(event.cursor_row)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.dash.open_evidence(event.row_key.value)
