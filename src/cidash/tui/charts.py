"""Pure text charts for the dashboard: sparklines, column charts with a target line and a marker, phase bars.

No Textual here: functions return strings or :class:`rich.text.Text`, so they are unit-testable and the
widgets in :mod:`cidash.tui.widgets` only decide the size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.text import Text

TICKS = "▁▂▃▄▅▆▇█"
EIGHTHS = " ▁▂▃▄▅▆▇█"

#: Colours of the job phases in stacked bars (prepare / sources / cache / artifacts / script / upload).
PHASE_STYLES: dict[str, str] = {
    "prepare": "#d08770",
    "sources": "#ebcb8b",
    "cache": "#a3be8c",
    "artifacts": "#88c0d0",
    "script": "#5e81ac",
    "upload": "#b48ead",
}


FLAT = "─"  # a series that did not change: a rule, not a bar at an arbitrary height


def sparkline(values: Sequence[float | None]) -> str:
    """One character per value, scaled between the min and max of the known values; None prints a space.

    A series that does not change (every known value equal, up to float noise) has no scale to draw on: bars at
    any height would suggest a level, so each known day prints :data:`FLAT` instead ("steady").
    """
    known = [v for v in values if v is not None]
    if not known:
        return " " * len(values)
    lo, hi = min(known), max(known)
    flat = hi - lo <= 1e-9 * max(abs(hi), abs(lo), 1.0)
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif flat:
            out.append(FLAT)
        else:
            out.append(TICKS[round((v - lo) / (hi - lo) * (len(TICKS) - 1))])
    return "".join(out)


def resample(values: Sequence[float | None], width: int) -> list[float | None]:
    """Fit ``values`` into ``width`` columns: averaging buckets when longer, repeating when shorter."""
    if width <= 0 or not values:
        return []
    n = len(values)
    out: list[float | None] = []
    for col in range(width):
        lo = col * n // width
        hi = max(lo + 1, (col + 1) * n // width)
        bucket = [v for v in values[lo:hi] if v is not None]
        out.append(sum(bucket) / len(bucket) if bucket else None)
    return out


@dataclass(frozen=True)
class ColumnChart:
    """A column chart: one value per column (None = no data), an optional horizontal target line and an
    optional vertical marker at one column (e.g. the migration)."""

    values: Sequence[float | None]
    target: float | None = None
    marker: int | None = None  # index into values
    unit: str = ""
    style: str = "#88c0d0"
    over_style: str = "#bf616a"  # columns above the target
    target_style: str = "#ebcb8b"
    marker_style: str = "#b48ead"

    AXIS = 7  # cells of the left axis (labels), the plot starts after them

    def marker_column(self, plot_w: int) -> int | None:
        """The plot column showing ``values[marker]`` once resampled to ``plot_w`` columns."""
        n = len(self.values)
        if self.marker is None or not n or plot_w <= 0 or not 0 <= self.marker < n:
            return None
        for col in range(plot_w):
            lo = col * n // plot_w
            hi = max(lo + 1, (col + 1) * n // plot_w)
            if lo <= self.marker < hi:
                return col
        return plot_w - 1

    def render(self, width: int, height: int) -> list[Text]:
        """``height`` lines of ``width`` cells (a left axis of :attr:`AXIS` cells included).

        The scale runs from 0 at the bottom to the largest value (or the target, if higher) at the top, labelled
        with that value; the target is a horizontal line across the plot (drawn over the columns it crosses,
        labelled on the axis), columns above the target are red, and the marker is a vertical line above its
        column.
        """
        axis = self.AXIS
        plot_w = max(1, width - axis)
        height = max(2, height)
        cols = resample(self.values, plot_w)
        marker_col = self.marker_column(plot_w)
        raw = [v for v in self.values if v is not None]
        top = max([*raw, self.target or 0.0]) or 1.0
        units = height * 8
        target_row = None
        if self.target is not None:
            # the row whose eighths hold the target level (the top row when the target is the maximum)
            target_row = height - 1 - min(height - 1, max(0, int(self.target / top * units - 1e-9) // 8))
        lines: list[Text] = []
        for row in range(height):
            level_lo = (height - 1 - row) * 8
            label = ""
            if row == target_row and self.target is not None:
                label = _short_number(self.target)
            elif row == 0:
                label = _short_number(top)
            elif row == height - 1:
                label = "0"
            line = Text(f"{label:>{axis - 1}} ", style=self.target_style if row == target_row else "dim")
            for c, v in enumerate(cols):
                fill = 0 if v is None else round(v / top * units) - level_lo
                style = self.over_style if self.target is not None and v is not None and v > self.target else self.style
                if row == target_row:
                    # the target line stays visible across the columns it crosses
                    line.append("─", style=f"bold {self.target_style} on {style}" if fill >= 8 else self.target_style)
                elif c == marker_col and fill <= 0:
                    line.append("│", style=self.marker_style)
                elif fill <= 0:
                    line.append(" ")
                else:
                    line.append(EIGHTHS[min(8, fill)], style=style)
            lines.append(line)
        return lines

    def axis_line(self, width: int, first: str, last: str, marker_label: str = "") -> Text:
        """An x-axis caption under :meth:`render`'s plot: ``marker_label`` starting under the marker column
        (``└`` pointing at it; ending there with ``┘``, or only its last word, when it does not fit), then
        ``first`` under the first column and ``last`` ending under the last one where they do not collide."""
        axis = self.AXIS
        plot_w = max(1, width - axis)
        cells = [" "] * plot_w
        styles: list[str] = ["dim"] * plot_w

        def put(at: int, text: str, style: str = "dim") -> bool:
            # a blank cell must stay between two labels
            if at < 0 or at + len(text) > plot_w or any(ch != " " for ch in cells[max(0, at - 1) : at + len(text) + 1]):
                return False
            for i, ch in enumerate(text):
                cells[at + i] = ch
                styles[at + i] = style
            return True

        col = self.marker_column(plot_w)
        if col is not None and marker_label:  # the marker's label first: it matters most
            short = marker_label.rsplit(" ", 1)[-1]
            for label, at in (
                (f"└ {marker_label}", col),
                (f"{marker_label} ┘", col - len(marker_label) - 1),
                (f"└ {short}", col),
                (f"{short} ┘", col - len(short) - 1),
            ):
                if put(at, label, self.marker_style):
                    break
        put(0, first)
        put(plot_w - len(last), last)
        text = Text(" " * axis)
        for ch, style in zip(cells, styles, strict=True):
            text.append(ch, style=style)
        return text


def _short_number(value: float) -> str:
    if value >= 10000:
        return f"{value / 1000:.0f}k"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def phase_bar(phases: Mapping[str, float | None], width: int, scale: float) -> Text:
    """A stacked bar of the phases in :data:`PHASE_STYLES` order; ``scale`` seconds fill ``width`` cells."""
    text = Text()
    if scale <= 0 or width <= 0:
        return text
    used = 0
    for name, style in PHASE_STYLES.items():
        seconds = phases.get(name)
        if not seconds:
            continue
        cells = max(1, round(seconds / scale * width))
        cells = min(cells, width - used)
        if cells <= 0:
            break
        text.append("█" * cells, style=style)
        used += cells
    return text


def phase_legend() -> Text:
    text = Text()
    for name, style in PHASE_STYLES.items():
        text.append("█ ", style=style)
        text.append(f"{name}  ")
    return text
