"""Shared bits of the tab views."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.containers import Vertical

if TYPE_CHECKING:
    from cidash.tui.app import CidashApp

STATUS_STYLES = {
    "pass": ("PASS", "bold green"),
    "fail": ("FAIL", "bold red"),
    "no_data": ("NO DATA", "bold yellow"),
    "success": ("success", "green"),
    "failed": ("failed", "red"),
    "running": ("running", "cyan"),
    "pending": ("pending", "yellow"),
    "canceled": ("canceled", "dim"),
    "skipped": ("skipped", "dim"),
    "manual": ("manual", "dim"),
    "created": ("created", "dim"),
}


def status_text(status: str) -> Text:
    label, style = STATUS_STYLES.get(status, (status, ""))
    return Text(label, style=style)


class TabView(Vertical):
    """A tab's content. The App calls :meth:`start_filter` for ``/``."""

    @property
    def dash(self) -> CidashApp:
        return cast("CidashApp", self.app)

    def start_filter(self) -> bool:
        """Open this tab's filter; False when the tab has none."""
        return False


def texts(cells: object) -> list[Text]:
    """DataTable cells as :class:`Text` (plain strings would be read as markup and emoji codes, e.g. ``:key:``)."""
    assert isinstance(cells, (list, tuple))
    return [c if isinstance(c, Text) else Text(str(c)) for c in cells]
