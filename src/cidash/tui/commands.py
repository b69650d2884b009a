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
    priority: bool = False  # bound before the focused widget (ctrl+c quits even from an input)
    listed: bool = True  # in the help screen and the palette (False: an alias of a listed command)

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
        "Filter the focused table (pipelines: ref:X status:Y source:Z or words; caches: key text); "
        "search in a job log.",
        display_key="/",
    ),
    Command("r", "refresh", "Refresh", "Sync from GitLab now and recompute every screen."),
    Command(
        "e",
        "export",
        "Export",
        "Export the criteria (and the comparison, if any) as Markdown to a file.",
        group="Actions",
    ),
    Command("q", "quit", "Quit", "Leave the dashboard (ctrl+c and ctrl+q too).", display_key="q / ctrl+c / ctrl+q"),
    Command("ctrl+c", "quit", "Quit", "Leave the dashboard.", show=False, priority=True, listed=False),
    Command("p", "switch_project", "Project", "Switch to another project in the store."),
    Command(
        "K",
        "keys",
        "Keys",
        "Recompute the cache-key file (shift+k; k moves up): show the plan, write only on confirmation.",
        group="Actions",
        display_key="K",
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
        "o",
        "open_url",
        "Open",
        "Open the selected pipeline, job, image or criterion evidence in the browser (prints the URL otherwise).",
        show=False,
        group="Actions",
    ),
    Command(
        "y", "copy_url", "Copy URL", "Copy the URL that o opens to the clipboard (OSC 52).", show=False, group="Actions"
    ),
    Command("s", "toggle_polling", "Pause", "Pause or resume background refreshing.", show=False),
    Command("ctrl+t", "toggle_dark", "Theme", "Switch between the dark and light theme.", show=False),
    *(
        Command(str(i), f"show_tab('{tab_id}')", title, f"Show the {title} tab.", show=False, group="Tabs")
        for i, (tab_id, title) in enumerate(TABS, start=1)
    ),
)

#: Keys that belong to a widget or a screen rather than the App (the help screen lists them after COMMANDS):
#: (group, key, title, what it does).
SCREEN_KEYS: tuple[tuple[str, str, str, str], ...] = (
    ("Tables", "j / k, ↓ / ↑", "Move", "Move down / up in any table."),
    ("Tables", "g / G", "First / last", "Jump to the first / last row."),
    ("Tables", "← / →", "Sideways", "Scroll a wide table sideways; its first column stays in view."),
    ("Tables", "Enter", "Open", "Open the selected row (criterion evidence, pipeline, job log)."),
    ("Job log", "j / k, g / G", "Move", "Move the cursor line; g / G go to the first / last line."),
    ("Job log", "Enter / space", "Fold", "Fold or unfold the section under the cursor."),
    ("Job log", "+ / -", "All", "Unfold / fold every section (the view stays where it was)."),
    ("Job log", "/ · n / N", "Search", "Search the log; n / N go to the next / previous match."),
    ("Job log", "E", "First error", "Jump to the first error line (unfolding its section)."),
    ("Screens", "Esc", "Back", "Leave an input box, close a modal, or go back from a pipeline or job log."),
    ("Screens", "ctrl+p", "Palette", "Search every command by name."),
)


LISTED: tuple[Command, ...] = tuple(c for c in COMMANDS if c.listed)


def bindings() -> list[Binding]:
    return [
        Binding(
            c.key,
            c.action,
            c.title,
            show=c.show,
            key_display=c.display_key.split(" / ")[0] or None,
            priority=c.priority,
        )
        for c in COMMANDS
    ]


class CommandsProvider(Provider):
    """The palette's view of :data:`COMMANDS`."""

    async def discover(self) -> Hits:
        for c in LISTED:
            yield DiscoveryHit(f"{c.title} ({c.keys_text})", partial(self._run, c), help=c.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for c in LISTED:
            text = f"{c.title} ({c.keys_text})"
            score = max(matcher.match(text), matcher.match(c.help) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(self._run, c), help=c.help)

    async def _run(self, command: Command) -> None:
        await self.app.run_action(command.action)
