"""How numbers, times and keys read in a table cell: shared by the dashboard and the criteria's evidence tables.

Pure string formatting (no Textual, no markup); :mod:`cidash.tui.data` re-exports these for the screens.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

_Doc = TypeVar("_Doc")

#: Significant digits a number keeps in a machine-readable output (JSON, CSV, OpenMetrics): more than any measure
#: cidash takes has (times are at best microseconds of a ~1.8e9 s clock), fewer than a double's 17, so the binary
#: noise of sums and differences (``26.89300012588501``) is not printed as if it were measured.
SIGNIFICANT_DIGITS = 12


def tidy_number(value: float) -> float:
    """``value`` with :data:`SIGNIFICANT_DIGITS` (``873.3999999999999`` -> ``873.4``); NaN and infinities kept."""
    if not math.isfinite(value):
        return value
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def tidy(doc: _Doc) -> _Doc:
    """A JSON-shaped document with every float through :func:`tidy_number` (ints, bools, strings kept; a tuple
    comes back as a list, as JSON writes it anyway)."""
    return cast(_Doc, _tidy(doc))


def _tidy(doc: Any) -> Any:
    if isinstance(doc, float):
        return tidy_number(doc)
    if isinstance(doc, dict):
        return {k: _tidy(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [_tidy(v) for v in doc]
    return doc


def fmt_list(items: Sequence[str], keep: int) -> str:
    """The first ``keep`` items joined with ", ", then "and N more" for the rest: a list in a sentence stays short
    however many there are."""
    shown = ", ".join(items[:keep])
    return f"{shown} and {len(items) - keep} more" if len(items) > keep else shown


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 120:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


def fmt_seconds_pair(first: float | None, second: float | None) -> str:
    """Two durations in one cell, the unit said once when they share it (``8.8 / 10.1 min``, ``58.0 s / 2.1 min``):
    a p50/p90 pair fits its column."""
    a, b = fmt_seconds(first), fmt_seconds(second)
    num_a, _, unit_a = a.partition(" ")
    if unit_a and unit_a == b.partition(" ")[2]:
        return f"{num_a} / {b}"
    return f"{a} / {b}"


def fmt_pct(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.1f} %" if signed else f"{value:.1f} %"


def fmt_time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else "—"


_SINGULAR = {"files": "file", "events": "event", "writers": "writer", "runs": "run", "keys": "key"}


def fmt_day(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d") if value else "—"


#: Measured units: in a column of values they keep one decimal (``528.0 s`` next to ``586.2 s``).
_MEASURED = frozenset({"s", "min", "h", "MB"})


def fmt_value(value: float | None, unit: str, *, column: bool = False) -> str:
    """``3 files``, ``1 file``, ``214.6 MB``, ``99.5 %``; ``—`` for no value. ``column``: a value in a column of
    values, where a measured unit keeps its decimal (``528.0 s``, not ``528 s`` above ``586.2 s``)."""
    if value is None:
        return "—"
    whole = float(value).is_integer() and not (column and unit in _MEASURED)
    number = f"{value:.0f}" if whole else f"{value:.1f}"
    if abs(value) == 1:
        unit = _SINGULAR.get(unit, unit)
    return f"{number} {unit}".strip()


def fmt_result(value: float | None, unit: str) -> str:
    """A criterion's value in its unit: :func:`fmt_value`, except that a percentage with words after it
    (``% faster``) always shows one decimal: ``38.6 % faster``, ``40.0 % faster``."""
    if unit.startswith("% ") and value is not None:
        return f"{fmt_pct(value)} {unit[2:]}"
    return fmt_value(value, unit)


def fmt_change(delta: float | None, unit: str) -> str:
    """A signed change in the criterion's unit: ``+4.3 pts`` for percentages (percentage points: the
    difference of two percentages is not a percent), ``-592.2 MB``, ``±0 events`` when nothing changed."""
    if delta is None:
        return "—"
    unit = "pts" if unit == "%" else unit
    if round(delta, 1) == 0:
        return f"±0 {unit}".strip()
    number = f"{delta:+.0f}" if float(delta).is_integer() else f"{delta:+.1f}"
    if abs(delta) == 1:
        unit = _SINGULAR.get(unit, unit)
    return f"{number} {unit}".strip()


def fmt_digest(digest: str | None) -> str:
    """A digest for a table cell: its first 12 hex digits (``sha256:`` dropped; full digests in the details)."""
    if not digest:
        return "—"
    return digest.removeprefix("sha256:")[:12]


_LONG_HEX = re.compile(r"[0-9a-f]{16,}")


def fmt_cache_key(key: str, keep: int = 8) -> str:
    """A cache key for a table cell: long hex runs (``key:files`` digests, 40 hex) cut to their first ``keep``
    digits and ``…``: ``0-7dda6dd4…-protected``. The full key stays in the details."""
    return _LONG_HEX.sub(lambda m: m.group(0)[:keep] + "…", key)
