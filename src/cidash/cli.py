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
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn, Protocol, cast

from cidash import __version__
from cidash.errors import CidashError, redact

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


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (exit 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        raise UsageExit(f"{self.prog}: {message} (see '{self.prog} --help')")


def _load(module: str) -> CommandModule:
    mod: ModuleType = importlib.import_module(module)
    return cast(CommandModule, mod)


def build_parser() -> Parser:
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
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"cidash {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, module_name in COMMANDS:
        module = _load(module_name)
        cmd = sub.add_parser(
            name,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.configure(cmd)
        cmd.set_defaults(_module=module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
            argv = ["tui", *argv]
        args = parser.parse_args(argv)
        module = _load(args._module)
        return module.run(args)
    except UsageExit as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except CidashError as exc:
        print(f"cidash: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cidash: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed: not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # last line of defence: one line, never a traceback
        if os.environ.get("CIDASH_DEBUG"):
            raise
        print(
            f"cidash: internal error: {type(exc).__name__}: {redact(str(exc))} (set CIDASH_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
