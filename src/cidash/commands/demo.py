"""`cidash demo`: cidash against the built-in simulated GitLab, with a throwaway store. No token, no network."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from cidash.sim.demo import DemoEnvironment

HELP = "cidash against the built-in simulated GitLab: no token, no network"
DESCRIPTION = """\
Start the built-in simulated GitLab on a free 127.0.0.1 port (a seeded 30-day story: project platform/app moves
its CI image from Debian, 807 MB, to Alpine, 215 MB, on day 16), point cidash at it with a throwaway store in a
temporary directory, and show what cidash makes of it.

--headless runs, in order: 'cidash sync' (with its progress bar), 'cidash check' (the criteria, as of the
simulator's clock) and 'cidash compare' (main before vs after the migration), printing each one's output.
Ctrl-C stops it (exit 130). Plain 'cidash demo' opens the dashboard (--dashboard); without a terminal it
prints the reports instead.

--dashboard opens the dashboard instead, against a live variant of the story: the 30 days end today and the
simulator's clock runs with the real one (--time-scale X runs it X times faster), so today's remaining
pipelines appear as their time comes; rebuild and retry really change the simulated world.

exit codes: 0 the demo ran (whatever the criteria say), 2 a step failed to run, 130 interrupted (Ctrl-C).

Example:
  cidash demo --headless
"""


#: What plain `cidash demo` does: "headless" (the reports) or "dashboard" (the TUI).
DEFAULT_MODE = "dashboard"


def configure(parser: argparse.ArgumentParser) -> None:
    from cidash.commands.common import bounded

    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--headless", action="store_true", help="print the reports (sync, check, compare)")
    mode.add_argument("--dashboard", action="store_true", help="open the dashboard against the live simulator")
    parser.add_argument(
        "--seed", type=int, default=7, metavar="S", help="scenario seed (default 7); the same seed gives the same story"
    )
    parser.add_argument(
        "--time-scale",
        type=bounded(0, 100_000, low_ok=False),
        default=1.0,
        metavar="X",
        help="with --dashboard: simulated seconds per real second (default 1)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (store, config) and print where it is"
    )


def available(command: str) -> bool:
    """True when ``cidash <command>`` is implemented (not a placeholder stub)."""
    try:
        module = importlib.import_module(f"cidash.commands.{command}")
    except ImportError:
        return False
    help_text = getattr(module, "HELP", "")
    return bool(help_text) and not help_text.startswith("(")


def steps(env: DemoEnvironment) -> list[tuple[str, list[str]]]:
    """(command, argv) of the headless demo, in order."""
    scenario = env.scenario
    migration_day = scenario.migration_at.date()
    before = (migration_day - timedelta(days=1)).isoformat()
    now = env.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        ("sync", env.argv("sync")),
        ("check", env.argv("check", "--now", now)),
        (
            "compare",
            env.argv("compare", "--baseline", f"..{before},ref:main", "--candidate", f"{migration_day}..,ref:main"),
        ),
    ]


def _show(argv: Sequence[str], env: DemoEnvironment) -> str:
    shown = [a if a != str(env.config_path) else "<demo config>" for a in argv]
    return "$ cidash " + " ".join(shown)


def run_headless(env: DemoEnvironment, *, out: TextIO | None = None) -> int:
    from cidash.cli import main as cli_main

    stream = out if out is not None else sys.stdout
    failed = False
    print(
        f"cidash demo: simulated GitLab at {env.sim.url}, project {env.sim.project_path} "
        f"({env.sim.truth.pipelines} pipelines, {env.scenario.days} days, migration on "
        f"{env.scenario.migration_at:%Y-%m-%d %H:%M} UTC)",
        file=stream,
        flush=True,
    )
    for command, argv in steps(env):
        print(file=stream)
        if not available(command):
            print(f"-- skipped: 'cidash {command}' is not available yet", file=stream)
            continue
        print(_show(argv, env), file=stream, flush=True)
        code = cli_main(argv)
        sys.stdout.flush()
        if code == 130:  # Ctrl-C inside the step (already reported): stop the demo, do not run the next steps
            return 130
        if code == 2:
            failed = True
            print(f"-- 'cidash {command}' failed (exit 2)", file=stream)
            if command == "sync":
                break
        elif code == 1:
            print(f"-- 'cidash {command}' found problems (exit 1)", file=stream)
    return 2 if failed else 0


def run_dashboard(env: DemoEnvironment) -> int:
    """Open the dashboard (``cidash tui``) against the demo environment."""
    from cidash.cli import main as cli_main
    from cidash.errors import UsageError

    if not available("tui"):
        raise UsageError("the dashboard is not available yet", hint="try 'cidash demo --headless'")
    if env.checkout is None:  # no git on this machine: no checkout, so no K and no local .cache-key panel
        return cli_main(env.argv("tui", "--no-checkout"))
    return cli_main(env.argv("tui", "--checkout", str(env.checkout)))


def run(args: argparse.Namespace) -> int:
    from cidash.errors import UsageError
    from cidash.sim import Scenario
    from cidash.sim.demo import demo_environment

    if args.time_scale < 0:
        raise UsageError("--time-scale must not be negative")
    from cidash.commands.common import has_terminal

    mode = "dashboard" if args.dashboard else "headless" if args.headless else DEFAULT_MODE
    if mode == "dashboard" and not args.dashboard and not has_terminal():
        print("cidash demo: no terminal, so printing the reports instead of opening the dashboard", file=sys.stderr)
        mode = "headless"
    live = mode == "dashboard"
    with demo_environment(
        Scenario(seed=args.seed), live=live, time_scale=args.time_scale, keep=args.keep, checkout=live
    ) as env:
        code = run_dashboard(env) if live else run_headless(env)
        if args.keep:
            where = f"config {env.config_path}, store {env.store_path}"
            if env.checkout is not None:
                where += f", git checkout {env.checkout}"
            print(f"\nkept: {env.directory} ({where})")
        return code
