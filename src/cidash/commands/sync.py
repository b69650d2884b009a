"""`cidash sync`: pull new pipelines, jobs, logs, file checksums and image tags into the store."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING

from cidash.commands.common import CONNECTION_HELP, add_connection_args, add_store_args
from cidash.textsafe import clean, markup_escape

if TYPE_CHECKING:
    from cidash.sync import SyncProgress, SyncReport

HELP = "pull new pipelines, jobs, logs and image sizes into the store, with a progress bar"
DESCRIPTION = f"""\
Pull the CI history of the configured project(s) into the local SQLite store: pipelines (with durations),
jobs (retried ones flagged), the parsed facts of each finished job's log (start-up phases, image and digest,
cache events; the raw log is not kept), file checksums of the critical files at every pipeline commit, the CI
file at the newest commit of each ref, CI-image registry tags with sizes, and resource groups.

The first sync of a project goes back --since (default [sync] since, 30d). Later syncs are incremental: they ask
only for what changed (an unchanged project costs one or two requests), re-check unfinished jobs, and fetch
each finished job's log exactly once. A sync can be interrupted at any moment and re-run: nothing is lost or
duplicated. Several syncs (and readers) may use one store at the same time.

On a terminal a progress bar shows pipelines, jobs, logs and bytes; otherwise (CI=true, piped) one plain line
per step.

{CONNECTION_HELP}
examples:
  cidash sync --url https://gitlab.example.com --project platform/app --token-file ~/.gitlab-token
  cidash sync --group platform --since 90d
  cidash sync --verbose          # what it asked for, request counts, rate-limit headroom

exit codes: 0 synced (warnings, e.g. a log that could not be fetched, are printed and retried next time);
2 configuration, connection, authentication or store error (one line on stderr).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    add_store_args(parser)
    add_connection_args(parser)
    parser.add_argument(
        "--since", metavar="WHEN", help="how far back a first sync goes: 30d, 12h, 2w, an ISO date, or 'all'"
    )
    parser.add_argument("--max-rps", type=float, metavar="N", help="request-rate ceiling (default [gitlab] max_rps)")
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="requests in flight at once (default [gitlab] concurrency)",
    )
    parser.add_argument("--no-logs", action="store_true", help="do not fetch job logs this time")
    parser.add_argument("--no-registry", action="store_true", help="do not read registry tags or resource groups")
    parser.add_argument("-v", "--verbose", action="store_true", help="explain what was asked of GitLab")
    parser.add_argument("--progress", choices=("auto", "bar", "plain", "none"), default="auto", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from datetime import UTC, datetime

    from cidash.commands.common import client_from_args, load_config_from_args, open_store_from_args
    from cidash.sync import SyncOptions, sync_projects

    now = datetime.now(UTC)
    config = load_config_from_args(args)
    client = client_from_args(args, config)
    connection = client.connection
    options = SyncOptions.from_config(config, since=args.since, now=now)
    options = dataclasses.replace(
        options,
        concurrency=connection.concurrency,
        fetch_logs=not args.no_logs,
        fetch_registry=not args.no_registry,
    )
    err = sys.stderr
    if args.verbose:
        print(f"cidash sync: {connection.describe()}", file=err)
        print(
            f"cidash sync: store {args.db or config.store_path()}; ceiling {connection.max_rps:g} req/s, "
            f"{connection.concurrency} in flight; first-sync window "
            f"{'everything' if options.since is None else 'since ' + options.since.strftime('%Y-%m-%d %H:%M UTC')}",
            file=err,
        )
    mode = args.progress
    if mode == "auto":
        ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
        mode = "bar" if err.isatty() and not ci else "plain"
    display = _BarDisplay() if mode == "bar" else _PlainDisplay(enabled=mode == "plain")
    with open_store_from_args(args, config) as store, client:
        try:
            with display:
                reports = sync_projects(
                    client,
                    store,
                    projects=connection.projects,
                    group=connection.group,
                    options=options,
                    progress=display.update,
                    now=now,
                )
        finally:
            if args.verbose:
                _print_requests(client)
    for report in reports:
        print(clean(report.summary(), keep_newlines=True))
        for warning in report.warnings:
            print(f"cidash sync: warning: {clean(warning)}", file=err)
        if args.verbose:
            _print_verbose(report)
    return 0


def _print_requests(client: object) -> None:
    from cidash.remote import GitLabClient

    assert isinstance(client, GitLabClient)
    stats = client.stats
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats.by_kind.items()))
    state = client.limiter.state
    headroom = "not reported by the server"
    if state.remaining is not None:
        headroom = f"{state.remaining}/{state.limit if state.limit is not None else '?'} left"
    print(
        f"cidash sync: {stats.requests} requests ({kinds or 'none'}); {stats.retries} retried; "
        f"rate limit {headroom}; workers spent {client.limiter.waited:.1f}s in total waiting for the request ceiling "
        f"or GitLab's limit",
        file=sys.stderr,
    )


def _print_verbose(report: SyncReport) -> None:
    print(
        f"  {clean(report.project.path)} (id {report.project.id}): {'first sync' if report.first_sync else 'refresh'}; "
        f"logs parsed {report.logs}, skipped {report.logs_skipped}, unavailable {report.logs_unavailable}, "
        f"failed {report.logs_failed}; CI configs {report.ci_configs}; resource groups {report.resource_groups}; "
        f"{report.retries} retries",
        file=sys.stderr,
    )


class _PlainDisplay:
    """One line per step (and every few seconds during long steps), for logs and CI."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._last: tuple[str, str] | None = None
        self._last_at = 0.0

    def __enter__(self) -> _PlainDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, p: SyncProgress) -> None:
        if not self.enabled or p.phase == "done":
            return
        key = (p.project, p.phase)
        now = time.monotonic()
        if key == self._last and now - self._last_at < 5.0:
            return
        self._last, self._last_at = key, now
        detail = {
            "project": "starting",
            "pipelines": f"pipelines ({p.pipelines} new or changed so far)",
            "jobs": f"jobs ({p.pipelines} pipelines, {p.jobs} jobs so far)",
            "logs": f"logs {p.logs_done}/{p.logs_total}",
        }.get(p.phase, p.phase)
        if p.message:
            detail += f" ({p.message})"
        line = f"sync {p.project}: {detail}; {p.requests} requests, {_kb(p.bytes)}"
        print(clean(line), file=sys.stderr, flush=True)


def _kb(n: int) -> str:
    return f"{n / 1000:.0f} kB" if n < 10_000_000 else f"{n / 1_000_000:.1f} MB"


class _BarDisplay:
    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"),
            console=Console(stderr=True),
            transient=True,
        )
        self._task: object = None

    def __enter__(self) -> _BarDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, p: SyncProgress) -> None:
        from rich.progress import TaskID

        if self._task is None:
            self._task = self.progress.add_task(markup_escape(p.project), total=None, extra="")
        task = self._task
        assert isinstance(task, int)
        extra = f"{p.pipelines} pipelines, {p.jobs} jobs, {_kb(p.bytes)}, {p.requests} req"
        total = p.logs_total if p.logs_total else None
        self.progress.update(
            TaskID(task),
            description=markup_escape(f"{p.project} [{p.phase}]"),
            total=total,
            completed=p.logs_done,
            extra=extra,
        )
