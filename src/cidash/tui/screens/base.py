"""Shared bits of the tab views."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import events
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static

from cidash.textsafe import clean, has_unsafe

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


#: Pipeline and job statuses GitLab reports (a ``status:`` filter naming another one matches nothing).
KNOWN_STATUSES = frozenset(
    (
        "created",
        "waiting_for_resource",
        "preparing",
        "pending",
        "running",
        "success",
        "failed",
        "canceled",
        "canceling",
        "skipped",
        "manual",
        "scheduled",
    )
)


#: What the Start-up, Caches and Images tabs show while they read the whole synced history (seconds on a big store).
HISTORY_LOADING_TEXT = (
    "Reading the project's whole synced history from the store…\n"
    "[dim]This tab shows every synced pipeline, not only the window the Health judges: on a large store that takes "
    "seconds ('cidash prune' drops old history).[/]"
)


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 file``, ``2 files``, ``1 of 1 pipeline``'s tail."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


def seconds_in(value: float | None, unit: str) -> str:
    """A duration in one fixed unit (``s`` or ``min``), so a column never mixes units; ``—`` for none."""
    if value is None:
        return "—"
    return f"{value / 60:.1f} min" if unit == "min" else f"{value:.1f} s"


_KEY_TEMPLATE = re.compile(r"^(\d+)-\{files: (.*)\}$")


def key_display(key: str) -> str:
    """A cache key as configured: ``0-{files: .cache-key}`` (a template the CI-config reader builds) reads as
    ``files: .cache-key`` (GitLab computes the digest; the index is the cache's position)."""
    m = _KEY_TEMPLATE.match(key)
    return f"files: {m.group(2)}" if m else key


def status_text(status: str) -> Text:
    label, style = STATUS_STYLES.get(status, (clean(status), ""))
    return Text(label, style=style)


class TabView(Vertical):
    """A tab's content. The App calls :meth:`start_filter` for ``/``.

    Only the first tab is mounted at start-up; the others mount the first time they are shown
    (:class:`cidash.tui.widgets.deferred.DeferredPane`). What reaches a view before it is mounted (its data, a focus,
    ``/``) waits in :meth:`when_ready` and runs, in order, when the view's ``on_mount`` calls :meth:`ready`: a view
    never queries children it does not have yet, and takes its data when it mounts."""

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)
        self._loading_text = self.LOADING_TEXT
        self._view_ready = False
        self._on_ready: dict[str, Callable[[], None]] = {}

    @property
    def dash(self) -> CidashApp:
        return cast("CidashApp", self.app)

    @property
    def view_ready(self) -> bool:
        """True once the view's children are mounted (its ``on_mount`` called :meth:`ready`)."""
        return self._view_ready

    def when_ready(self, name: str, call: Callable[[], None]) -> None:
        """Run ``call`` now if the view is mounted, else when it is, in the order the names first came. Only the
        newest call of each ``name`` waits, in the place of the older one (data pushed to a tab never shown
        replaces the older data instead of piling up; the focus that showing a tab asks for again does not move
        after a filter box opened by the same key)."""
        if self._view_ready:
            call()
            return
        self._on_ready[name] = call

    def ready(self) -> None:
        """Called at the end of the view's ``on_mount``: run what waited for it."""
        self._view_ready = True
        waiting, self._on_ready = self._on_ready, {}
        for call in waiting.values():
            call()

    @property
    def shown(self) -> bool:
        """Its tab is the active one (a focus that waited for the mount must not pull the user back to it: a
        widget focused in a pane makes that pane's tab active)."""
        return self.parent is not None and self.parent.display

    def focus_table(self) -> None:
        """Focus the view's first table (once it is mounted, if its tab is still the active one)."""
        self.when_ready("focus", self._focus_first_table)

    def _focus_first_table(self) -> None:
        tables = self.query(DataTable)
        if tables and self.shown:
            self.screen.set_focus(tables.first())  # now: Widget.focus() would wait, and the user may switch tabs

    #: What :meth:`show_loading` covers the view with (Textual's ``loading`` state), as console markup.
    LOADING_TEXT = "[dim]Reading from the store…[/]"

    def show_loading(self, on: bool, text: str | None = None) -> None:
        """Cover the view with ``text`` (default :attr:`LOADING_TEXT`) while its data is read or awaited (``on``),
        or uncover it: a tab whose data takes seconds never sits empty as if there were nothing to show. Applied
        once the view is mounted, in order with its data (:meth:`when_ready`)."""
        self.when_ready("loading", lambda: self._cover_with(on, text or self.LOADING_TEXT))

    def _cover_with(self, on: bool, text: str) -> None:
        if on and self.loading and text != self._loading_text:
            self.loading = False  # a cover saying something else: replaced
        self._loading_text = text
        self.loading = on

    def get_loading_widget(self) -> Widget:
        """A still line of text rather than Textual's animated indicator (nothing repaints while it waits)."""
        return Static(self._loading_text, classes="loading-note")

    def start_filter(self) -> bool:
        """Open this tab's filter; False when the tab has none."""
        return False

    def key_escape(self, event: events.Key) -> None:
        """Esc always leaves an input box (a filter or a Compare SPEC) for the tab's first table; a filter box
        hides again (its filter stays applied)."""
        focused = self.screen.focused
        if not isinstance(focused, Input) or focused not in self.query(Input):
            return
        event.stop()
        if focused.id and focused.id.endswith("-filter"):
            focused.add_class("hidden")
        tables = self.query(DataTable)
        if tables:
            tables.first().focus()
        else:
            self.screen.set_focus(None)


def safe_cell(cell: object) -> Text:
    """One cell as :class:`Text` that is safe to display: never read as markup or emoji codes (``[bold]``,
    ``:key:`` show literally), control characters and bidi overrides escaped (:func:`cidash.textsafe.clean`).
    A :class:`Text` that holds something unsafe is rebuilt from its cleaned plain text (in its base style)."""
    if isinstance(cell, Text):
        if not has_unsafe(cell.plain, allow=""):
            return cell
        return Text(clean(cell.plain), style=cell.style, justify=cell.justify, no_wrap=cell.no_wrap)
    return Text(clean(str(cell)))


def texts(cells: object) -> list[Text]:
    """DataTable cells through :func:`safe_cell`: everything a table shows goes through here."""
    assert isinstance(cells, (list, tuple))
    return [safe_cell(c) for c in cells]
