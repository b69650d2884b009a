"""The one table widget of the dashboard: Textual's ``DataTable`` with the keys people already have.

``j``/``k`` move the cursor, ``g``/``G`` jump to the first/last row (vim, less, k9s, lazygit). The first column
stays frozen when the table scrolls sideways (``fixed_columns``), so a row keeps its name at 80 columns.

It also mends a stale header: Textual measures new rows' column widths when the table goes idle, after a paint
may already have cached the header line at the old widths, and does not drop that line (the header stayed
narrower than its rows until the cursor moved; seen behind a modal opened right after a refresh).
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import DataTable


class NavTable(DataTable[Any]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "First row", show=False),
        Binding("G", "scroll_bottom", "Last row", show=False),
    ]

    def __init__(self, *, fixed_columns: int = 1, **kw: Any) -> None:
        kw.setdefault("cursor_type", "row")
        super().__init__(fixed_columns=fixed_columns, **kw)

    async def _on_idle(self, event: events.Idle) -> None:
        # Textual internals (8.x), read defensively: were one renamed, the header could go stale again, but the
        # dashboard would not stop (tests/tui/test_tui.py holds the mend, tests/repo/test_packaging.py the bound)
        remeasure = bool(getattr(self, "_require_update_dimensions", False) or getattr(self, "_updated_cells", None))
        await super()._on_idle(event)
        clear = getattr(self, "_clear_caches", None)
        if remeasure and callable(clear):  # the widths may have changed: lines painted before the measure are stale
            clear()
