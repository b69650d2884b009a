"""Images: CI-image tags, size over time against the target, build reliability and recent failures."""

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
    from cidash.tui.data import ImagesView


class ImagesTab(TabView):
    LOADING_TEXT = HISTORY_LOADING_TEXT

    def __init__(self) -> None:
        super().__init__(id="images-view")

    def compose(self) -> ComposeResult:
        with Horizontal(id="images-top"):
            yield NavTable(id="image-tags", cursor_type="row", zebra_stripes=True)
            yield ChartWidget("CI-image size (MB) · ─ target · │ migration", id="image-chart")
        yield Static("", id="image-reliability")
        yield NavTable(id="image-failures", cursor_type="row")

    def on_mount(self) -> None:
        self.query_one("#image-tags", DataTable).add_columns("Tag", "Size", "Digest", "Created", "Last seen")
        self.query_one("#image-failures", DataTable).add_columns("Failed job", "Pipeline", "When", "Reason", "Kind")
        self.ready()

    def show(self, view: ImagesView) -> None:
        self.when_ready("show", partial(self._show, view))

    def _show(self, view: ImagesView) -> None:
        tags = self.query_one("#image-tags", DataTable)
        tags.clear()
        for row in view.tag_rows:
            tags.add_row(*texts(row))
        axis = None
        if view.size_days:
            marker = f"migration {view.size_days[view.size_marker]}" if view.size_marker is not None else ""
            axis = (view.size_days[0], view.size_days[-1], marker)
        self.query_one("#image-chart", ChartWidget).set_data(
            view.sizes, target=view.target_mb, marker=view.size_marker, unit="MB", x_axis=axis
        )
        self.query_one("#image-reliability", Static).update(
            Text.assemble(("Image-build reliability", "bold"), "\n", clean(view.reliability, keep_newlines=True))
        )
        failures = self.query_one("#image-failures", DataTable)
        failures.clear()
        for row in view.failures:
            failures.add_row(*texts(row))
