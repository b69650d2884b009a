"""Modals: help (from the command registry), evidence, action confirmation, project switch, export path,
and the full-screen "cannot authenticate" explanation."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Input, OptionList, Static

from cidash.criteria import detail_rows
from cidash.textsafe import clean
from cidash.tui.adapters import ActionPlan
from cidash.tui.commands import LISTED, SCREEN_KEYS
from cidash.tui.data import Evidence
from cidash.tui.screens.base import key_display, texts
from cidash.tui.widgets.footer import KeyFooter
from cidash.tui.widgets.table import NavTable


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[tuple[str, str, str]] = []  # (keys, title, what), as listed

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", expand=True)
        table.add_column("Key", style="bold cyan", no_wrap=True)
        table.add_column("Command", no_wrap=True)
        table.add_column("What it does")
        groups = list(dict.fromkeys(c.group for c in LISTED))
        for group in groups:
            table.add_row(Text(group, style="bold underline"), "", "")
            for c in LISTED:
                if c.group == group:
                    table.add_row(c.keys_text, c.title, c.help)
                    self.entries.append((c.keys_text, c.title, c.help))
        for group in dict.fromkeys(g for g, *_ in SCREEN_KEYS):
            table.add_row(Text(group, style="bold underline"), "", "")
            for g, key, title, what in SCREEN_KEYS:
                if g == group:
                    table.add_row(key, title, what)
                    self.entries.append((key, title, what))
        with Vertical(id="help-box", classes="modal-box"):
            yield Static("[b]cidash keys[/b]  (Esc closes)")
            with VerticalScroll():
                yield Static(table)


class EvidenceScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, evidence: Evidence) -> None:
        super().__init__()
        self.evidence = evidence

    def compose(self) -> ComposeResult:
        ev = self.evidence
        with Vertical(id="evidence-box", classes="modal-box"):
            yield Static(Text.assemble((clean(ev.title), "bold"), "  (Esc closes)"))
            yield Static(Text(clean(ev.sentence, keep_newlines=True)), id="evidence-sentence")
            rows = detail_rows(ev.details) if ev.details else []
            if rows:
                grid = Table.grid(padding=(0, 2))
                grid.add_column(style="dim")
                grid.add_column()
                for label, value in rows:
                    grid.add_row(Text(clean(label)), Text(clean(value)))
                yield Static(grid, id="evidence-details")
            table: DataTable[str] = NavTable(id="evidence-table", cursor_type="row", zebra_stripes=True)
            yield table

    def selected_link(self) -> tuple[str, int | None]:
        """The job (else the pipeline) of the highlighted evidence row."""
        ev = self.evidence
        row = self.query_one("#evidence-table", DataTable).cursor_row
        if 0 <= row < len(ev.rows):
            for kind in ("job", "pipeline"):
                if kind in ev.columns:
                    value = ev.rows[row][ev.columns.index(kind)].lstrip("#")
                    if value.isdigit():
                        return kind, int(value)
        return ("registry", None) if "digest" in ev.columns else ("pipelines", None)

    def on_mount(self) -> None:
        table = self.query_one("#evidence-table", DataTable)
        if self.evidence.columns:
            table.add_columns(*self.evidence.columns)
            keys = [i for i, c in enumerate(self.evidence.columns) if c == "key"]
            for row in self.evidence.rows:
                cells = [key_display(c) if i in keys else c for i, c in enumerate(row)]
                table.add_row(*texts(cells))
        table.focus()


class ConfirmScreen(ModalScreen[bool]):
    """Shows an action plan and its dry-run call. Only the Confirm button (or ``y``) returns True."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "cancel", "Cancel"),
        Binding("y", "confirm", "Confirm"),
    ]

    def __init__(self, plan: ActionPlan) -> None:
        super().__init__()
        self.plan = plan

    def compose(self) -> ComposeResult:
        p = self.plan
        with Vertical(id="confirm-box", classes="modal-box"):
            yield Static(Text(clean(p.title), style="bold"))
            yield Static(Text("\n".join(clean(line) for line in p.lines)))
            if p.diff:
                yield Static(Text("\n".join(clean(line) for line in p.diff), style="yellow"))
            yield Static(Text("dry run: " + clean(p.dry_run), style="cyan"), id="dry-run")
            with Horizontal(id="confirm-buttons"):
                yield Button("Confirm (y)", id="confirm", variant="error")
                yield Button("Cancel (Esc)", id="cancel", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class ProjectScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, projects: list[str], current: str | None) -> None:
        super().__init__()
        self.projects = projects
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="project-box", classes="modal-box"):
            yield Static("[b]Switch project[/b] (Enter picks, Esc cancels)")
            yield OptionList(
                *[Text(f"{'● ' if p == self.current else '  '}{clean(p)}") for p in self.projects], id="project-list"
            )

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.projects[event.option_index])

    def action_cancel(self) -> None:
        self.dismiss(None)


class ExportScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, what: str, default_path: str) -> None:
        super().__init__()
        self.what = what
        self.default_path = default_path

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box", classes="modal-box"):
            yield Static(f"[b]Export {self.what} as Markdown[/b] — file to write (Enter writes, Esc cancels)")
            yield Input(value=self.default_path, id="export-path")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class AuthScreen(Screen[None]):
    """Shown when the first refresh is refused (401/403) or no connection is configured."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q,escape", "app.quit", "Quit"),
        Binding("c", "dismiss_screen", "Continue offline"),
    ]

    def __init__(self, title: str, reason: str, has_data: bool, *, setup_help: bool = True) -> None:
        super().__init__()
        self.title_text = title
        self.reason = reason
        self.has_data = has_data
        self.setup_help = setup_help  # how to set a URL and a token (not when those work and the store does not)

    def compose(self) -> ComposeResult:
        text = Text()
        text.append(f"{clean(self.title_text)}\n\n", style="bold red")
        text.append(clean(self.reason) + "\n\n")
        if self.setup_help:
            text.append("cidash needs a GitLab URL and an API token with read_api scope:\n\n", style="bold")
            text.append(
                "  export GITLAB_URL=https://gitlab.example.com\n  export GITLAB_TOKEN=<personal access token>\n\n"
            )
            text.append("or pass --url and --token-file FILE, or set [gitlab] url / token_file in cidash.toml,\n")
            text.append("or name a python-gitlab config section with [gitlab] python_gitlab_section.\n")
            text.append("Actions (rebuild, retry) need the api scope.\n\n")
            text.append("To try cidash without GitLab: cidash demo\n\n", style="italic")
        if self.has_data:
            text.append("c: continue with the data already in the store (read-only)   q: quit", style="bold")
        else:
            text.append("q: quit", style="bold")
        with Vertical(id="auth-box"):
            yield Static(text)
        yield KeyFooter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """ "c Continue offline" is offered only when the store has data to continue with."""
        return self.has_data if action == "dismiss_screen" else True

    def action_dismiss_screen(self) -> None:
        if self.has_data:
            self.app.pop_screen()
