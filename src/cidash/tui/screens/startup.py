"""Start-up: p50/p90 per phase (baseline vs candidate) and per image digest, and a daily chart with the migration."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from cidash.textsafe import clean
from cidash.tui.screens.base import HISTORY_LOADING_TEXT, TabView, texts
from cidash.tui.widgets.chart import ChartWidget
from cidash.tui.widgets.table import NavTable

if TYPE_CHECKING:
    from cidash.tui.data import StartupView


class StartupTab(TabView):
    LOADING_TEXT = HISTORY_LOADING_TEXT

    def __init__(self) -> None:
        super().__init__(id="startup-view")

    def compose(self) -> ComposeResult:
        yield Static("", id="startup-split")
        with Horizontal(id="startup-tables"):
            yield NavTable(id="startup-phases", cursor_type="row")
            yield NavTable(id="startup-digests", cursor_type="row")
        yield ChartWidget("Median job start-up per day (s); │ marks the migration", id="startup-chart")

    def on_mount(self) -> None:
        phases = self.query_one("#startup-phases", DataTable)
        phases.add_columns("Phase", "Base p50", "Base p90", "Cand p50", "Cand p90", "Change", "n")
        digests = self.query_one("#startup-digests", DataTable)
        digests.add_columns("Image digest", "n", "p50", "p90", "Seen (UTC)")
        self.ready()

    def show(self, view: StartupView) -> None:
        self.when_ready("show", partial(self._show, view))

    def _show(self, view: StartupView) -> None:
        self.query_one("#startup-split", Static).update(Text(clean(view.split, keep_newlines=True), style="dim"))
        phases = self.query_one("#startup-phases", DataTable)
        phases.clear()
        for row in view.phase_rows:
            phases.add_row(*texts(row))
        digests = self.query_one("#startup-digests", DataTable)
        digests.clear()
        for row in view.digest_rows:
            digests.add_row(*texts(row))
        axis = None
        if view.days:
            marker = view.days[view.marker] if view.marker is not None else ""
            axis = (view.days[0], view.days[-1], f"migration {marker}" if marker else "")
        self.query_one("#startup-chart", ChartWidget).set_data(view.daily, marker=view.marker, unit="s", x_axis=axis)
