"""The key footer, recomposed only when the keys it shows change."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

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
        for widget in super().compose():
            if isinstance(widget, FooterKey):
                # Each key composed in the style it ends up with: a key starts compact and its watcher adds the
                # class at mount, then the footer's (not compact) binding removes it again, each a restyle of
                # the key (20 of a start's). The command-palette key is not bound: it stays compact.
                compact = True if widget.has_class("-command-palette") else self.compact  # True: a key's default
                widget.set_reactive(FooterKey.compact, compact)
                widget.set_class(compact, "-compact", update=False)
            yield widget

    def bindings_changed(self, screen: Screen[object]) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        if self.is_attached and self._wanted() != self._shown:
            await self.recompose()
