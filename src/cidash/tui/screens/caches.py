"""Caches: per-key restore outcomes, default-key and stale flags, overlapping writers; the local checkout panel."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Input, Static

from cidash.formatting import fmt_cache_key
from cidash.textsafe import clean
from cidash.tui.screens.base import HISTORY_LOADING_TEXT, TabView, texts
from cidash.tui.widgets.table import NavTable

if TYPE_CHECKING:
    from cidash.tui.data import CachesView

#: (header, index into a CachesView key row): the most telling columns first, so 80 columns keep them.
COLUMNS = (
    ("Key", 0),
    ("Rate", 5),
    ("Restores", 1),
    ("Hit", 2),
    ("Miss", 3),
    ("Fail", 4),
    ("default", 7),
    ("Stale", 8),
    ("Overlaps", 9),
    ("Last seen", 6),
)


class CachesTab(TabView):
    LOADING_TEXT = HISTORY_LOADING_TEXT

    def __init__(self) -> None:
        super().__init__(id="caches-view")
        self.view: CachesView | None = None
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter keys (Enter applies, Esc closes)", id="cache-filter", classes="hidden")
        yield Static("", id="cache-totals")
        yield NavTable(id="cache-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="cache-key")
        yield Static("[dim]local checkout: computing…[/]", id="cache-local")

    def on_mount(self) -> None:
        table = self.query_one("#cache-table", DataTable)
        table.add_columns(*(label for label, _ in COLUMNS))
        self.ready()

    def show(self, view: CachesView) -> None:
        self.view = view
        self.when_ready("show", partial(self._show, view))

    def _show(self, view: CachesView) -> None:
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
            cells[0] = fmt_cache_key(row[0], keep=6)
            if row[7]:
                cells[7] = Text("default", style="bold red")
            if row[8]:
                cells[8] = Text(clean(row[8]), style="bold red")
            if row[9]:
                cells[9] = Text(clean(row[9]), style="bold yellow")
            table.add_row(*texts([cells[i] for _, i in COLUMNS]), key=row[0])
        if table.row_count:
            self._show_key(table.cursor_row)
        else:
            self.query_one("#cache-key", Static).update("")

    def _show_key(self, index: int) -> None:
        if self.view is None:
            return
        table = self.query_one("#cache-table", DataTable)
        if not 0 <= index < table.row_count:
            return
        key = table.coordinate_to_cell_key(Coordinate(index, 0)).row_key.value or ""
        row = next((r for r in self.view.key_rows if r[0] == key), None)
        text = Text()
        text.append("key ", style="dim")
        text.append(clean(key), style="bold")
        if row is not None:
            text.append(clean(f"  last restored {row[6]}"), style="dim")
            if row[7]:
                text.append("  ends in `default`: none of its key:files existed at the commit", style="red")
        self.query_one("#cache-key", Static).update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_key(event.cursor_row)

    def show_local(self, lines: list[str]) -> None:
        # console markup whose values local_key_status() escaped (cleaned, brackets escaped)
        text = "[b]Local checkout[/b]\n" + "\n".join(lines)
        self.when_ready("local", lambda: self.query_one("#cache-local", Static).update(text))

    def start_filter(self) -> bool:
        self.when_ready("filter", self._open_filter)
        return True

    def _open_filter(self) -> None:
        if not self.shown:
            return
        box = self.query_one("#cache-filter", Input)
        box.remove_class("hidden")
        box.focus()  # after the style update that shows it (a hidden box cannot take the focus)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._fill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.add_class("hidden")
        self.query_one("#cache-table", DataTable).focus()
