"""`cidash compare` (not built yet)."""

from __future__ import annotations

import argparse

from cidash.errors import UsageError

HELP = "(compare: not available yet)"
DESCRIPTION = "This command is not available yet."


def configure(parser: argparse.ArgumentParser) -> None:
    del parser


def run(args: argparse.Namespace) -> int:
    del args
    raise UsageError("'cidash compare' is not available yet")
