"""The one registry of dashboard commands.

Each :class:`Command` feeds four places: the App's ``BINDINGS`` (:func:`bindings`), the footer (``show``), the
command palette (:class:`CommandsProvider`) and the ``?`` help screen (:class:`cidash.tui.screens.modals.HelpScreen`).
Add a command here and it appears everywhere; the action it names is an ``action_*`` method of the App.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class Command:
    key: str  # Textual key name(s), comma-separated
    action: str  # App action, e.g. "refresh" or "show_tab('health')"
    title: str  # short label (footer and palette)
    help: str  # one sentence for the palette and the help screen
    show: bool = True  # in the footer
    group: str = "General"
    display_key: str = ""  # how the help screen prints the key

    @property
    def keys_text(self) -> str:
        return self.display_key or self.key.replace(",", " / ")


TABS: tuple[tuple[str, str], ...] = (
    ("health", "Health"),
    ("pipelines", "Pipelines"),
    ("startup", "Start-up"),
    ("caches", "Caches"),
    ("images", "Images"),
    ("compare", "Compare"),
)

COMMANDS: tuple[Command, ...] = (
    Command("question_mark", "help", "Help", "Show every key binding and command.", display_key="?"),
    Command(
        "slash",
        "filter",
        "Filter",
        "Filter the focused table (pipelines: ref:X status:Y source:Z or words).",
        display_key="/",
    ),
    Command("r", "refresh", "Refresh", "Sync from GitLab now and recompute every screen."),
    Command("p", "switch_project", "Project", "Switch to another project in the store."),
    Command("s", "toggle_polling", "Pause", "Pause or resume background refreshing.", show=False),
    Command("ctrl+t", "toggle_dark", "Theme", "Switch between the dark and light theme.", show=False),
    Command(
        "k", "keys", "Keys", "Recompute the cache-key file: show the plan, write only on confirmation.", group="Actions"
    ),
    Command(
        "b",
        "rebuild",
        "Rebuild",
        "Rebuild the CI image: play its manual build job or create a pipeline (confirm first).",
        group="Actions",
    ),
    Command(
        "t",
        "retry",
        "Retry",
        "Retry a job (confirm first): the highlighted one in a pipeline, else the latest failed CI-image build.",
        group="Actions",
    ),
    Command(
        "e",
        "export",
        "Export",
        "Export the criteria (and the comparison, if any) as Markdown to a file.",
        group="Actions",
    ),
    Command("q", "quit", "Quit", "Leave the dashboard."),
    *(
        Command(str(i), f"show_tab('{tab_id}')", title, f"Show the {title} tab.", show=False, group="Tabs")
        for i, (tab_id, title) in enumerate(TABS, start=1)
    ),
)


def bindings() -> list[Binding]:
    return [Binding(c.key, c.action, c.title, show=c.show, key_display=c.display_key or None) for c in COMMANDS]


class CommandsProvider(Provider):
    """The palette's view of :data:`COMMANDS`."""

    async def discover(self) -> Hits:
        for c in COMMANDS:
            yield DiscoveryHit(f"{c.title} ({c.keys_text})", partial(self._run, c), help=c.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for c in COMMANDS:
            text = f"{c.title} ({c.keys_text})"
            score = max(matcher.match(text), matcher.match(c.help) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self._run, c), help=c.help)

    async def _run(self, command: Command) -> None:
        await self.app.run_action(command.action)
