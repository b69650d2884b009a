"""Shared by every step: the sync's options, progress and report, its cursors, and the context one sync of
one project carries through its steps (:class:`_Ctx`: the client, the store, counters, warnings, the pool).
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from cidash.errors import (
    AuthError,
    CidashError,
    ConfigError,
    StoreError,
    UsageError,
)
from cidash.models import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    Job,
    Project,
    RateLimitState,
    TraceFacts,
)
from cidash.remote.readahead import ReadAhead
from cidash.remote.wire import WireLog
from cidash.store import Store, from_db_time

if TYPE_CHECKING:
    from cidash.config import Config
    from cidash.remote import GitLabClient

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
#: When GitLab last refused this project's pipelines' details by GraphQL (an error, a missing project, a refused
#: redirect, ...): the details go over REST, without asking GraphQL or warning again, until a day has passed.
CURSOR_GRAPHQL_REFUSED = "graphql_refused_at"
GRAPHQL_RETRY_AFTER = timedelta(days=1)

_LOG_COMMIT_BATCH = 100  # parsed logs per transaction (a few statements per batch, not per log)

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
    #: Projects :func:`cidash.sync.sync_projects` syncs at once (``[sync] project_concurrency``); they share the
    #: client's one request ceiling, so this bounds the projects in flight, not the requests.
    project_concurrency: int = 8
    #: When another live process holds the project's lease: wait for it (``cidash sync``, the dashboard), or
    #: raise :class:`~cidash.errors.ProjectBusy` at once (``cidash serve``: its other processes take the project).
    wait_for_lease: bool = True
    #: Record the configured GitLab as the one the store holds even when another was recorded (``cidash sync
    #: --accept-origin``: the instance moved); see :mod:`cidash.sync.origin`.
    accept_origin: bool = False

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
            project_concurrency=config.sync.project_concurrency,
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
    #: How many projects this sync covers when it syncs several at once (a group); 0: just this one.
    projects: int = 0


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


#: A fetched log: the job, its parsed facts (None: GitLab had no log), the log's bytes, and its seconds per phase
#: (:func:`cidash.logparse.phase_durations`).
_LogResult = tuple[Job, TraceFacts | None, int, Mapping[str, float]]
#: What a log download hands the logs step: as :data:`_LogResult`, or the whole log's bytes in place of its facts,
#: held for the step to parse (:data:`_HELD_LOG_BYTES`; its phases then come with the facts).
_Fetched = tuple[Job, TraceFacts | bytes | None, int, Mapping[str, float]]


_PREFETCH_PER_WORKER = 100  # results are small parsed facts; the cap only bounds a huge first sync
#: A log received whole (one under :data:`cidash.remote.http.SINK_AFTER_SLOT`: nearly every job's) is handed to the
#: logs step unparsed, and the step parses the results it took together before it writes them (up to
#: :data:`_LOG_COMMIT_BATCH`, or a second's worth), while at most this many bytes of logs wait so
#: in the process (every project a group sync runs at once together); past it, and for a long log (streamed into
#: its parser as it arrives), the download worker parses.
#: One thread parsing one log after another spends ~40 % less CPU on it than the download workers do, each parse
#: squeezed between socket calls on cold caches, and the workers get back to their sockets sooner: the answers
#: waited ~2 ms less each for a worker to read them (bench/README.md, "Sync", 2026-12-03 22:50-23:15 UTC).
_HELD_LOG_BYTES = 16 * 1024 * 1024


class _HeldLogs:
    """The bytes of logs waiting, unparsed, for their logs step, across the process (:data:`_HELD_LOG_BYTES`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes = 0


_HELD = _HeldLogs()


@dataclass
class _Ctx:
    client: GitLabClient
    store: Store
    project: Project
    options: SyncOptions
    pool: Executor
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
    prefetched: dict[int, Future[_Fetched]] = field(default_factory=dict)
    #: Guards ``prefetched`` (the early jobs listing adds to it from its own thread); ``prefetch_open`` False once
    #: the logs step took the downloads started so far.
    prefetch_lock: threading.Lock = field(default_factory=threading.Lock)
    prefetch_open: bool = True
    #: The early jobs listing queues each listed job's log itself (:func:`cidash.sync.jobs.start_jobs_listing`).
    prefetch_listed: bool = False
    #: Set once GitLab answered the pipelines listing (the project is readable with this token): the side steps of
    #: a first sync wait for it before their first request, so a project that fails at once fails as fast as before.
    listed: threading.Event = field(default_factory=threading.Event)
    #: What the wire rejected while parsing (drained into warnings and ``sync_deferred`` by :func:`_absorb_wire`).
    wire: WireLog = field(default_factory=WireLog)
    #: The jobs listing, already running ahead on its own thread (a first sync of the whole history starts it
    #: beside the pipelines step, see :func:`cidash.sync.jobs.start_jobs_listing`); None: the jobs step starts it.
    jobs_listing: ReadAhead[Job] | None = None
    #: What the early jobs listing's wire rejected: handed to ``wire`` by the jobs step, so that its warnings come
    #: where they always came (after the pipelines'), not mixed into the pipelines step.
    jobs_wire: WireLog | None = None
    warnings_total: int = 0
    seen_warnings: set[str] = field(default_factory=set)
    deferred: list[str] = field(default_factory=list)
    #: Bytes of this project's downloaded logs waiting, unparsed, for its logs step (:data:`_HELD_LOG_BYTES`).
    held_log_bytes: int = 0
    held_closed: bool = False
    #: Pipelines' details asked for by GraphQL, many to a request (:func:`cidash.sync.pipelines._details`); False
    #: once GitLab refused that in this sync, and for a CI job token (GitLab's GraphQL API does not take one).
    graphql: bool = True
    #: Set (on a pool thread) when GitLab refused the query in a way the next sync would meet again: the pipelines
    #: step records it (:data:`CURSOR_GRAPHQL_REFUSED`). A transient failure only turns ``graphql`` off.
    graphql_refused: bool = False

    def hold_log(self, size: int) -> bool:
        """Whether a downloaded log of ``size`` bytes may wait unparsed for the logs step (counted, here and in the
        process, until :meth:`release_log`)."""
        with _HELD.lock:
            if self.held_closed or _HELD.bytes + size > _HELD_LOG_BYTES:
                return False
            _HELD.bytes += size
            self.held_log_bytes += size
            return True

    def release_log(self, size: int) -> None:
        with _HELD.lock:
            if not self.held_closed:
                _HELD.bytes -= size
                self.held_log_bytes -= size

    def release_held(self) -> None:
        """Give back what this project's sync still holds (its pool is done: a step that failed took no more
        results); nothing is held for it from here on."""
        with _HELD.lock:
            _HELD.bytes -= self.held_log_bytes
            self.held_log_bytes = 0
            self.held_closed = True

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

    def bounded(
        self, fn: Callable[[_T], _R], items: Iterable[_T], window: int | None = None, *, bulk: bool = False
    ) -> Iterator[Future[_R]]:
        """Submit ``fn(item)`` to the pool with at most ``window`` in flight; yield futures as they complete.
        ``bulk``: behind every ordinary task (:func:`cidash.sync.pool.submit_bulk`)."""
        import queue

        from cidash.sync.pool import submit_bulk

        pool = self.pool

        def submit(fn: Callable[[_T], _R], item: _T) -> Future[_R]:
            return submit_bulk(pool, fn, item) if bulk else pool.submit(fn, item)

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
                submit(fn, item).add_done_callback(finished.put)
                in_flight += 1
            if not in_flight:
                return
            done = finished.get()
            in_flight -= 1
            yield done


_WARN_LOCK = threading.Lock()


def _warn(ctx: _Ctx, message: str) -> None:
    """One warning for the report (the same text twice counts once: a listing and a detail may both say it). Safe
    from a pool worker."""
    with _WARN_LOCK:
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


def _item_deferred(ctx: _Ctx, what: str, exc: CidashError) -> None:
    """One item of a side step failed: re-raise if fatal, else a warning (the step retries it next sync)."""
    if _is_fatal(exc):
        raise exc
    _warn(ctx, f"{what} deferred to the next sync: {exc.one_line()}")
    ctx.deferred.append(f"{what}: {exc.one_line()}")


def _due(ctx: _Ctx, kind: str, *, first_sync: bool) -> bool:
    if first_sync or ctx.pipelines > 0:
        return True
    last = ctx.store.cursor(ctx.project.id, kind)
    fetched = from_db_time(last) if last else None
    return fetched is None or ctx.now - fetched >= ctx.options.registry_refresh
