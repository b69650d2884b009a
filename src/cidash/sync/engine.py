"""The engine: resolve the project, take its lease, run the steps in order (side steps on their own thread),
and write the report; several projects a few at a time under one request ceiling (:class:`_ProjectPool`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from cidash.errors import (
    CidashError,
    ConnectError,
    NotFound,
    StoreError,
)
from cidash.models import (
    Job,
    Pipeline,
    Project,
    RateLimitState,
    SyncRun,
)
from cidash.remote import jobs as remote_jobs
from cidash.remote import pipelines as remote_pipelines
from cidash.remote import projects as remote_projects
from cidash.remote.policy import RequestStats
from cidash.remote.wire import RejectedRecord, WireLog
from cidash.store import Store, to_db_time
from cidash.sync.context import (
    CURSOR_LAST_SYNC,
    SyncOptions,
    SyncProgress,
    SyncReport,
    _absorb_wire,
    _Ctx,
    _is_fatal,
    _step_deferred_on_failure,
    _warn,
    _wire_now,
)
from cidash.sync.instance import _sync_instance_version
from cidash.sync.jobs import _sync_jobs, start_jobs_listing
from cidash.sync.lease import _Lease
from cidash.sync.logs import _sync_logs
from cidash.sync.origin import claim_store_origin
from cidash.sync.pipelines import _sync_pipelines
from cidash.sync.pool import PriorityPool, submit_bulk, workers_for
from cidash.sync.registry import _sync_registry_and_groups
from cidash.sync.repository import (
    _sync_checksums,
    _sync_ci_configs,
)

if TYPE_CHECKING:
    from cidash.remote import GitLabClient


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
    try:
        store.upsert_project(project)
    except StoreError:
        # Another process (a second `cidash sync` or `serve` on the same PostgreSQL) stored the project at the same
        # moment: a concurrent insert can fail on the path's unique index rather than meet the id conflict. The
        # row is there now; the same upsert updates it. Any other store failure is raised again.
        if store.project(project.id) is None:
            raise
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
    workers: Executor | None = None,
) -> SyncReport:
    """Sync one project into the store (see the module docstring). Raises :class:`cidash.errors.CidashError`
    on a failure that stops the sync; what was committed before it stays consistent and is kept.

    Waits while another sync of the project holds its lease (see the module docstring). ``workers``: a pool shared
    with other projects' syncs (:class:`_ProjectPool`) instead of the sync's own ``options.concurrency`` threads."""
    started = time.monotonic()
    baseline = _Baseline(
        *client.stats.snapshot(), client.stats.retries, dict(client.stats.by_kind), client.limiter.waited
    )
    claim_store_origin(store, client.connection.url, accept=options.accept_origin)
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
            workers=workers,
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
    workers: Executor | None = None,
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
    with (
        PriorityPool(workers_for(options.concurrency), thread_name_prefix="cidash-sync")
        if workers is None
        else _ProjectExecutor(workers)
    ) as pool:
        ctx = _Ctx(client, store, resolved, options, pool, progress, now, wire=WireLog(now=_wire_now(now)))
        lease.ctx = ctx
        try:  # from here every way out finishes the run (the first progress event can already be told to stop)
            if interrupted:
                _warn(
                    ctx,
                    f"an earlier sync of {resolved.path} was killed before it finished; its run is marked interrupted",
                )
            if lease_wait:
                _warn(ctx, f"waited {lease_wait:.0f}s for another sync of {resolved.path} to finish")
            ctx.emit("project")
            # The side steps run on their own thread from the start: what needs no pipeline (the GitLab version,
            # and on a first sync the registry and resource groups) at once, the checksums and CI files (and the
            # registry when it is due because pipelines changed) as soon as the pipelines are stored. They overlap
            # the jobs listing (sequential keyset pages) and the logs (the bulk); all feed the same pool, where the
            # log downloads wait behind every other request (cidash.sync.pool), so the window stays full from the
            # first pipeline page to the last log and no chain of dependent requests is left for the end.
            side = _SideSteps(ctx, first_sync=first_sync)
            side.start()
            try:
                _retry_deferred(ctx)
                if first_sync and options.since is None:
                    start_jobs_listing(ctx)
                _sync_pipelines(ctx)
                side.pipelines_stored()
                _sync_jobs(ctx)
                if options.fetch_logs:
                    _sync_logs(ctx)
            except BaseException:
                side.abort()  # the sync failed: the side steps start nothing more, and the error is not held up
                raise
            finally:
                side.release()
                side.join()
                side.merge()
            side.raise_error()
            _absorb_wire(ctx)
            store.set_cursor(resolved.id, CURSOR_LAST_SYNC, to_db_time(now) or "")
        except BaseException as exc:
            if ctx.jobs_listing is not None:
                ctx.jobs_listing.close()
            pool.shutdown(wait=True, cancel_futures=True)
            ctx.release_held()
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
    ctx.release_held()  # (the pool is done: nothing more arrives for this project)
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
    """The GitLab version, checksums, CI files, registry tags and resource groups, on their own thread (no
    progress events; warnings and rejected records of their own, handed over by :meth:`merge`).

    Started before the pipelines step: on a first sync, where everything is due, what needs no pipeline (the
    version, the registry, the resource groups) runs as soon as GitLab answered the pipelines listing (a project
    that cannot be read fails as fast as before); the rest waits for :meth:`pipelines_stored`, and an
    incremental sync decides then, with the pipelines counted (it checks the version and reads the registry again
    when pipelines changed, as before). When the
    pipelines step fails, :meth:`release` ends the wait and nothing that needs the pipelines runs; when any step of
    the sync fails, :meth:`abort` starts no further side step."""

    def __init__(self, ctx: _Ctx, *, first_sync: bool) -> None:
        super().__init__(name="cidash-sync-side", daemon=True)
        self.ctx = dataclasses.replace(
            ctx,
            progress=None,
            warnings=[],
            warnings_total=0,
            seen_warnings=set(),
            deferred=[],
            wire=WireLog(now=ctx.wire.now),
        )
        self.main = ctx
        self.first_sync = first_sync
        self.error: BaseException | None = None
        self._go = threading.Event()
        self._stored = False
        self._aborted = False

    def pipelines_stored(self) -> None:
        """The pipelines step is done: the steps that read the stored pipelines may run."""
        self.ctx.pipelines = self.main.pipelines
        self._stored = True
        self.main.listed.set()
        self._go.set()

    def abort(self) -> None:
        """The sync failed: start no further side step."""
        self._aborted = True
        self.release()

    def release(self) -> None:
        """End the waits (after :meth:`pipelines_stored`, or instead of it when the sync fails)."""
        self.main.listed.set()
        self._go.set()

    def run(self) -> None:
        ctx, options = self.ctx, self.ctx.options
        early = self.first_sync  # everything is due on a first sync: no need to wait for the pipelines' count
        try:
            if early:
                ctx.listed.wait()  # GitLab answered the pipelines listing: the project is readable
                if self._aborted:
                    return
                _sync_instance_version(ctx, first_sync=True)
                if options.fetch_registry and not self._aborted:
                    with _step_deferred_on_failure(ctx, "registry tags and resource groups"):
                        _sync_registry_and_groups(ctx, first_sync=True)
            self._go.wait()
            if not self._stored or self._aborted:
                return
            if not early:
                _sync_instance_version(ctx, first_sync=False)
            if options.fetch_checksums:
                with _step_deferred_on_failure(ctx, "file checksums"):
                    _sync_checksums(ctx)
                if not self._aborted:
                    with _step_deferred_on_failure(ctx, "CI files"):
                        _sync_ci_configs(ctx)
            if not early and options.fetch_registry and not self._aborted:
                with _step_deferred_on_failure(ctx, "registry tags and resource groups"):
                    _sync_registry_and_groups(ctx, first_sync=self.first_sync)
            _absorb_wire(ctx)
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
    """Sync the given projects and every project of ``group`` (listed through the API), up to
    ``options.project_concurrency`` of them at once (:class:`_ProjectPool`; 1: one after another).

    Reports come in the order of the targets (the given projects, then the group's), then those of the projects
    that could not be synced. With several projects, one that fails with a non-fatal error (not found, forbidden, a
    rejected record; see :func:`_is_fatal`; a connection failure is fatal here) gives a report with ``error`` set
    and the others are still synced; a fatal error stops the syncs in flight at their next commit and is raised;
    when every project fails, the first error is raised. A target named twice (by path and by id, or given and
    listed by the group) is synced once."""
    claim_store_origin(store, client.connection.url, accept=options.accept_origin)
    targets: list[str | int | Project] = list(projects)
    failed: list[SyncReport] = []
    if group:
        listing = WireLog(now=_wire_now(now))
        targets.extend(remote_projects.group_projects(client.http, group, log=listing))
        failed.extend(_failed_report(r.label, r) for r in listing.rejected)
    single = len(targets) == 1
    unique: list[str | int | Project] = []
    seen: set[str] = set()
    for target in targets:
        keys = _target_keys(target)
        if keys & seen:
            continue
        seen |= keys
        unique.append(target)
    workers = min(max(1, options.project_concurrency), len(unique))
    if workers > 1:
        outcomes = _ProjectPool(client, store, options=options, progress=progress, now=now).run(unique, workers)
    else:
        outcomes = _sequential(client, store, unique, options=options, progress=progress, now=now, single=single)
    reports: list[SyncReport] = []
    first_error: CidashError | None = None
    for target, outcome in zip(unique, outcomes, strict=True):
        if isinstance(outcome, SyncReport):
            reports.append(outcome)
        elif isinstance(outcome, CidashError):
            first_error = first_error or outcome
            failed.append(_failed_report(_target_label(target), outcome))
    if first_error is not None and not reports:
        raise first_error
    return reports + failed


#: What one target of :func:`sync_projects` came to: its report, the non-fatal error that stopped it, or None (a
#: duplicate of a project already synced in this call).
_Outcome = SyncReport | CidashError | None


def _target_keys(target: str | int | Project) -> set[str]:
    """How a target may be named twice: a listed project by its id or its path, a given one as written."""
    if isinstance(target, Project):
        return {str(target.id), target.path}
    return {str(target)}


def _target_label(target: str | int | Project) -> str:
    return target.path if isinstance(target, Project) else str(target)


def _sequential(
    client: GitLabClient,
    store: Store,
    targets: list[str | int | Project],
    *,
    options: SyncOptions,
    progress: Callable[[SyncProgress], None] | None,
    now: datetime,
    single: bool,
) -> list[_Outcome]:
    """The projects one after another on the calling thread (``project_concurrency = 1``, or one project)."""
    outcomes: list[_Outcome] = []
    for target in targets:
        try:
            outcomes.append(sync_project(client, store, target, options=options, progress=progress, now=now))
        except CidashError as exc:
            if _is_fatal(exc) or isinstance(exc, ConnectError) or single:
                raise
            outcomes.append(exc)
            if progress is not None:
                progress(_not_synced(_target_label(target), exc))
    return outcomes


def _not_synced(label: str, exc: CidashError) -> SyncProgress:
    """The last progress event of a project that could not be synced (a display closes its line on it)."""
    return SyncProgress(project=label, phase="done", message=f"not synced: {exc.one_line()}")


class _Stopped(CidashError):
    """Raised into a project's sync (through its progress callback) when the group sync stops: Ctrl-C, or a fatal
    error in another project. The sync ends at its last commit, as a sync killed between two steps would."""


class _ProjectStats(RequestStats):
    """One project's request counters; every count also goes to the shared client's (totals, ``--verbose``)."""

    def __init__(self, shared: RequestStats) -> None:
        super().__init__()
        self.shared = shared

    def record(self, method: str, path: str, status: int, nbytes: int) -> None:
        super().record(method, path, status, nbytes)
        self.shared.record(method, path, status, nbytes)

    def add_bytes(self, nbytes: int) -> None:
        super().add_bytes(nbytes)
        self.shared.add_bytes(nbytes)

    def retried(self) -> None:
        super().retried()
        self.shared.retried()


def project_client(client: GitLabClient) -> GitLabClient:
    """A client for one project's sync among several in flight: the same connection, rate limiter (the one request
    ceiling) and retry policy as ``client``, with its own request counters (forwarded to ``client``'s), so the
    project's report counts its own requests. Close it when the sync ends (its keep-alive connections)."""
    from cidash.remote import GitLabClient

    view = GitLabClient(
        client.connection, limiter=client.limiter, stats=_ProjectStats(client.stats), retry=client.retry
    )
    view.graphql = client.graphql  # one project's GraphQL refusal is known to the others
    shared = client.http
    if shared._scheme == "https":  # the TLS context costs ~30 ms of CPU to build: built once, shared by every view
        view.http._ssl_context = shared._context()
    return view


_P = ParamSpec("_P")
_T = TypeVar("_T")


class _ProjectExecutor(Executor):
    """One project's door to a worker pool shared by several projects' syncs: its tasks go to the shared pool, and
    ``shutdown`` (the end of the sync, or its failure) cancels and waits for this project's tasks only."""

    def __init__(self, shared: Executor) -> None:
        self._shared = shared
        self._lock = threading.Lock()
        self._futures: set[Future[Any]] = set()

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        return self._track(self._shared.submit(fn, *args, **kwargs))

    def submit_bulk(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        return self._track(submit_bulk(self._shared, fn, *args, **kwargs))

    def _track(self, future: Future[_T]) -> Future[_T]:
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._futures.discard(future)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            pending = list(self._futures)
        if cancel_futures:
            for future in pending:
                future.cancel()
        if wait:
            wait_for(pending)


class _ProjectPool:
    """Several projects in flight at once (:func:`sync_projects` with ``project_concurrency`` > 1).

    - **One request ceiling.** Every project's sync runs on :func:`project_client`, which shares the caller's rate
      limiter: the in-flight window, ``max_rps`` and GitLab's ``RateLimit-*`` budget hold for all projects
      together. Their logs, details and checksums go to one pool of ``[gitlab] concurrency`` workers
      (:class:`_ProjectExecutor`), first come first served: one big project can still fill the window once the
      small ones are done, and no more threads wait for a request slot than there are slots (a pool per project
      had 8 x 32 threads contend for 32 slots and cost a third more CPU, see bench/README.md).
    - **One store.** The syncs share the caller's :class:`~cidash.store.Store` (one connection behind a lock; each
      step's transaction is short and holds no request), so no second connection contends for SQLite's write
      lock or PostgreSQL's row locks (see bench/README.md "Group of 500 projects" for the measurement).
    - **Never two syncs of one project**: a target is resolved first and a project id already taken in this call
      is skipped; across processes the project's lease (:mod:`cidash.sync.lease`) keeps the promise.
    - **Progress**: the caller's callback is called under a lock (never from two threads at once); every
      :class:`SyncProgress` names its project; a project that could not be synced ends with a ``"done"`` event
      whose message says why.
    - **Stop**: a fatal error (:func:`_is_fatal`, or a connection failure) or an interrupt (Ctrl-C) in the waiting
      thread starts no further project and stops those in flight at their next progress point (between two
      commits: nothing half-written; their runs are recorded as stopped and their leases released); then the
      error is raised.
    """

    def __init__(
        self,
        client: GitLabClient,
        store: Store,
        *,
        options: SyncOptions,
        progress: Callable[[SyncProgress], None] | None,
        now: datetime,
    ) -> None:
        self.client = client
        self.store = store
        self.options = options
        self.progress = progress
        self.now = now
        self._lock = threading.Lock()
        self._progress_lock = threading.Lock()
        self._stop = threading.Event()
        self._why = ""
        self._fatal: BaseException | None = None
        self._claimed: set[int] = set()
        self.workers: Executor | None = None  # the shared worker pool, while run() runs
        self.targets = 0  # how many projects run() was given (each progress event says it)

    def run(self, targets: list[str | int | Project], workers: int) -> list[_Outcome]:
        outcomes: list[_Outcome] = [None] * len(targets)
        self.targets = len(targets)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cidash-sync-project")
        shared = PriorityPool(workers_for(self.options.concurrency), thread_name_prefix="cidash-sync")
        self.workers = shared
        try:
            futures = [pool.submit(self._one, i, target, outcomes) for i, target in enumerate(targets)]
            for future in futures:
                future.result()
        except BaseException as exc:  # Ctrl-C while waiting: the syncs in flight stop at their next commit
            self._halt(f"interrupted ({type(exc).__name__})")
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
            shared.shutdown(wait=True)
        if self._fatal is not None:
            raise self._fatal
        return outcomes

    def _halt(self, why: str, error: BaseException | None = None) -> None:
        with self._lock:
            if not self._stop.is_set():
                self._why = why
                self._fatal = error
                self._stop.set()

    def _emit(self, update: SyncProgress) -> None:
        """The progress callback every project's sync gets: raises :class:`_Stopped` once the pool stops."""
        if self._stop.is_set():
            raise _Stopped(f"stopped before its end: {self._why}")
        if self.progress is not None:
            with self._progress_lock:
                self.progress(dataclasses.replace(update, projects=self.targets))

    def _one(self, index: int, target: str | int | Project, outcomes: list[_Outcome]) -> None:
        if self._stop.is_set():
            return
        label = _target_label(target)
        client = project_client(self.client)
        try:
            resolved = resolve_project(client, self.store, target)
            label = resolved.path
            with self._lock:
                if resolved.id in self._claimed:
                    return  # the same project named twice (a path and an id): synced once
                self._claimed.add(resolved.id)
            outcomes[index] = sync_project(
                client,
                self.store,
                resolved,
                options=self.options,
                progress=self._emit,
                now=self.now,
                workers=self.workers,
            )
        except _Stopped:
            return
        except CidashError as exc:
            if _is_fatal(exc) or isinstance(exc, ConnectError):
                self._halt(f"{label}: {exc.one_line()}", exc)
                return
            outcomes[index] = exc
            if self.progress is not None and not self._stop.is_set():
                with self._progress_lock:
                    self.progress(_not_synced(label, exc))
        except BaseException as exc:  # a bug in one project's sync: stop the others, raise it on the caller's thread
            self._halt(f"{label}: {type(exc).__name__}", exc)
        finally:
            client.close()


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
