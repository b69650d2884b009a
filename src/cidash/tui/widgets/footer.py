"""The key footer, recomposed only when the keys it shows change."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

#: What the footer shows: (key, description, action, enabled, tooltip) of each shown binding.
Shown = tuple[tuple[str, str, str, bool, str], ...]


class KeyFooter(Footer):
    """Textual's :class:`Footer`, which rebuilds its keys after every change of the screen's bindings (each focus
    change: five times while the dashboard starts, each a remove and mount of a dozen widgets), composed here with
    its keys and rebuilt only when the keys it would show differ from the ones it shows."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: Shown | None = None

    def _wanted(self) -> Shown:
        return tuple(
            (binding.key, binding.description, binding.action, enabled, tooltip)
            for (_, binding, enabled, tooltip) in self.screen.active_bindings.values()
            if binding.show
        )

    def compose(self) -> ComposeResult:
        # The keys at once (Textual's footer composes empty and waits for the first bindings change, one more
        # mount, layout and paint while the dashboard starts); a later change rebuilds it if the keys differ.
        self.set_reactive(Footer._bindings_ready, True)
        self._shown = self._wanted()
        yield from super().compose()

    def bindings_changed(self, screen: Screen[object]) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        if self.is_attached and self._wanted() != self._shown:
            await self.recompose()
