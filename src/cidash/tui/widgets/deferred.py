"""Tab panes: one whose content is mounted the first time its tab is shown, and none that takes the tab back."""

from __future__ import annotations

from collections.abc import Callable

from textual.widget import Widget
from textual.widgets import TabPane


class DashPane(TabPane):
    """A :class:`TabPane` whose tab is made active only by choosing it (a key, a click, an action).

    Textual's pane tells its TabbedContent to show it whenever a widget inside gets the focus. When the user
    switches tabs faster than a just-mounted tab settles, Textual may move the focus from a widget being hidden
    to its neighbour in the same (now hidden) pane, and that pulled the user back to the tab they had left."""

    def on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        if not self.display:
            event.stop()  # a focus inside a hidden pane never switches tabs


class DeferredPane(DashPane):
    """A pane that mounts its content when :meth:`show_content` is first called (the App calls it whenever the
    tab becomes active, however it was chosen: a key, a click, an action that jumps to the tab).

    The dashboard's first screen is the Health tab: mounting the other tabs' tables, inputs and charts at start-up
    was most of Textual's work before the first paint. ``content`` is the widget, or a callable that gives it (the
    App's: it builds the view the first time anything needs it, data pushed to it included, and keeps it; a
    :class:`cidash.tui.screens.base.TabView` holds that data until it is mounted), called when the tab is first
    shown if nothing asked for the view before."""

    def __init__(self, title: str, content: Widget | Callable[[], Widget], *, id: str) -> None:
        super().__init__(title, id=id)
        # a widget made up front is taken as it is (as before the views were built when needed)
        self._content: Callable[[], Widget] = (lambda: content) if isinstance(content, Widget) else content
        self._shown = False

    @property
    def content(self) -> Widget:
        return self._content()

    @property
    def content_mounted(self) -> bool:
        return self.content.parent is not None

    @property
    def content_shown(self) -> bool:
        """Whether :meth:`show_content` mounted (or is mounting) the content; unlike :attr:`content_mounted`, never
        builds it."""
        return self._shown

    def show_content(self) -> None:
        content = self.content
        if content.parent is None and self.is_attached:
            self._shown = True
            self.mount(content)
