"""`cidash sync`: pull new pipelines, jobs, logs, file checksums and image tags into the store."""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from typing import TYPE_CHECKING

from cidash.commands.common import CONNECTION_HELP, add_connection_args, add_store_args, live_terminal
from cidash.textsafe import clean, markup_escape

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from rich.progress import TaskID

    from cidash.config import Config
    from cidash.store import Store
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

One bad record never blocks the rest: a value cidash cannot believe (a negative or huge duration or size, NaN,
an impossible timestamp) is dropped with a warning naming the record; a record that cannot be used at all, or a
log whose download failed after retries, is listed as deferred and fetched again by the next sync.

A store holds one GitLab (ids are per instance): a sync from another URL than the first one is refused.
On a terminal a progress bar shows the work; otherwise (CI=true, piped) one plain line per step.

One sync per project at a time: a sync waits while another one (another terminal, the dashboard) syncs the same
project, then only picks up what is still new. A sync killed with -9 holds nothing: the next one starts at once
and marks the killed run interrupted.

{CONNECTION_HELP}
examples:
  cidash sync --url https://gitlab.example.com --project platform/app --token-file ~/.gitlab-token
  cidash sync --group platform --since 90d
  cidash sync --verbose          # what it asked for, request counts, rate-limit headroom, every warning

exit codes: 0 synced what could be synced (warnings and deferred items are printed; deferred ones are retried
next time; with several projects, one that cannot be synced, e.g. not found, is a warning); 2 configuration,
connection, authentication or store error, or no project could be synced (one line on stderr).
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
        help="requests in flight at once (default [gitlab] concurrency; see docs/commands.md)",
    )
    parser.add_argument(
        "--project-concurrency",
        type=int,
        metavar="N",
        help="projects synced at once, sharing the one request ceiling (default [sync] project_concurrency, 8)",
    )
    parser.add_argument("--no-logs", action="store_true", help="do not fetch job logs this time")
    parser.add_argument("--no-registry", action="store_true", help="do not read registry tags or resource groups")
    parser.add_argument(
        "--accept-origin",
        action="store_true",
        help="the store's GitLab moved to this URL: record it",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="explain what was asked of GitLab")
    from cidash.commands.common import add_format_args

    add_format_args(parser, ("text", "json"), default="text", help_extra="; json: one summary object on stdout")
    parser.add_argument("--progress", choices=("auto", "bar", "plain", "none"), default="auto", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from datetime import UTC, datetime

    from cidash.commands.common import (
        client_from_args,
        json_document,
        load_config_from_args,
        open_store_from_args,
        output_format,
        store_label,
        store_path_from_args,
    )
    from cidash.errors import UsageError
    from cidash.sync import SyncOptions, sync_projects

    fmt = output_format(args)
    now = datetime.now(UTC)
    if args.project_concurrency is not None and not 1 <= args.project_concurrency <= 64:
        raise UsageError(f"--project-concurrency must be between 1 and 64, not {args.project_concurrency}")
    config = load_config_from_args(args)
    client = client_from_args(args, config)
    connection = client.connection
    options = SyncOptions.from_config(config, since=args.since, now=now)
    options = dataclasses.replace(
        options,
        concurrency=connection.concurrency,
        fetch_logs=not args.no_logs,
        fetch_registry=not args.no_registry,
        accept_origin=args.accept_origin,
    )
    if args.project_concurrency is not None:
        options = dataclasses.replace(options, project_concurrency=args.project_concurrency)
    err = sys.stderr
    if args.verbose:
        from cidash.remote.policy import unadvertised_window

        print(f"cidash sync: {connection.describe()}", file=err)
        in_flight = f"up to {connection.concurrency} in flight"
        unadvertised = unadvertised_window(connection.concurrency, chosen=connection.concurrency_chosen)
        if unadvertised < connection.concurrency:
            in_flight += f" (from {unadvertised} while GitLab sends no RateLimit headers)"
        print(
            f"cidash sync: store {store_label(store_path_from_args(args, config))}; ceiling "
            f"{f'{connection.max_rps:g} req/s' if connection.max_rps > 0 else 'none'}, "
            f"{in_flight} over up to {options.project_concurrency} projects at once; "
            "first-sync window "
            f"{'everything' if options.since is None else 'since ' + options.since.strftime('%Y-%m-%d %H:%M UTC')}",
            file=err,
        )
    mode = args.progress
    if mode == "auto":
        mode = "bar" if live_terminal(err) else "plain"  # (CI, TERM=dumb or a pipe: plain lines)
    display = _BarDisplay() if mode == "bar" else _PlainDisplay(enabled=mode == "plain")
    client.limiter.on_pause = display.pause  # a minute without progress is said, not left to look like a hang
    prewarm = _HealthImport(display.update, enabled=_dashboard_follows(config))
    with open_store_from_args(args, config) as store, client:
        previous: dict[int, datetime | None] = dict(store.last_syncs())
        try:
            with display:
                reports = sync_projects(
                    client,
                    store,
                    projects=connection.projects,
                    group=connection.group,
                    options=options,
                    progress=prewarm.update,
                    now=now,
                )
        finally:
            prewarm.join()
            if args.verbose:
                _print_requests(client)
        _keep_dashboard_warm(store, config, reports, previous, verbose=args.verbose)
    if fmt == "json":
        sys.stdout.write(json_document({"projects": [report_json(r) for r in reports]}))
    for report in reports:
        if report.error is not None:
            print(f"cidash sync: warning: {clean(report.project.path)}: not synced: {clean(report.error)}", file=err)
            continue
        if fmt != "json":
            print(clean(report.summary(), keep_newlines=True))
        _print_warnings(report, verbose=args.verbose)
        if args.verbose:
            _print_verbose(report)
    return 0


def _dashboard_follows(config: Config) -> bool:
    """Whether a dashboard may follow this sync (not in CI, and ``[sync] warm_dashboard`` not false): then the
    sync leaves its Health cache warm."""
    from cidash.config import is_ci

    return config.sync.warm_dashboard and not is_ci()


#: Steps after which a sync that counted new pipelines, jobs or logs will change the store.
_CHANGING_PHASES = frozenset({"logs", "checksums", "ci_config", "registry"})


class _HealthImport:
    """Passes progress on to the display; once a sync is seen to change the store (it counted new pipelines, jobs
    or logs, and is past its listings), imports the dashboard's Health computation (~0.1 s of CPU: the core's
    load, criteria, YAML) on a background thread while the sync waits on GitLab, so that
    :func:`_keep_dashboard_warm` at the end only computes. An idle refresh never imports it. A failed import is
    left for the real one to report."""

    def __init__(self, display: Callable[[SyncProgress], None], *, enabled: bool) -> None:
        self.display = display
        self.enabled = enabled
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def update(self, p: SyncProgress) -> None:
        changing = p.phase in _CHANGING_PHASES and bool(p.pipelines or p.jobs or p.logs_total)
        if self.enabled and changing and self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=_import_health, name="cidash-health-import", daemon=True)
                    self._thread.start()
        self.display(p)

    def join(self) -> None:
        """Wait for the import (never leave it half done at exit)."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()


def _import_health() -> None:
    with contextlib.suppress(Exception):
        # imported for their side effect (the modules are loaded): the Health's load and criteria, and the CI
        # file's reader with YAML, which the load imports only when it reads the CI config (~35 ms at the end of a
        # first sync at 300 pipelines, measured on the Health's computation)
        import cidash.ciconfig
        import cidash.tui.data  # noqa: F401


def _keep_dashboard_warm(
    store: Store, config: Config, reports: list[SyncReport], previous: dict[int, datetime | None], *, verbose: bool
) -> None:
    """Leave the dashboard's cached Health as of the store just synced
    (:func:`cidash.tui.healthcache.keep_health_warm`), so the next ``cidash`` starts with it on screen. Not in CI
    (no dashboard follows there). A cache that cannot be computed is only a slower next start: it never fails the
    sync. The core's load is imported only when a Health is computed (an idle refresh only re-marks the cache)."""
    if not _dashboard_follows(config):
        return
    from datetime import UTC, datetime

    from cidash.errors import redact
    from cidash.tui.adapters import sync_changed
    from cidash.tui.healthcache import keep_health_warm

    synced = [(r.project, sync_changed(r)) for r in reports if r.error is None]
    started = time.perf_counter()
    try:
        computed = keep_health_warm(store, config, synced, previous, datetime.now(UTC))
    except Exception as exc:  # a cache: reported with --verbose, never a failed sync
        if verbose:
            print(
                f"cidash sync: the dashboard's cached Health was not updated: {clean(redact(str(exc)))}",
                file=sys.stderr,
            )
        return
    if verbose and computed:
        names = ", ".join(clean(p.path) for p in computed)
        print(
            f"cidash sync: computed the dashboard's Health of {names} for its next start "
            f"({time.perf_counter() - started:.1f} s)",
            file=sys.stderr,
        )


#: Warnings and deferred items printed per project without --verbose (the rest are counted).
SHOWN = 10


def _print_warnings(report: SyncReport, *, verbose: bool) -> None:
    err = sys.stderr
    limit = None if verbose else SHOWN
    for warning in report.warnings[:limit]:
        print(f"cidash sync: warning: {clean(warning)}", file=err)
    hidden = report.warnings_total - len(report.warnings[:limit])
    if hidden > 0:
        print(f"cidash sync: warning: ... and {hidden} more warnings (--verbose shows them)", file=err)
    if report.deferred_total:
        print(
            f"cidash sync: {report.project.path}: {report.deferred_total} item(s) deferred to the next sync:", file=err
        )
        for item in report.deferred[:limit]:
            print(f"  deferred: {clean(item)}", file=err)
        more = report.deferred_total - len(report.deferred[:limit])
        if more > 0:
            print(f"  ... and {more} more (--verbose lists them)", file=err)


def report_json(report: SyncReport) -> dict[str, object]:
    """One project's sync for ``--format json`` (docs/schemas/sync.schema.json)."""
    state = report.rate_limit
    return {
        "project": {"id": report.project.id, "path": report.project.path},
        "first_sync": report.first_sync,
        "duration_seconds": round(report.duration, 3),
        "pipelines": report.pipelines,
        "jobs": report.jobs,
        "logs": report.logs,
        "logs_skipped": report.logs_skipped,
        "logs_unavailable": report.logs_unavailable,
        "logs_failed": report.logs_failed,
        "checksums": report.checksums,
        "ci_configs": report.ci_configs,
        "image_tags": report.image_tags,
        "resource_groups": report.resource_groups,
        "requests": report.requests,
        "bytes": report.bytes,
        "retries": report.retries,
        "rate_limit": {"limit": state.limit, "remaining": state.remaining},
        "warnings": list(report.warnings),
        "warnings_total": report.warnings_total,
        "deferred": [str(item) for item in report.deferred],
        "deferred_total": report.deferred_total,
        "error": report.error,
    }


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
        f"or GitLab's limit; in flight peak {client.limiter.peak_in_flight}, window now {client.limiter.limit()} "
        f"(halved {client.limiter.cuts} times)",
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
    """One line per step of each project (and every few seconds during long steps), for logs and CI. Several
    projects in flight interleave whole lines, each naming its project."""

    def __init__(self, *, enabled: bool) -> None:
        import threading

        self.enabled = enabled
        self._last: dict[str, tuple[str, float]] = {}  # project -> (phase, when) of its last line
        self._lock = threading.Lock()

    def __enter__(self) -> _PlainDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, p: SyncProgress) -> None:
        if not self.enabled:
            return
        with self._lock:
            if p.phase == "done":
                self._last.pop(p.project, None)
                return
            now = time.monotonic()
            last = self._last.get(p.project)
            if last is not None and last[0] == p.phase and now - last[1] < 5.0:
                return
            self._last[p.project] = (p.phase, now)
            detail = {
                "waiting": "waiting",
                "project": "starting",
                "pipelines": f"pipelines ({p.pipelines} new or changed so far)",
                "jobs": f"jobs ({p.pipelines} pipelines, {p.jobs} jobs so far)",
                "logs": f"logs {p.logs_done}/{p.logs_total}",
            }.get(p.phase, p.phase)
            if p.message:
                detail += f" ({p.message})"
            line = f"sync {p.project}: {detail}; {p.requests} requests, {_kb(p.bytes)}"
            sys.stderr.write(clean(line) + "\n")  # one write: lines of projects in flight never mix
            sys.stderr.flush()

    def pause(self, seconds: float, why: str) -> None:
        if self.enabled:
            with self._lock:
                sys.stderr.write(clean(_pause_line(seconds, why)) + "\n")
                sys.stderr.flush()


def _pause_line(seconds: float, why: str) -> str:
    return f"cidash sync: GitLab's rate limit for this token: {why}; waiting {seconds:.0f} s for it to reset"


def _kb(n: int) -> str:
    return f"{n / 1000:.0f} kB" if n < 10_000_000 else f"{n / 1_000_000:.1f} MB"


class _BarDisplay:
    """A bar per project in flight (removed when it ends) and, once there are several, a count of those done."""

    def __init__(self) -> None:
        import threading

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
        self._tasks: dict[str, TaskID] = {}
        self._overall: TaskID | None = None
        self._seen = 0
        self._done = 0
        self._lock = threading.Lock()

    def __enter__(self) -> _BarDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, p: SyncProgress) -> None:
        with self._lock:
            self._update(p)

    def pause(self, seconds: float, why: str) -> None:
        with self._lock:  # printed above the bars, which stay
            self.progress.console.print(_pause_line(seconds, why), markup=False, highlight=False)

    def _update(self, p: SyncProgress) -> None:
        task = self._tasks.pop(p.project, None) if p.phase == "done" else self._tasks.get(p.project)
        if p.phase == "done":
            self._done += 1
            if task is not None:
                self.progress.remove_task(task)
            self._count()
            return
        if task is None:
            self._seen += 1
            if self._seen == 2:
                self._overall = self.progress.add_task("", total=None, extra="")
                self._count()
            task = self.progress.add_task(markup_escape(p.project), total=None, extra="")
            self._tasks[p.project] = task
        extra = f"{p.pipelines} pipelines, {p.jobs} jobs, {_kb(p.bytes)}, {p.requests} req"
        total = p.logs_total if p.logs_total else None
        self.progress.update(
            task,
            description=markup_escape(f"{p.project} [{p.phase}]"),
            total=total,
            completed=p.logs_done,
            extra=extra,
        )

    def _count(self) -> None:
        if self._overall is not None:
            self.progress.update(
                self._overall, description=f"projects done: {self._done}", extra="", completed=self._done
            )
