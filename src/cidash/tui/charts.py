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


def sparkline(values: Sequence[float | None]) -> str:
    """One character per value, scaled between the min and max of the known values; None prints a space."""
    known = [v for v in values if v is not None]
    if not known:
        return " " * len(values)
    lo, hi = min(known), max(known)
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif hi == lo:
            out.append(TICKS[3])
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

    def render(self, width: int, height: int) -> list[Text]:
        """``height`` lines of ``width`` cells (a left axis of 7 cells included)."""
        axis = 7
        plot_w = max(1, width - axis)
        height = max(2, height)
        cols = resample(self.values, plot_w)
        marker_col = None
        if self.marker is not None and self.values:
            marker_col = min(plot_w - 1, self.marker * plot_w // len(self.values))
        known = [v for v in cols if v is not None]
        top = max([*known, self.target or 0.0, 1e-9]) * 1.1
        units = height * 8
        target_row = None
        if self.target is not None:
            target_row = height - 1 - min(height - 1, int(self.target / top * height))
        lines: list[Text] = []
        for row in range(height):
            level_lo = (height - 1 - row) * 8
            label = ""
            if row == 0:
                label = _short_number(top)
            elif row == height - 1:
                label = "0"
            elif row == target_row and self.target is not None:
                label = _short_number(self.target)
            line = Text(f"{label:>{axis - 1}} ", style="dim")
            for c, v in enumerate(cols):
                if c == marker_col and (v is None or int(v / top * units) - level_lo <= 0):
                    line.append("│", style=self.marker_style)
                    continue
                if v is None:
                    line.append("─" if row == target_row else " ", style=self.target_style)
                    continue
                fill = round(v / top * units) - level_lo
                style = self.over_style if self.target is not None and v > self.target else self.style
                if fill <= 0:
                    line.append("─" if row == target_row else " ", style=self.target_style)
                else:
                    line.append(EIGHTHS[min(8, fill)], style=style)
            lines.append(line)
        return lines


def _short_number(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.1f}k"
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
