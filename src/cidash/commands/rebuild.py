"""`cidash rebuild` (not built yet)."""

from __future__ import annotations

import argparse

from cidash.errors import UsageError

HELP = "(rebuild: not available yet)"
DESCRIPTION = "This command is not available yet."


def configure(parser: argparse.ArgumentParser) -> None:
    del parser


def run(args: argparse.Namespace) -> int:
    del args
    raise UsageError("'cidash rebuild' is not available yet")
