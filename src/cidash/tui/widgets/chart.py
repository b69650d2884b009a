"""A column-chart widget over :class:`cidash.tui.charts.ColumnChart` (sized to the widget)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.text import Text
from textual.widget import Widget

from cidash.tui.charts import ColumnChart


class ChartWidget(Widget):
    """Shows a title line, the chart, and a caption line (e.g. first/last day and the marker's meaning)."""

    DEFAULT_CSS = """
    ChartWidget { height: 12; }
    """

    def __init__(self, title: str = "", *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._title = title
        self._chart: ColumnChart | None = None
        self._caption = ""

    def set_data(
        self,
        values: Sequence[float | None],
        *,
        target: float | None = None,
        marker: int | None = None,
        unit: str = "",
        caption: str = "",
    ) -> None:
        self._chart = ColumnChart(tuple(values), target=target, marker=marker, unit=unit)
        self._caption = caption
        self.refresh()

    def render(self) -> Group:
        lines: list[Text] = [Text(self._title, style="bold")]
        height = max(2, self.size.height - 2)
        if self._chart is None or not any(v is not None for v in self._chart.values):
            lines.append(Text("no data yet", style="dim"))
        else:
            lines.extend(self._chart.render(self.size.width, height))
            lines.append(Text(self._caption, style="dim", overflow="ellipsis", no_wrap=True))
        return Group(*lines)
