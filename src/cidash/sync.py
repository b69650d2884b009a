"""The sync engine: pull a project's CI history from GitLab into the store, incrementally and resumably.

One sync of one project, in order (each step commits before the next; every cursor moves in the same
transaction as the rows it covers, so killing the process at any point and re-running loses and duplicates
nothing):

1. **Pipelines** changed since the ``pipelines_updated_after`` cursor (first sync: since ``--since``), listed
   oldest-update-first 100 per request. Pipelines that are new or changed (status or ``updated_at``) are fetched
   one by one, concurrently, for the fields the listing omits (``started_at``, ``finished_at``, ``duration``).
   Each page is committed with the cursor advanced to its newest ``updated_at``.
2. **Jobs** through the project-wide keyset listing (see :func:`cidash.remote.jobs.jobs_newest_first`
   for why), newest first, down to the oldest pipeline whose jobs are due (``pipelines.jobs_synced_for`` differs
   from its ``updated_at``) or still running, and the oldest job still active. Skipped entirely when nothing
   changed and nothing is running: an unchanged project costs the one pipelines request.
   Retried jobs are flagged (a later job of the same name in the same pipeline).
3. **Logs** of finished jobs whose name matches ``[sync] job_patterns``, each fetched exactly once (``jobs.log_state``),
   streamed chunk by chunk into :class:`cidash.logparse.TraceParser` in the bounded worker pool.
4. **File checksums** of the critical files (``[cache_key] files`` + ``file`` + ``ci_file``) at every pipeline SHA
   not yet seen, one HEAD per file, stored per SHA atomically.
5. **CI file text** at the newest pipeline SHA of each ref.
6. **Registry tags** (with sizes) of the CI image repository and **resource groups**: when something changed,
   on the first sync, or when older than ``[sync] registry_refresh_minutes``.

Before step 1, records deferred by the previous sync (``sync_deferred``: rejected at the wire, or their fetch
failed) are fetched again by id.

Steps 4-6 run on a side thread from the end of step 1, overlapping steps 2-3. Logs, checksums, pipeline
details and registry calls share one thread pool of ``[gitlab] concurrency`` workers, each with its own
keep-alive connection (:mod:`cidash.remote.http`); every request passes the shared rate limiter
(``[gitlab] max_rps`` and GitLab's ``RateLimit-*``). The sync is blocking: run it in a worker thread from a UI.

**One bad record never blocks the rest.** Every JSON record passes :mod:`cidash.remote.wire` (range checks): a
rejected field becomes unknown with a warning naming the record, a rejected record is skipped with a warning and
deferred (``sync_deferred``) when it has an id. A per-item failure (one log, one pipeline's details, one checksum,
one registry tag) that is not fatal (:func:`_is_fatal`: authentication, the store) defers that item with a warning
and the sync goes on; what was deferred is never marked done (a log keeps ``log_state`` NULL), so the next sync
retries it. :class:`SyncReport` lists ``warnings`` and ``deferred``.

**One sync per project at a time.** A sync takes the project's lease in the store (``sync_leases``) before its
first request and waits while another live sync holds it (reporting phase ``"waiting"``); then it runs as an
incremental sync of what the other one stored, so two syncs never download the same logs. The lease expires
:data:`LEASE_TTL` after its last renewal (renewed every :data:`LEASE_RENEW_SECONDS` while syncing), and a lease of a
process on this host that no longer exists is free at once. On taking the lease, ``running`` rows of
``sync_runs`` left by a killed sync are marked ``interrupted``.

Where the CPU goes matters: a sync is thousands of small requests on a client that may share a busy machine, so
every request (listings too) goes over the worker's own keep-alive connection (:mod:`cidash.remote.conn`: no
httpx pool lock, no ``requests``/python-gitlab, which the sync does not import), parsed logs are written 100 per
transaction with ``executemany``. REST paths and JSON decoding live in :mod:`cidash.remote` (one module per
resource family: :mod:`~cidash.remote.projects`, :mod:`~cidash.remote.pipelines`, :mod:`~cidash.remote.jobs`,
:mod:`~cidash.remote.instance`; repository files and the registry on :class:`~cidash.remote.http.HttpClient`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import itertools
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from cidash.errors import (
    AuthError,
    CidashError,
    ConfigError,
    ConnectError,
    NotFound,
    PermissionDenied,
    ProjectBusy,
    RateLimited,
    RemoteError,
    StoreError,
    Unsupported,
    UsageError,
)
from cidash.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    CiConfig,
    FileChecksum,
    Job,
    Pipeline,
    Project,
    RateLimitState,
    SyncRun,
    TraceFacts,
)
from cidash.remote import instance as remote_instance
from cidash.remote import jobs as remote_jobs
from cidash.remote import pipelines as remote_pipelines
from cidash.remote import projects as remote_projects
from cidash.remote.wire import RejectedRecord, WireLog
from cidash.store import Store, SyncLease, from_db_time, to_db_time

if TYPE_CHECKING:
    from cidash.config import Config
    from cidash.logparse import TraceParser
    from cidash.remote import GitLabClient
    from cidash.remote.http import FileHead

#: The statuses (one vocabulary, :mod:`cidash.models`): pipelines and jobs that may still change by themselves,
#: and jobs whose log is final.
ACTIVE_PIPELINE_STATUSES: tuple[str, ...] = ACTIVE_STATUSES
ACTIVE_JOB_STATUSES: tuple[str, ...] = ACTIVE_STATUSES
FINISHED_JOB_STATUSES: frozenset[str] = FINISHED_STATUSES

CURSOR_PIPELINES = "pipelines_updated_after"
CURSOR_LAST_SYNC = "last_sync"
CURSOR_REGISTRY = "registry_fetched_at"
CURSOR_RESOURCE_GROUPS = "resource_groups_fetched_at"
CURSOR_INSTANCE_VERSION = "instance_version_checked_at"

_LOG_COMMIT_BATCH = 100  # parsed logs per transaction (a few statements per batch, not per log)

#: A sync's lease on its project lasts this long past its last renewal (a killed sync frees it by then at most).
LEASE_TTL = timedelta(seconds=90)
LEASE_RENEW_SECONDS = 20.0
_LEASE_POLL_SECONDS = 0.5
_HOST = socket.gethostname()
#: Warnings kept in a report (the CLI prints the first few; the rest are counted).
MAX_WARNINGS = 500


@dataclass(frozen=True)
class SyncOptions:
    """What to sync. Build from config with :meth:`from_config`."""

    #: Start of the window on the first sync of a project (None: everything GitLab has).
    since: datetime | None = None
    job_patterns: tuple[str, ...] = ("*",)
    critical_files: tuple[str, ...] = ()
    ci_file: str = ".gitlab-ci.yml"
    #: Registry repository path of the CI image; None: ``<project path>/ci``.
    image_repository: str | None = None
    registry_refresh: timedelta = timedelta(hours=1)
    concurrency: int = 8
    fetch_logs: bool = True
    fetch_checksums: bool = True
    fetch_registry: bool = True
    #: When another live process holds the project's lease: wait for it (``cidash sync``, the dashboard), or
    #: raise :class:`~cidash.errors.ProjectBusy` at once (``cidash serve``: its other processes take the project).
    wait_for_lease: bool = True

    @classmethod
    def from_config(cls, config: Config, *, since: str | datetime | None = None, now: datetime) -> SyncOptions:
        cache_key = config.cache_key
        files = list(dict.fromkeys([*cache_key.files, cache_key.file, cache_key.ci_file]))
        since_value = since if since is not None else config.sync.since
        return cls(
            since=since_value if isinstance(since_value, datetime) else parse_since(since_value, now=now),
            job_patterns=config.sync.job_patterns,
            critical_files=tuple(f for f in files if f),
            ci_file=cache_key.ci_file,
            image_repository=config.image.repository,
            registry_refresh=timedelta(minutes=config.sync.registry_refresh_minutes),
            concurrency=config.gitlab.concurrency,
        )


_SINCE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_since(text: str, *, now: datetime) -> datetime | None:
    """``"30d"``, ``"12h"``, ``"2w"``, an ISO date/time, or ``"all"`` (None)."""
    value = text.strip().lower()
    if value in ("", "all", "everything"):
        return None
    m = _SINCE_RE.match(value)
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
        try:
            return now - timedelta(**{unit: float(m.group(1))})
        except OverflowError:  # 99999999d: before year 1
            raise UsageError(
                f"--since {text.strip()!r} reaches back before year 1", hint="use e.g. 30d or all"
            ) from None
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"cannot read --since {text!r}", hint="use e.g. 30d, 12h, 2w, 2026-05-01 or all") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class SyncProgress:
    """A snapshot for progress displays (called on the syncing thread; keep handlers quick)."""

    project: str
    phase: str  # "waiting", "project", "pipelines", "jobs", "logs", "checksums", "ci_config", "registry", "done"
    pipelines: int = 0
    jobs: int = 0
    logs_done: int = 0
    logs_total: int = 0
    bytes: int = 0
    requests: int = 0
    message: str | None = None


@dataclass(frozen=True)
class SyncReport:
    project: Project
    first_sync: bool
    duration: float  # seconds
    pipelines: int  # pipelines new or changed
    jobs: int  # job rows written
    logs: int  # logs parsed
    logs_skipped: int  # not matching job_patterns, or never started
    logs_unavailable: int  # GitLab had no log
    logs_failed: int  # could not be fetched this time (retried next sync)
    checksums: int  # file checksum rows
    ci_configs: int
    image_tags: int
    resource_groups: int
    requests: int
    bytes: int
    retries: int
    requests_by_kind: dict[str, int]
    rate_limit: RateLimitState
    rate_limit_wait: float
    warnings: tuple[str, ...] = ()
    #: Items left for the next sync, one line each: logs that could not be fetched, deferred records.
    deferred: tuple[str, ...] = ()
    warnings_total: int = 0  # warnings given (``warnings`` keeps the first MAX_WARNINGS)
    deferred_total: int = 0
    #: Seconds spent waiting for another sync of the project to finish (its lease).
    lease_wait: float = 0.0
    #: Set when the project could not be synced at all (only from :func:`sync_projects` with several projects).
    error: str | None = None

    def summary(self) -> str:
        if self.error is not None:
            return f"{self.project.path}: not synced: {self.error}"
        parts = [
            f"{self.project.path}: {self.pipelines} pipelines, {self.jobs} jobs, {self.logs} logs",
            f"{self.checksums} checksums",
        ]
        if self.image_tags:
            parts.append(f"{self.image_tags} image tags")
        parts.append(f"{self.requests} requests, {_human_bytes(self.bytes)} in {self.duration:.1f}s")
        return ", ".join(parts)


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


_T = TypeVar("_T")
_R = TypeVar("_R")


_LogResult = tuple[Job, TraceFacts | None, int]
_PREFETCH_PER_WORKER = 100  # results are small parsed facts; the cap only bounds a huge first sync


@dataclass
class _Ctx:
    client: GitLabClient
    store: Store
    project: Project
    options: SyncOptions
    pool: ThreadPoolExecutor
    progress: Callable[[SyncProgress], None] | None
    now: datetime
    pipelines: int = 0
    jobs: int = 0
    logs: int = 0
    logs_skipped: int = 0
    logs_unavailable: int = 0
    logs_failed: int = 0
    logs_total: int = 0
    checksums: int = 0
    ci_configs: int = 0
    image_tags: int = 0
    resource_groups: int = 0
    warnings: list[str] = field(default_factory=list)
    #: Log downloads started while the jobs listing still runs (job id -> future), consumed by the logs step.
    prefetched: dict[int, Future[_LogResult]] = field(default_factory=dict)
    #: What the wire rejected while parsing (drained into warnings and ``sync_deferred`` by :func:`_absorb_wire`).
    wire: WireLog = field(default_factory=WireLog)
    warnings_total: int = 0
    seen_warnings: set[str] = field(default_factory=set)
    deferred: list[str] = field(default_factory=list)

    def emit(self, phase: str, message: str | None = None) -> None:
        if self.progress is None:
            return
        requests, nbytes = self.client.stats.snapshot()
        self.progress(
            SyncProgress(
                project=self.project.path,
                phase=phase,
                pipelines=self.pipelines,
                jobs=self.jobs,
                logs_done=self.logs + self.logs_unavailable + self.logs_failed,
                logs_total=self.logs_total,
                bytes=nbytes,
                requests=requests,
                message=message,
            )
        )

    def bounded(self, fn: Callable[[_T], _R], items: Iterable[_T], window: int | None = None) -> Iterator[Future[_R]]:
        """Submit ``fn(item)`` to the pool with at most ``window`` in flight; yield futures as they complete."""
        import queue

        window = window or max(2, self.options.concurrency * 2)
        # Completed futures arrive through a queue (one callback each): ``as_completed(pending)`` per item would
        # install and remove a waiter on every pending future for every result, O(window) CPU per request.
        finished: queue.SimpleQueue[Future[_R]] = queue.SimpleQueue()
        in_flight = 0
        iterator = iter(items)
        exhausted = False
        while True:
            while not exhausted and in_flight < window:
                try:
                    item = next(iterator)
                except StopIteration:
                    exhausted = True
                    break
                self.pool.submit(fn, item).add_done_callback(finished.put)
                in_flight += 1
            if not in_flight:
                return
            done = finished.get()
            in_flight -= 1
            yield done


def resolve_project(client: GitLabClient, store: Store, ref: Project | str | int) -> Project:
    """A project by path or id: from the store when it knows it (no request), else from GitLab (and stored)."""
    if isinstance(ref, Project):
        if store.project(ref.id) is None:
            store.upsert_project(ref)
        return ref
    known = store.project(ref)
    if known is not None:
        return known
    project = remote_projects.project(client.http, ref)
    store.upsert_project(project)
    return project


def sync_project(
    client: GitLabClient,
    store: Store,
    project: Project | str | int,
    *,
    options: SyncOptions,
    progress: Callable[[SyncProgress], None] | None = None,
    now: datetime,
) -> SyncReport:
    """Sync one project into the store (see the module docstring). Raises :class:`cidash.errors.CidashError`
    on a failure that stops the sync; what was committed before it stays consistent and is kept.

    Waits while another sync of the project holds its lease (see the module docstring)."""
    started = time.monotonic()
    baseline = _Baseline(
        *client.stats.snapshot(), client.stats.retries, dict(client.stats.by_kind), client.limiter.waited
    )
    resolved = resolve_project(client, store, project)
    lease = _Lease(store, resolved)
    lease_wait = lease.acquire(progress, wait=options.wait_for_lease)
    try:
        return _sync_leased(
            client,
            store,
            resolved,
            options=options,
            progress=progress,
            now=now,
            started=started,
            baseline=baseline,
            lease=lease,
            lease_wait=lease_wait,
        )
    finally:
        lease.release()


@dataclass(frozen=True)
class _Baseline:
    """The client's counters when a sync started (a report counts the difference)."""

    requests: int
    bytes: int
    retries: int
    kinds: dict[str, int]
    wait: float


def _sync_leased(
    client: GitLabClient,
    store: Store,
    resolved: Project,
    *,
    options: SyncOptions,
    progress: Callable[[SyncProgress], None] | None,
    now: datetime,
    started: float,
    baseline: _Baseline,
    lease: _Lease,
    lease_wait: float,
) -> SyncReport:
    req0, bytes0, retries0, kinds0, wait0 = (
        baseline.requests,
        baseline.bytes,
        baseline.retries,
        baseline.kinds,
        baseline.wait,
    )
    interrupted = store.interrupt_running_sync_runs(resolved.id, now=datetime.now(UTC))
    first_sync = store.last_sync(resolved.id) is None
    run_id = store.start_sync_run(resolved.id, now)
    with ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="cidash-sync") as pool:
        ctx = _Ctx(client, store, resolved, options, pool, progress, now, wire=WireLog(now=_wire_now(now)))
        lease.ctx = ctx
        if interrupted:
            _warn(
                ctx, f"an earlier sync of {resolved.path} was killed before it finished; its run is marked interrupted"
            )
        if lease_wait:
            _warn(ctx, f"waited {lease_wait:.0f}s for another sync of {resolved.path} to finish")
        ctx.emit("project")
        try:
            _retry_deferred(ctx)
            _sync_pipelines(ctx)
            # The side steps (checksums, CI files, registry) need only the pipelines: they start now and overlap
            # the jobs listing (sequential keyset pages) and the logs (the bulk); all feed the same bounded pool,
            # so the pool stays full from the first pipeline page to the last log.
            side = _SideSteps(ctx, first_sync=first_sync)
            side.start()
            try:
                _sync_jobs(ctx)
                if options.fetch_logs:
                    _sync_logs(ctx)
            finally:
                side.join()
                side.merge()
            side.raise_error()
            _absorb_wire(ctx)
            store.set_cursor(resolved.id, CURSOR_LAST_SYNC, to_db_time(now) or "")
        except BaseException as exc:
            pool.shutdown(wait=True, cancel_futures=True)
            requests, nbytes = client.stats.snapshot()
            message = exc.one_line() if isinstance(exc, CidashError) else type(exc).__name__
            with contextlib.suppress(CidashError):
                store.finish_sync_run(
                    run_id,
                    SyncRun(
                        project_id=resolved.id,
                        started_at=now,
                        finished_at=datetime.now(UTC),
                        status="error",
                        requests=requests - req0,
                        bytes=nbytes - bytes0,
                        pipelines=ctx.pipelines,
                        jobs=ctx.jobs,
                        logs=ctx.logs,
                        error=message,
                        warnings=ctx.warnings_total,
                        deferred=len(ctx.deferred),
                    ),
                )
            raise
    requests, nbytes = client.stats.snapshot()
    kinds = {k: v - kinds0.get(k, 0) for k, v in client.stats.by_kind.items() if v - kinds0.get(k, 0)}
    report = SyncReport(
        project=resolved,
        first_sync=first_sync,
        duration=time.monotonic() - started,
        pipelines=ctx.pipelines,
        jobs=ctx.jobs,
        logs=ctx.logs,
        logs_skipped=ctx.logs_skipped,
        logs_unavailable=ctx.logs_unavailable,
        logs_failed=ctx.logs_failed,
        checksums=ctx.checksums,
        ci_configs=ctx.ci_configs,
        image_tags=ctx.image_tags,
        resource_groups=ctx.resource_groups,
        requests=requests - req0,
        bytes=nbytes - bytes0,
        retries=client.stats.retries - retries0,
        requests_by_kind=dict(sorted(kinds.items())),
        rate_limit=client.limiter.state,
        rate_limit_wait=client.limiter.waited - wait0,
        warnings=tuple(ctx.warnings),
        deferred=tuple(ctx.deferred),
        warnings_total=ctx.warnings_total,
        deferred_total=len(ctx.deferred),
        lease_wait=lease_wait,
    )
    store.finish_sync_run(
        run_id,
        SyncRun(
            project_id=resolved.id,
            started_at=now,
            finished_at=datetime.now(UTC),
            status="ok",
            requests=report.requests,
            bytes=report.bytes,
            pipelines=report.pipelines,
            jobs=report.jobs,
            logs=report.logs,
            warnings=report.warnings_total,
            deferred=report.deferred_total,
        ),
    )
    ctx.emit("done")
    return report


class _SideSteps(threading.Thread):
    """Checksums, CI files, registry tags and resource groups, on their own thread (no progress events)."""

    def __init__(self, ctx: _Ctx, *, first_sync: bool) -> None:
        super().__init__(name="cidash-sync-side", daemon=True)
        self.ctx = dataclasses.replace(
            ctx, progress=None, warnings=[], warnings_total=0, seen_warnings=set(), deferred=[]
        )
        self.main = ctx
        self.first_sync = first_sync
        self.error: BaseException | None = None

    def run(self) -> None:
        ctx, options = self.ctx, self.ctx.options
        try:
            _sync_instance_version(ctx, first_sync=self.first_sync)
            if options.fetch_checksums:
                with _step_deferred_on_failure(ctx, "file checksums"):
                    _sync_checksums(ctx)
                with _step_deferred_on_failure(ctx, "CI files"):
                    _sync_ci_configs(ctx)
            if options.fetch_registry:
                with _step_deferred_on_failure(ctx, "registry tags and resource groups"):
                    _sync_registry_and_groups(ctx, first_sync=self.first_sync)
        except BaseException as exc:  # handed to the syncing thread
            self.error = exc
        finally:
            main = self.main
            main.checksums, main.ci_configs = ctx.checksums, ctx.ci_configs
            main.image_tags, main.resource_groups = ctx.image_tags, ctx.resource_groups

    def merge(self) -> None:
        """Hand the side steps' warnings and deferred items to the syncing thread's context (call after join)."""
        for warning in self.ctx.warnings:
            _warn(self.main, warning)
        self.main.warnings_total += self.ctx.warnings_total - len(self.ctx.warnings)
        self.main.deferred.extend(self.ctx.deferred)

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


def sync_projects(
    client: GitLabClient,
    store: Store,
    *,
    projects: Iterable[str | int | Project] = (),
    group: str | None = None,
    options: SyncOptions,
    progress: Callable[[SyncProgress], None] | None = None,
    now: datetime,
) -> list[SyncReport]:
    """Sync the given projects and every project of ``group`` (listed through the API), one after another.

    With several projects, one that fails with a non-fatal error (not found, forbidden, a rejected record; see
    :func:`_is_fatal`; a connection failure is fatal here) gives a report with ``error`` set and the others are
    still synced; when every project fails, the first error is raised."""
    targets: list[str | int | Project] = list(projects)
    failed: list[SyncReport] = []
    if group:
        listing = WireLog(now=_wire_now(now))
        targets.extend(remote_projects.group_projects(client.http, group, log=listing))
        failed.extend(_failed_report(r.label, r) for r in listing.rejected)
    seen: set[str] = set()
    reports = []
    first_error: CidashError | None = None
    for target in targets:
        key = str(target.id) if isinstance(target, Project) else str(target)
        if key in seen:
            continue
        seen.add(key)
        try:
            reports.append(sync_project(client, store, target, options=options, progress=progress, now=now))
        except CidashError as exc:
            if _is_fatal(exc) or isinstance(exc, ConnectError) or len(targets) == 1:
                raise
            first_error = first_error or exc
            failed.append(_failed_report(target.path if isinstance(target, Project) else key, exc))
    if first_error is not None and not reports:
        raise first_error
    return reports + failed


def _failed_report(label: str, error: CidashError) -> SyncReport:
    """The report of a project that could not be synced at all (``error`` says why)."""
    return SyncReport(
        project=Project(id=0, path=label, web_url=""),
        first_sync=False,
        duration=0.0,
        pipelines=0,
        jobs=0,
        logs=0,
        logs_skipped=0,
        logs_unavailable=0,
        logs_failed=0,
        checksums=0,
        ci_configs=0,
        image_tags=0,
        resource_groups=0,
        requests=0,
        bytes=0,
        retries=0,
        requests_by_kind={},
        rate_limit=RateLimitState(),
        rate_limit_wait=0.0,
        error=error.one_line(),
    )


# -- steps -----------------------------------------------------------------------------------------------------


def _sync_pipelines(ctx: _Ctx) -> None:
    store, pid = ctx.store, ctx.project.id
    cursor = store.cursor(pid, CURSOR_PIPELINES)
    updated_after = from_db_time(cursor) if cursor else ctx.options.since
    ctx.emit("pipelines")
    listing = remote_pipelines.pipeline_pages(ctx.client.http, pid, updated_after=updated_after, log=ctx.wire)
    pages = _read_ahead(listing)
    for page in pages:
        known = {p.id: p for p in store.pipelines(pid, ids=[p.id for p in page])}
        changed = [
            p
            for p in page
            if p.id not in known or (known[p.id].status, known[p.id].updated_at) != (p.status, p.updated_at)
        ]
        detailed: list[Pipeline] = []
        deferred: list[tuple[int, str]] = []
        for future in ctx.bounded(lambda p: _pipeline_detail(ctx, p), changed):
            pipeline, problem = future.result()
            detailed.append(pipeline)
            if problem is not None:
                # Keep the listing's fields (the pipeline is usable); fetch the details again next sync.
                deferred.append((pipeline.id, problem))
                _warn(ctx, f"pipeline {pipeline.id}: details deferred to the next sync: {problem}")
                ctx.deferred.append(f"pipeline {pipeline.id} details: {problem}")
        newest = max(p.updated_at for p in page)
        with store.transaction():
            store.upsert_pipelines(detailed)
            if deferred:
                store.defer(pid, "pipeline", deferred, now=ctx.now)
            store.set_cursor(pid, CURSOR_PIPELINES, to_db_time(newest) or "")
        ctx.pipelines += len(detailed)
        _absorb_wire(ctx)
        ctx.emit("pipelines")
    _absorb_wire(ctx)


def _read_ahead(items: Iterator[_T], depth: int = 2) -> Iterator[_T]:
    """``items``, produced on a helper thread up to ``depth`` ahead: the next page of a listing is requested while
    the caller still works on this one (a listing's pages are a chain of round trips). Exceptions arrive in order;
    a consumer that stops early stops the producer at its next item."""
    import queue

    box: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put((False, None))
        except BaseException as exc:  # handed to the consumer
            box.put((False, exc))

    thread = threading.Thread(target=produce, name="cidash-sync-pages", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = box.get()
            if not ok:
                if isinstance(value, BaseException):
                    raise value
                return
            yield value  # type: ignore[misc]
    finally:
        stop.set()


def _pipeline_detail(ctx: _Ctx, listed: Pipeline) -> tuple[Pipeline, str | None]:
    """One pipeline with the fields the listing omits, as plain JSON over the sync's per-thread HTTP connections
    (the same request python-gitlab would send, for a fraction of its CPU: ``requests`` costs ~1 ms a request).

    A detail that cannot be had (a transient failure after retries, a rejected record) gives the listed pipeline
    and the reason, so the caller stores what it has and defers the rest."""
    try:
        return remote_pipelines.pipeline(ctx.client.http, ctx.project.id, listed.id, ctx.wire), None
    except CidashError as exc:
        if _is_fatal(exc):
            raise
        return listed, exc.one_line()


def _sync_jobs(ctx: _Ctx) -> None:
    store, pid = ctx.store, ctx.project.id
    due = store.pipelines_needing_jobs(pid)
    active = store.pipelines(pid, status=ACTIVE_PIPELINE_STATUSES)
    watch = {p.id: p for p in [*due, *active]}
    floor_time = min((p.created_at for p in watch.values()), default=None)
    floor_id = store.min_job_id(pid, statuses=ACTIVE_JOB_STATUSES)
    if floor_time is None and floor_id is None:
        return  # nothing changed, nothing running: no request
    known_pipelines = {p.id for p in store.pipelines(pid, since=floor_time)} if floor_time else set()
    known_pipelines |= set(watch)
    touched: set[int] = set()
    batch: list[Job] = []

    def flush() -> None:
        if batch:
            store.upsert_jobs(batch)
            ctx.jobs += len(batch)
            touched.update(j.pipeline_id for j in batch)
            _prefetch_logs(ctx, [j.id for j in batch])
            batch.clear()
            ctx.emit("jobs")

    ctx.emit("jobs")
    for job in remote_jobs.jobs_newest_first(ctx.client.http, pid, log=ctx.wire):
        below_time = floor_time is None or job.created_at < floor_time
        below_id = floor_id is None or job.id < floor_id
        if below_time and below_id:
            break
        if job.pipeline_id not in known_pipelines:
            if store.pipeline(job.pipeline_id) is None:
                continue  # a pipeline outside the synced window
            known_pipelines.add(job.pipeline_id)
        batch.append(job)
        if len(batch) >= 100:
            flush()
    with store.transaction():
        flush()
        store.recompute_retried(touched | set(watch))
        store.mark_pipeline_jobs_synced(due)
    _absorb_wire(ctx)


def _wanted(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


class _LogSink:
    """Feeds one download attempt into a fresh parser (a retried download never feeds a parser twice)."""

    def __init__(self) -> None:
        self.parser: TraceParser | None = None
        self.bytes = 0

    def __call__(self) -> Callable[[bytes], None]:
        from cidash.logparse import TraceParser

        parser = TraceParser()
        self.parser, self.bytes = parser, 0

        def sink(chunk: bytes) -> None:
            self.bytes += len(chunk)
            parser.feed(chunk)

        return sink


class _LogFailed(Exception):
    """One log could not be fetched (a non-fatal :class:`CidashError`, see :func:`_is_fatal`): its job is deferred."""

    def __init__(self, job: Job, error: CidashError) -> None:
        super().__init__(error.one_line())
        self.job = job
        self.error = error


def _fetch_log(ctx: _Ctx, job: Job) -> tuple[Job, TraceFacts | None, int]:
    sink = _LogSink()
    try:
        found = remote_jobs.stream_log(ctx.client.http, ctx.project.id, job.id, sink)
    except CidashError as exc:
        if _is_fatal(exc):
            raise
        raise _LogFailed(job, exc) from None
    if not found or sink.parser is None or sink.bytes == 0:
        return job, None, sink.bytes
    return job, sink.parser.finish(), sink.bytes


def _log_wanted(ctx: _Ctx, job: Job) -> bool:
    return job.started_at is not None and _wanted(job.name, ctx.options.job_patterns)


def _prefetch_logs(ctx: _Ctx, job_ids: list[int]) -> None:
    """Start downloading the logs of just-committed finished jobs while the listing goes on (the pool would idle)."""
    if not ctx.options.fetch_logs:
        return
    cap = _PREFETCH_PER_WORKER * max(1, ctx.options.concurrency)
    for job in ctx.store.jobs_needing_logs(ctx.project.id, ids=job_ids):
        if len(ctx.prefetched) >= cap:
            return
        if job.status in FINISHED_JOB_STATUSES and _log_wanted(ctx, job) and job.id not in ctx.prefetched:
            ctx.prefetched[job.id] = ctx.pool.submit(_fetch_log, ctx, job)


def _sync_logs(ctx: _Ctx) -> None:
    store, pid = ctx.store, ctx.project.id
    candidates = [j for j in store.jobs_needing_logs(pid) if j.status in FINISHED_JOB_STATUSES]
    skip = [j.id for j in candidates if not _log_wanted(ctx, j)]
    if skip:
        store.set_log_state(skip, "skipped")
        ctx.logs_skipped += len(skip)
    skip_set = set(skip)
    todo = [j for j in candidates if j.id not in skip_set]
    ctx.logs_total = len(todo)
    ctx.emit("logs")
    results: list[tuple[Job, TraceFacts | None, int]] = []
    last_commit = time.monotonic()

    def commit() -> None:
        if not results:
            return
        parsed = [(job.id, facts, nbytes) for job, facts, nbytes in results if facts is not None]
        unavailable = [job.id for job, facts, _ in results if facts is None]
        with store.transaction():
            store.save_many_job_facts(parsed, project_id=pid, parsed_at=ctx.now)
            if unavailable:
                store.set_log_state(unavailable, "unavailable")
        results.clear()

    stop = threading.Event()  # set when GitLab keeps rate-limiting: the rest waits for the next sync
    connect_failures = 0
    started = 0

    todo_ids = {j.id for j in todo}
    prefetched = {i: f for i, f in ctx.prefetched.items() if i in todo_ids}
    for i, f in ctx.prefetched.items():
        if i not in todo_ids:
            f.cancel()
    ctx.prefetched = {}
    started = len(prefetched)

    def remaining() -> Iterator[Job]:
        nonlocal started
        for job in todo:
            if stop.is_set():
                return
            if job.id in prefetched:
                continue
            started += 1
            yield job

    failed: dict[int, str] = {}  # job id -> why its log waits for the next sync
    handled: set[int] = set()  # parsed or unavailable: written by commit()
    futures = itertools.chain(as_completed(prefetched.values()), ctx.bounded(lambda j: _fetch_log(ctx, j), remaining()))
    for future in futures:
        try:
            job, facts, nbytes = future.result()
        except CancelledError:
            ctx.logs_failed += 1  # a prefetch called off after GitLab kept rate-limiting: next sync
            continue
        except _LogFailed as failure:
            exc, label = failure.error, _job_label(failure.job)
            failed[failure.job.id] = exc.one_line()
            ctx.logs_failed += 1
            if isinstance(exc, RateLimited):
                if not stop.is_set():
                    stop.set()
                    for pending in prefetched.values():
                        pending.cancel()
                    _warn(
                        ctx,
                        f"GitLab keeps rate-limiting log downloads ({exc.one_line()}); "
                        "the rest waits for the next sync",
                    )
                continue
            if isinstance(exc, (PermissionDenied, NotFound, Unsupported)):
                _warn(ctx, f"log of {label} not readable, will retry next sync: {exc.one_line()}")
                continue
            # A host that went away fails every download in a row: stop then; an odd reset is only deferred.
            connect_failures = connect_failures + 1 if isinstance(exc, ConnectError) else 0
            if connect_failures > 2 * ctx.options.concurrency:
                raise exc from None
            _warn(ctx, f"log of {label} could not be fetched, will retry next sync: {exc.one_line()}")
            continue
        connect_failures = 0
        handled.add(job.id)
        results.append((job, facts, nbytes))
        if facts is None:
            ctx.logs_unavailable += 1
        else:
            ctx.logs += 1
        if len(results) >= _LOG_COMMIT_BATCH or time.monotonic() - last_commit > 1.0:
            commit()
            last_commit = time.monotonic()
            ctx.emit("logs")
    commit()
    ctx.logs_failed += len(todo) - started
    # Deferred logs keep log_state NULL (only parsed/unavailable results were written): the next sync fetches them.
    for job in todo:
        if job.id not in handled:
            reason = failed.get(job.id, "not attempted (GitLab kept rate-limiting)")
            ctx.deferred.append(f"log of {_job_label(job)}: {reason}")
    ctx.emit("logs")


def _job_label(job: Job) -> str:
    from cidash.remote.wire import show

    return f"job {job.id} {show(job.name, 60)}"


def _warn(ctx: _Ctx, message: str) -> None:
    """One warning for the report (the same text twice counts once: a listing and a detail may both say it)."""
    if message in ctx.seen_warnings:
        return
    ctx.seen_warnings.add(message)
    ctx.warnings_total += 1
    if len(ctx.warnings) < MAX_WARNINGS:
        ctx.warnings.append(message)


def _is_fatal(exc: BaseException) -> bool:
    """Errors that stop a sync: the token or the store is the problem, so the next item would fail the same way.
    Anything else that fails for one item (a transport or transient error after retries, a 404, a rejected record)
    defers that item."""
    return not isinstance(exc, CidashError) or isinstance(exc, (AuthError, StoreError, UsageError, ConfigError))


@contextlib.contextmanager
def _step_deferred_on_failure(ctx: _Ctx, what: str) -> Iterator[None]:
    """A side step that fails as a whole (e.g. GitLab went away) is a warning: it runs again on the next sync."""
    try:
        yield
    except CidashError as exc:
        if _is_fatal(exc):
            raise
        _warn(ctx, f"{what} deferred to the next sync: {exc.one_line()}")
        ctx.deferred.append(f"{what}: {exc.one_line()}")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # A listing whose items are not what GitLab documents (parsed outside cidash.remote.wire): never a crash.
        reason = f"GitLab sent data cidash cannot use ({type(exc).__name__})"
        _warn(ctx, f"{what} deferred to the next sync: {reason}")
        ctx.deferred.append(f"{what}: {reason}")


def _wire_now(now: datetime) -> datetime:
    """The "now" timestamps from GitLab are checked against: the later of the sync's ``now`` and this machine's
    clock (``check --now`` may look at the past; GitLab's clock is the present)."""
    return max(now, datetime.now(UTC))


def _absorb_wire(ctx: _Ctx) -> None:
    """Turn what the wire rejected so far into warnings, and defer rejected records that have an id."""
    issues, rejected = ctx.wire.drain()
    for issue in issues:
        _warn(ctx, issue)
    by_kind: dict[str, list[tuple[int, str]]] = {}
    for error in rejected:
        if error.record_id is not None and error.kind in ("pipeline", "job"):
            by_kind.setdefault(error.kind, []).append((error.record_id, error.reason))
            _warn(ctx, f"{error.message}; deferred to the next sync")
            ctx.deferred.append(f"{error.label}: {error.reason}")
        else:
            _warn(ctx, f"{error.message}; skipped")
    for kind, items in by_kind.items():
        ctx.store.defer(ctx.project.id, kind, items, now=ctx.now)


def _refetch(ctx: _Ctx, kind: str, item_id: int) -> Pipeline | Job | None:
    """A deferred record fetched again by id (None: GitLab no longer has it)."""
    pid, http = ctx.project.id, ctx.client.http
    try:
        if kind == "pipeline":
            return remote_pipelines.pipeline(http, pid, item_id, ctx.wire)
        return remote_jobs.job(http, pid, item_id, ctx.wire)
    except NotFound:
        return None


def _retry_deferred(ctx: _Ctx) -> None:
    """Fetch the records the previous syncs deferred; store those that are usable now (pipelines first)."""
    store, pid = ctx.store, ctx.project.id
    for kind in ("pipeline", "job"):
        items = store.deferred(pid, kind)
        if not items:
            continue
        ctx.emit("pipelines", f"{len(items)} deferred {kind}s")
        ids = [i.item_id for i in items]
        done: list[int] = []
        for item_id, future in zip(ids, [ctx.pool.submit(_refetch, ctx, kind, i) for i in ids], strict=True):
            try:
                record = future.result()
            except CidashError as exc:
                if _is_fatal(exc):
                    raise
                if isinstance(exc, RejectedRecord):
                    ctx.wire.reject(exc)  # deferred again (attempts counted) by _absorb_wire
                else:
                    store.defer(pid, kind, [(item_id, exc.one_line())], now=ctx.now)
                    _warn(ctx, f"{kind} {item_id} deferred again: {exc.one_line()}")
                    ctx.deferred.append(f"{kind} {item_id}: {exc.one_line()}")
                continue
            if isinstance(record, Pipeline):
                store.upsert_pipelines([record])
                ctx.pipelines += 1
            elif isinstance(record, Job) and store.pipeline(record.pipeline_id) is not None:
                store.upsert_jobs([record])
                ctx.jobs += 1
            done.append(item_id)
        store.clear_deferred(pid, kind, done)
    _absorb_wire(ctx)


class _Lease:
    """This sync's hold on its project (``sync_leases``): acquired before the first request, renewed on a timer
    thread, released at the end."""

    def __init__(self, store: Store, project: Project) -> None:
        self.store = store
        self.project = project
        self.owner = uuid.uuid4().hex
        self.ctx: _Ctx | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, progress: Callable[[SyncProgress], None] | None, *, wait: bool = True) -> float:
        """Take the lease, waiting while another live sync holds it (``wait=False``: raise ProjectBusy instead,
        before the sync's first request for the project's data); returns the seconds waited."""
        started = time.monotonic()
        told = False
        while True:
            holder = self.store.acquire_sync_lease(
                self.project.id,
                self.owner,
                pid=os.getpid(),
                host=_HOST,
                now=datetime.now(UTC),
                ttl=LEASE_TTL,
                is_dead=_holder_is_dead,
            )
            if holder is None:
                break
            if not wait:
                raise ProjectBusy(
                    f"{self.project.path} is being synced by another process ({_describe_holder(holder)}); skipped"
                )
            if not told and progress is not None:
                progress(SyncProgress(project=self.project.path, phase="waiting", message=_describe_holder(holder)))
            told = True
            time.sleep(_LEASE_POLL_SECONDS)
        self._thread = threading.Thread(target=self._renew, name="cidash-sync-lease", daemon=True)
        self._thread.start()
        return time.monotonic() - started if told else 0.0

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_RENEW_SECONDS):
            try:
                held = self.store.renew_sync_lease(self.project.id, self.owner, now=datetime.now(UTC), ttl=LEASE_TTL)
            except CidashError:
                continue  # a busy store: try again at the next tick (the lease outlives a few missed renewals)
            if not held and self.ctx is not None:
                _warn(self.ctx, "this sync's lease on the project expired; another sync may be running too")
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(CidashError):
            self.store.release_sync_lease(self.project.id, self.owner)


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) is no probe on Windows (it would stop the process): rely on the expiry
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or cannot tell: assume alive, the lease expires anyway
    return True


def _holder_is_dead(lease: SyncLease) -> bool:
    """A lease held by a process of this host that no longer exists (a sync killed with -9) is free at once."""
    return lease.host == _HOST and lease.pid != os.getpid() and not _pid_alive(lease.pid)


def _describe_holder(lease: SyncLease) -> str:
    return (
        f"another sync (pid {lease.pid} on {lease.host}, since {lease.acquired_at:%H:%M:%S} UTC) is syncing this "
        "project; waiting for it to finish"
    )


def _item_deferred(ctx: _Ctx, what: str, exc: CidashError) -> None:
    """One item of a side step failed: re-raise if fatal, else a warning (the step retries it next sync)."""
    if _is_fatal(exc):
        raise exc
    _warn(ctx, f"{what} deferred to the next sync: {exc.one_line()}")
    ctx.deferred.append(f"{what}: {exc.one_line()}")


def _sync_checksums(ctx: _Ctx) -> None:
    """Checksums of the critical files at every pipeline SHA not seen yet; a SHA is stored whole or not at all.

    A HEAD per file per SHA is what it costs naively (200 pipelines x 6 files = 1,200 requests). On a linear
    history it is far cheaper to ask *where* each file changed: one history listing per ref and one
    path-filtered listing per file tell, for every pipeline SHA, the last commit that changed each file; a file
    is the same blob at every SHA that shares that commit, so one HEAD per (file, change) is enough. SHAs not in
    a ref's first-parent history, or histories with merge commits, fall back to one HEAD per file per SHA.
    """
    store, pid = ctx.store, ctx.project.id
    files = ctx.options.critical_files
    if not files:
        return
    todo = store.pipeline_shas(pid) - store.checksummed_shas(pid)
    if not todo:
        return
    ctx.emit("checksums", f"{len(todo)} commits x {len(files)} files")
    fallback: set[str] = set()
    known = store.checksummed_shas(pid)

    def one_ref(group: tuple[str, str, set[str]]) -> tuple[set[str], list[FileChecksum] | None]:
        ref, head, shas = group
        if known and len(shas) <= len(files) + 1:  # a few new SHAs: a compare each beats 1 + len(files) listings
            try:
                rows = _checksums_from_compare(ctx, ref, shas, known, files)
            except (Unsupported, NotFound):
                rows = None
            if rows is not None:
                return shas, rows
        try:
            return shas, _checksums_from_history(ctx, ref, head, shas, files)
        except Unsupported:
            return shas, None

    # Refs in parallel: each is a short chain of dependent listings (a round trip each), which in a row would be
    # the longest path of a first sync; their HEADs go to the shared pool.
    groups = _shas_by_ref(store, pid, todo)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(groups))), thread_name_prefix="cidash-sync-refs") as refs:
        for shas, rows in refs.map(one_ref, groups):
            if rows is None:
                fallback |= shas
            else:
                _save_whole_shas(ctx, rows, len(files))
    if fallback:
        _checksums_per_sha(ctx, sorted(fallback), files)
    ctx.emit("checksums")


def _shas_by_ref(store: Store, pid: int, todo: set[str]) -> list[tuple[str, str, set[str]]]:
    """(ref, the ref's newest pipeline SHA, the todo SHAs whose newest pipeline ran on that ref)."""
    by_ref: dict[str, set[str]] = {}
    for sha, ref in store.newest_ref_per_sha(pid, todo).items():
        by_ref.setdefault(ref, set()).add(sha)
    head = store.latest_sha_per_ref(pid)
    return [(ref, head[ref], shas) for ref, shas in sorted(by_ref.items())]


def _checksums_from_history(
    ctx: _Ctx, ref: str, head: str, shas: set[str], files: tuple[str, ...]
) -> list[FileChecksum] | None:
    http, pid = ctx.client.http, ctx.project.id
    order: dict[str, int] = {}
    missing = set(shas)
    for sha, parents in http.commits(pid, head):
        if len(parents) > 1:
            return None  # a merge: path-filtered history is not a simple sequence any more
        order[sha] = len(order)
        missing.discard(sha)
        if not missing:
            break
    if missing:
        return None
    oldest = max(order[s] for s in shas)

    # For each file: the commits in the window that changed it (by position), then the first one before it.
    def changes_of(path: str) -> list[tuple[int, str]] | None:
        found: list[tuple[int, str]] = []
        for sha, parents in http.commits(pid, head, path=path):
            if len(parents) > 1:
                return None
            position = order.get(sha)
            if position is None or position > oldest:
                found.append((oldest + 1, sha))  # the version every older SHA in the window inherits
                break
            found.append((position, sha))
        return found

    # One listing per file, all at once (each is a round trip or two; the shared limiter bounds them).
    with ThreadPoolExecutor(max_workers=len(files), thread_name_prefix="cidash-sync-paths") as paths:
        listed = dict(zip(files, paths.map(changes_of, files), strict=True))
    changes: dict[str, list[tuple[int, str]]] = {}
    for path, found_or_none in listed.items():
        if found_or_none is None:
            return None
        changes[path] = found_or_none
    # The last change at or before each SHA (positions grow towards the past).
    wanted: dict[tuple[str, str], list[str]] = {}
    rows: list[FileChecksum] = []
    for sha in shas:
        for path in files:
            last = next((c for pos, c in changes[path] if pos >= order[sha]), None)
            if last is None:  # never changed in this history: the file never existed
                rows.append(FileChecksum(pid, sha, path, None, None, None))
            else:
                wanted.setdefault((path, last), []).append(sha)

    def head_at(item: tuple[str, str]) -> tuple[tuple[str, str], FileHead | None]:
        return item, http.file_head(pid, item[0], item[1])

    for future in ctx.bounded(head_at, list(wanted)):
        try:
            (path, last), h = future.result()
        except CidashError as exc:
            _item_deferred(ctx, "a file checksum", exc)  # its SHAs stay incomplete: not saved, retried next sync
            continue
        for sha in wanted[(path, last)]:
            if h is None:
                rows.append(FileChecksum(pid, sha, path, None, None, None))
            else:
                rows.append(FileChecksum(pid, sha, path, h.blob_id, h.last_commit_id, h.content_sha256))
    return rows


def _checksums_from_compare(
    ctx: _Ctx, ref: str, shas: set[str], known: set[str], files: tuple[str, ...]
) -> list[FileChecksum] | None:
    """Checksums of a few new SHAs of ``ref`` from the one before each: ``GET .../repository/compare`` (one request)
    names the paths that changed, and only changed critical files need a HEAD; the others are the previous SHA's
    rows. Exact when the step is one commit whose only parent is the previous SHA (that commit did not touch an
    unchanged path, so its blob and last commit carry over); any other step (several commits, a merge, a force
    push) or a compare GitLab cut short (``compare_timeout``/``overflow``) costs a HEAD per file for that SHA.
    None: no earlier checksummed SHA on the ref to start from (the history approach then)."""
    store, http, pid = ctx.store, ctx.client.http, ctx.project.id
    sequence: list[str] = []
    for p in store.pipelines(pid, ref=ref):
        if not sequence or sequence[-1] != p.sha:
            sequence.append(p.sha)
    first = min((sequence.index(s) for s in shas if s in sequence), default=None)
    if first is None:
        return None
    prev = next((s for s in reversed(sequence[:first]) if s in known), None)
    if prev is None:
        return None
    previous = {r.path: r for r in store.file_checksums(pid, sha=prev)}
    out: list[FileChecksum] = []
    done: set[str] = set()
    for sha in sequence[first:]:
        if sha not in shas or sha in done:
            continue
        done.add(sha)
        comparison = http.compare(pid, prev, sha)
        one_step = comparison.complete and comparison.commits == ((sha, (prev,)),)
        look = [f for f in files if not one_step or f in comparison.paths or f not in previous]
        rows = [dataclasses.replace(previous[f], sha=sha) for f in files if f not in look]
        for path in look:
            try:
                h = http.file_head(pid, path, sha)
            except CidashError as exc:
                _item_deferred(ctx, "a file checksum", exc)  # this SHA stays incomplete: retried next sync
                return out or None
            rows.append(
                FileChecksum(pid, sha, path, None, None, None)
                if h is None
                else FileChecksum(pid, sha, path, h.blob_id, h.last_commit_id, h.content_sha256)
            )
        out.extend(rows)
        previous = {r.path: r for r in rows}
        prev = sha
    return out if done == shas else None


def _save_whole_shas(ctx: _Ctx, rows: list[FileChecksum], nfiles: int) -> None:
    by_sha: dict[str, list[FileChecksum]] = {}
    for row in rows:
        by_sha.setdefault(row.sha, []).append(row)
    complete = [r for sha_rows in by_sha.values() if len(sha_rows) == nfiles for r in sha_rows]
    with ctx.store.transaction():
        ctx.store.save_file_checksums(complete)
    ctx.checksums += len(complete)


def _checksums_per_sha(ctx: _Ctx, shas: list[str], files: tuple[str, ...]) -> None:
    pid = ctx.project.id
    per_sha: dict[str, list[FileChecksum]] = {sha: [] for sha in shas}
    work = [(sha, path) for sha in shas for path in files]

    def head(item: tuple[str, str]) -> FileChecksum:
        sha, path = item
        h = ctx.client.http.file_head(pid, path, sha)
        if h is None:
            return FileChecksum(pid, sha, path, None, None, None)
        return FileChecksum(pid, sha, path, h.blob_id, h.last_commit_id, h.content_sha256)

    for future in ctx.bounded(head, work):
        try:
            checksum = future.result()
        except CidashError as exc:
            _item_deferred(ctx, "a file checksum", exc)  # that SHA stays incomplete: not saved, retried next sync
            continue
        rows = per_sha[checksum.sha]
        rows.append(checksum)
        if len(rows) == len(files):  # a SHA is stored whole or not at all
            ctx.store.save_file_checksums(rows)
            ctx.checksums += len(rows)


def _sync_ci_configs(ctx: _Ctx) -> None:
    store, pid, path = ctx.store, ctx.project.id, ctx.options.ci_file
    todo = [
        (ref, sha)
        for ref, sha in sorted(store.latest_sha_per_ref(pid).items())
        if not store.has_ci_config(pid, sha, path)
    ]
    if not todo:
        return
    ctx.emit("ci_config")

    def fetch(item: tuple[str, str]) -> CiConfig:
        ref, sha = item
        raw = ctx.client.http.file_raw(pid, path, sha)
        return CiConfig(pid, sha, path, ref, None if raw is None else raw.decode("utf-8", errors="replace"))

    for future in ctx.bounded(fetch, todo):
        try:
            config = future.result()
        except CidashError as exc:
            _item_deferred(ctx, f"the CI file {path}", exc)
            continue
        store.save_ci_config(config, fetched_at=ctx.now)
        ctx.ci_configs += 1


def _due(ctx: _Ctx, kind: str, *, first_sync: bool) -> bool:
    if first_sync or ctx.pipelines > 0:
        return True
    last = ctx.store.cursor(ctx.project.id, kind)
    fetched = from_db_time(last) if last else None
    return fetched is None or ctx.now - fetched >= ctx.options.registry_refresh


def _sync_registry_and_groups(ctx: _Ctx, *, first_sync: bool) -> None:
    store, pid, http = ctx.store, ctx.project.id, ctx.client.http
    if _due(ctx, CURSOR_REGISTRY, first_sync=first_sync):
        ctx.emit("registry")
        wanted = ctx.options.image_repository or f"{ctx.project.path}/ci"
        try:
            repos = http.registry_repositories(pid)
            repo = next((r for r in repos if r.path == wanted), None)
            complete = True
            if repo is None:
                _warn(ctx, f"registry repository {wanted} not found (set [image] repository)")
            else:
                names = http.registry_tag_names(pid, repo.id)
                tags = []
                for future in ctx.bounded(lambda n: http.registry_tag(pid, repo, n, ctx.wire), names):
                    try:
                        tag = future.result()
                    except CidashError as exc:
                        complete = False  # the registry is read again next sync
                        _item_deferred(ctx, "a registry tag", exc)
                        continue
                    if tag is not None:
                        tags.append(tag)
                store.upsert_image_tags(tags, seen_at=ctx.now)
                ctx.image_tags = len(tags)
                _absorb_wire(ctx)
            if complete:  # else the registry is read again next sync
                store.set_cursor(pid, CURSOR_REGISTRY, to_db_time(ctx.now) or "")
        except (Unsupported, NotFound, PermissionDenied) as exc:
            _warn(ctx, f"registry skipped: {exc.one_line()}")
    if _due(ctx, CURSOR_RESOURCE_GROUPS, first_sync=first_sync):
        try:
            groups = http.resource_groups(pid)
            with store.transaction():
                store.replace_resource_groups(pid, groups)
                store.set_cursor(pid, CURSOR_RESOURCE_GROUPS, to_db_time(ctx.now) or "")
            ctx.resource_groups = len(groups)
        except CidashError as exc:
            if _is_fatal(exc):
                raise
            _warn(ctx, f"resource groups skipped: {exc.one_line()}")


def _sync_instance_version(ctx: _Ctx, *, first_sync: bool) -> None:
    """``GET /version``: which GitLab computes this project's cache keys (gitlab-facts.md §1: the rules depend on
    the instance's version). A token that may not read it (403/404) records "unknown"; checked when there is
    something new, and at most once per refresh interval otherwise."""
    if not _due(ctx, CURSOR_INSTANCE_VERSION, first_sync=first_sync):
        return
    try:
        found = remote_instance.version(ctx.client.http)
    except (Unsupported, NotFound, PermissionDenied):
        found = remote_instance.InstanceVersion(None, None)  # the token may not read it: the version is unknown
    except (AuthError, ConnectError):
        raise
    except RemoteError as exc:  # a server error after the retries: keep what was recorded, try again next sync
        _warn(ctx, f"GitLab version not checked: {exc.one_line()}")
        return
    version, revision = found.version, found.revision
    with ctx.store.transaction():
        ctx.store.set_instance_version(ctx.project.id, version, revision, ctx.now)
        ctx.store.set_cursor(ctx.project.id, CURSOR_INSTANCE_VERSION, to_db_time(ctx.now) or "")
