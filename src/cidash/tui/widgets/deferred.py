"""A tab pane whose content is mounted the first time its tab is shown."""

from __future__ import annotations

from textual.widget import Widget
from textual.widgets import TabPane


class DeferredPane(TabPane):
    """A :class:`TabPane` that mounts ``content`` when :meth:`show_content` is first called (the App calls it
    whenever the tab becomes active, however it was chosen: a key, a click, an action that jumps to the tab).

    The dashboard's first screen is the Health tab: mounting the other tabs' tables, inputs and charts at start-up
    was most of Textual's work before the first paint. ``content`` is created up front (the App keeps it and
    pushes data into it; a :class:`cidash.tui.screens.base.TabView` holds that data until it is mounted)."""

    def __init__(self, title: str, content: Widget, *, id: str) -> None:
        super().__init__(title, id=id)
        self.content = content

    @property
    def content_mounted(self) -> bool:
        return self.content.parent is not None

    def show_content(self) -> None:
        if self.content.parent is None and self.is_attached:
            self.mount(self.content)
