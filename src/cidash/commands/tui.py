"""`cidash tui` (also plain `cidash`): the dashboard for the configured project(s)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cidash.commands.common import CONNECTION_HELP, add_connection_args, add_store_args, bounded

if TYPE_CHECKING:
    from cidash.connection import Connection

HELP = "the dashboard for the configured project(s) (the default command)"
DESCRIPTION = f"""\
Open the terminal dashboard: Health (the success criteria), Pipelines, Start-up, Caches, Images and Compare
tabs over the local store, refreshed from GitLab in the background (a sync every [tui] refresh_seconds,
default 60; re-armed after each refresh, paused while the terminal is hidden or with `s`).

It shows what is in the store at once (the last Health computed is cached), then syncs. When a refresh
fails, the last good data stays on screen and the header says "stale: last refresh failed (reason)".
A refused token at start shows a screen with what to set.

Keys: ? help, 1-6 tabs, / filter, Enter open, Esc back, r refresh, p project, k keys, b rebuild, t retry,
e export, s pause polling, ctrl+t theme, ctrl+p command palette, q quit.

{CONNECTION_HELP}
exit codes: 0 on quit; 2 usage/config/store error (one line on stderr).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    add_store_args(parser)
    add_connection_args(parser)
    parser.add_argument(
        "--refresh",
        type=bounded(0, 86_400),
        metavar="SECONDS",
        help="poll interval (0: only on `r`; default [tui] refresh_seconds)",
    )
    parser.add_argument(
        "--offline", action="store_true", help="do not contact GitLab: show the store only (actions disabled)"
    )
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="disable rebuild, retry and key writes (same as [actions] read_only = true)",
    )
    parser.add_argument("--theme", metavar="NAME", help="textual-dark (default), textual-light, or any Textual theme")
    parser.add_argument(
        "--checkout",
        metavar="DIR",
        default=None,
        help="read DIR as the project's checkout instead of the current directory (cidash demo passes its own)",
    )
    parser.add_argument(
        "--no-checkout",
        action="store_true",
        help="do not read the current directory as the project's checkout (no local .cache-key panel, no `k`)",
    )


def run(args: argparse.Namespace) -> int:
    from cidash.commands.common import has_terminal
    from cidash.errors import UsageError

    if not has_terminal():
        raise UsageError(
            "the dashboard needs a terminal (stdin and stdout are not one)",
            hint="in scripts and CI use 'cidash check', 'cidash export' or 'cidash demo --headless'",
        )

    from pathlib import Path

    from cidash.commands.common import connection_from_args, load_config_from_args, open_store_from_args
    from cidash.errors import CidashError, ConfigError
    from cidash.tui.healthcache import default_cache_dir
    from cidash.tui.prefetch import start_first_health

    config = load_config_from_args(args)
    tui = config.tui
    if args.refresh is not None:
        tui = dataclasses.replace(tui, refresh_seconds=max(0.0, args.refresh))
    if args.theme:
        tui = dataclasses.replace(tui, theme=args.theme)
    actions_cfg = config.actions
    if args.read_only:
        actions_cfg = dataclasses.replace(actions_cfg, read_only=True)
    config = dataclasses.replace(config, tui=tui, actions=actions_cfg)
    checkout = None if args.no_checkout else Path(args.checkout) if args.checkout else Path.cwd()
    if checkout is not None and not checkout.is_dir():
        raise ConfigError(f"--checkout: {checkout} is not a directory")
    project = (args.project or [None])[0]
    cache_dir = default_cache_dir()
    with open_store_from_args(args, config) as store:
        # A cold start's first Health, computed by a helper process while the rest of this process reads the
        # connection, imports and starts Textual (before them: cidash.tui.prefetch); None on a warm start.
        helper = start_first_health(store, config, wanted=project, cache_dir=cache_dir, now=datetime.now(UTC))
        try:
            startup_error: CidashError | None = None
            connection = None
            gitlab_url = config.gitlab.url
            has_token = True
            if not args.offline:
                try:
                    connection = connection_from_args(args, config)
                    gitlab_url = connection.url
                    has_token = connection.token is not None
                except ConfigError as exc:
                    startup_error = exc

            from cidash.tui.adapters import core_actions, log_fetcher, sync_refresher, system_clock
            from cidash.tui.app import CidashApp

            client_factory = None if connection is None else _client_factory(connection)

            app = CidashApp(
                store,
                config,
                project=project,
                clock=system_clock,
                client_factory=client_factory,
                refresher=sync_refresher(client_factory, store, config, system_clock) if client_factory else None,
                actions=core_actions(client_factory, store, config, checkout=checkout),
                checkout=checkout,
                log_fetcher=log_fetcher(client_factory) if client_factory else None,
                source="offline" if args.offline else "",
                startup_error=startup_error,
                gitlab_url=gitlab_url,
                has_token=has_token,
                cache_dir=cache_dir,
                first_health=helper,
            )
            app.run()
        finally:
            if helper is not None:
                helper.close()  # the dashboard quit before reading it
    return 0


def _client_factory(connection: Connection) -> Callable[[], Any]:
    """A new :class:`cidash.remote.GitLabClient` per call; :mod:`cidash.remote` imported by the first (a refresh's
    worker, after the dashboard's first paint; never with ``--offline``), not before the dashboard starts."""

    def client() -> Any:
        from cidash.remote import GitLabClient

        return GitLabClient(connection)

    return client
