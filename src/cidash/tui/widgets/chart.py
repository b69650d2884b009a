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
        self._axis: tuple[str, str, str] | None = None

    def set_data(
        self,
        values: Sequence[float | None],
        *,
        target: float | None = None,
        marker: int | None = None,
        unit: str = "",
        caption: str = "",
        x_axis: tuple[str, str, str] | None = None,
    ) -> None:
        """``x_axis``: (first label, last label, marker label) printed under the columns they belong to."""
        self._chart = ColumnChart(tuple(values), target=target, marker=marker, unit=unit)
        self._caption = caption
        self._axis = x_axis
        self.refresh()

    def render(self) -> Group:
        lines: list[Text] = [Text(self._title, style="bold", no_wrap=True, overflow="ellipsis")]
        extra = 1 + (self._axis is not None) + bool(self._caption)
        height = max(2, self.size.height - extra)
        if self._chart is None or not any(v is not None for v in self._chart.values):
            lines.append(Text("no data yet", style="dim"))
        else:
            width = self.size.width
            lines.extend(self._chart.render(width, height))
            if self._axis is not None:
                lines.append(self._chart.axis_line(width, *self._axis))
            if self._caption:
                lines.append(Text(self._caption, style="dim", overflow="ellipsis", no_wrap=True))
        return Group(*lines)
