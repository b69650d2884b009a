"""The ``cidash`` command line: one registry of subcommands, one error policy.

Each subcommand lives in ``cidash.commands.<name>`` and exposes ``HELP`` (one line), ``DESCRIPTION``
(the ``--help`` text), ``configure(parser)`` and ``run(args) -> int``. Modules keep heavy imports inside
``run`` so ``cidash --help`` stays fast.

Exit codes everywhere: 0 ok, 1 the check found problems, 2 usage/config/connection error (one line on stderr,
never a traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import NoReturn, Protocol, cast

from cidash import __version__
from cidash.errors import CidashError, UsageError, redact
from cidash.models import ExitCode
from cidash.textsafe import clean

#: (command, module) in the order ``--help`` lists them. The command-line contract: keep these stable.
COMMANDS: list[tuple[str, str]] = [
    ("tui", "cidash.commands.tui"),
    ("demo", "cidash.commands.demo"),
    ("trace", "cidash.commands.trace"),
    ("key", "cidash.commands.key"),
    ("lint", "cidash.commands.lint"),
    ("sync", "cidash.commands.sync"),
    ("prune", "cidash.commands.prune"),
    ("check", "cidash.commands.check"),
    ("compare", "cidash.commands.compare"),
    ("export", "cidash.commands.export"),
    ("rebuild", "cidash.commands.rebuild"),
    ("retry", "cidash.commands.retry"),
    ("simulate", "cidash.commands.simulate"),
    ("doctor", "cidash.commands.doctor"),
    ("completion", "cidash.commands.completion"),
    ("serve", "cidash.commands.serve"),
]


class CommandModule(Protocol):
    HELP: str
    DESCRIPTION: str

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


class UsageExit(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)


def usage_line(prog: str, message: str) -> str:
    """The one line a usage error prints: ``cidash check: error: ... (see 'cidash check --help')``."""
    return f"{prog}: error: {' '.join(message.split())} (see '{prog} --help')"


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (exit 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        raise UsageExit(usage_line(self.prog, message))


#: Headings of the description blocks shown after the options list (what a reader looks for last).
_EPILOG_HEADINGS = ("exit codes", "example", "examples")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """One options section, argparse's: choices read ``a|b|c``, lines up to 120 columns, help text aligned."""

    def __init__(self, prog: str) -> None:
        import shutil

        width = min(shutil.get_terminal_size((100, 24)).columns, 120) - 2
        super().__init__(prog, max_help_position=32, width=max(width, 60))

    def _metavar_formatter(self, action: argparse.Action, default_metavar: str) -> Callable[[int], tuple[str, ...]]:
        if action.metavar is None and action.choices is not None:
            text = "|".join(str(c) for c in action.choices)
            return lambda size: (text,) * size
        return super()._metavar_formatter(action, default_metavar)


def split_description(text: str) -> tuple[str, str]:
    """A command's ``DESCRIPTION`` as (what argparse prints before the options, what it prints after).

    Blocks headed ``exit codes:``/``examples:`` go after the options, so ``--help`` reads: what it does, the
    options, then exit codes and examples.
    """
    before: list[str] = []
    after: list[str] = []
    target = before
    previous = ""
    for line in text.rstrip("\n").split("\n"):
        starts_block = not previous.strip() or line.rstrip().endswith(":")
        if line and not line[0].isspace() and starts_block:
            heading = line.split(":", 1)[0].strip().lower()
            target = after if ":" in line and heading in _EPILOG_HEADINGS else before
        target.append(line)
        previous = line
    return "\n".join(before).rstrip() + "\n", "\n".join(after).strip("\n")


def _load(module: str) -> CommandModule:
    mod: ModuleType = importlib.import_module(module)
    return cast(CommandModule, mod)


def build_parser(only: str | None = None) -> Parser:
    """The whole command line; ``only``: with that one command alone (it parses its own arguments the same, and
    the start-up skips importing the fifteen other command modules, ~50 ms; ``""``: none, for ``--version``)."""
    parser = Parser(
        prog="cidash",
        description=(
            "A terminal dashboard for GitLab CI health: CI-image size, job start-up, cache hits and staleness,\n"
            "image-build reliability, before/after a migration. Without a command it opens the dashboard."
        ),
        epilog=(
            "Exit codes: 0 ok, 1 the check found problems, 2 usage/config/connection error, 130 interrupted (Ctrl-C).\n"
            "Try it without a token: cidash demo"
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cidash {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, module_name in COMMANDS:
        if only is not None and name != only:
            continue
        module = _load(module_name)
        description, epilog = split_description(module.DESCRIPTION)
        cmd = sub.add_parser(
            name,
            help=module.HELP,
            description=description,
            epilog=epilog or None,
            formatter_class=HelpFormatter,
        )
        module.configure(cmd)
        cmd.set_defaults(_module=module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if "_ARGCOMPLETE" in os.environ:  # a shell asking for completions (see `cidash completion`)
            _complete(build_parser())
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
            argv = ["tui", *argv]
        # a named command needs only its own parser, --version none (an unknown one gets the whole, to list the
        # commands)
        names = {name for name, _ in COMMANDS}
        parser = build_parser(argv[0] if argv[0] in names else "" if argv == ["--version"] else None)
        args = parser.parse_args(argv)
        module = _load(args._module)
        return module.run(args)
    except UsageExit as exc:
        print(clean(str(exc)), file=sys.stderr)
        return ExitCode.USAGE
    except UsageError as exc:
        print(usage_line(_prog(argv), exc.one_line()), file=sys.stderr)
        return exc.exit_code
    except CidashError as exc:
        # messages can quote GitLab (names, server error texts) or a bad config file: one clean line
        print(f"cidash: error: {clean(exc.one_line())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cidash: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # Output piped into `head` and closed: not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.OK
    except Exception as exc:  # last line of defence: one line, never a traceback
        if os.environ.get("CIDASH_DEBUG"):
            raise
        print(
            f"cidash: internal error: {type(exc).__name__}: {clean(redact(str(exc)))} "
            "(set CIDASH_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return ExitCode.USAGE


def _complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell's completion request and exit (argcomplete talks to the shell over fd 8)."""
    import argcomplete

    argcomplete.autocomplete(parser)  # exits when _ARGCOMPLETE is set


def _prog(argv: Sequence[str]) -> str:
    """``cidash <command>`` for the command being run (for usage errors raised after parsing)."""
    names = {name for name, _ in COMMANDS}
    command = next((a for a in argv if not a.startswith("-")), None)
    return f"cidash {command}" if command in names else "cidash"


if __name__ == "__main__":
    raise SystemExit(main())
