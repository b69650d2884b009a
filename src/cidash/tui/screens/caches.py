"""Caches: per-key restore outcomes, default-key and stale flags, overlapping writers; the local checkout panel."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Input, Static

from cidash.tui.data import CachesView
from cidash.tui.screens.base import TabView, texts


class CachesTab(TabView):
    def __init__(self) -> None:
        super().__init__(id="caches-view")
        self.view: CachesView | None = None
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter keys (Enter applies, Esc closes)", id="cache-filter", classes="hidden")
        yield Static("", id="cache-totals")
        yield DataTable(id="cache-table", cursor_type="row", zebra_stripes=True)
        yield Static("[dim]local checkout: computing…[/]", id="cache-local")

    def on_mount(self) -> None:
        table = self.query_one("#cache-table", DataTable)
        table.add_columns(
            "Key", "Restores", "Hit", "Miss", "Failed", "Hit rate", "Last seen", "default", "Stale", "Overlaps"
        )

    def show(self, view: CachesView) -> None:
        self.view = view
        t = view.totals
        known = sum(t.get(k, 0) for k in ("hit", "miss", "failed"))
        rate = f"{t.get('hit', 0) / known * 100:.1f} %" if known else "—"
        self.query_one("#cache-totals", Static).update(
            Text(
                f"{sum(t.values())} restores: {t.get('hit', 0)} hit, {t.get('miss', 0)} miss, "
                f"{t.get('failed', 0)} failed, {t.get('unknown', 0)} unknown · hit rate {rate}",
                style="bold",
            )
        )
        self._fill()

    def _fill(self) -> None:
        if self.view is None:
            return
        table = self.query_one("#cache-table", DataTable)
        table.clear()
        needle = self.filter_text.lower()
        for row in self.view.key_rows:
            if needle and needle not in row[0].lower():
                continue
            cells: list[str | Text] = list(row)
            if row[7]:
                cells[7] = Text("default", style="bold red")
            if row[8]:
                cells[8] = Text(row[8], style="bold red")
            if row[9]:
                cells[9] = Text(row[9], style="bold yellow")
            table.add_row(*texts(cells), key=row[0])

    def show_local(self, lines: list[str]) -> None:
        self.query_one("#cache-local", Static).update("[b]Local checkout[/b]\n" + "\n".join(lines))

    def start_filter(self) -> bool:
        box = self.query_one("#cache-filter", Input)
        box.remove_class("hidden")
        box.focus()
        return True

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._fill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.add_class("hidden")
        self.query_one("#cache-table", DataTable).focus()
