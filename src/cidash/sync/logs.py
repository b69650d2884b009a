"""Step 3: the logs of finished jobs, each fetched once in the worker pool; a log received whole is parsed by this
step's thread, the results it took parsed together before each write (:data:`cidash.sync.context._HELD_LOG_BYTES`),
a long one streamed into its parser on the worker."""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import CancelledError, Future, as_completed
from typing import TYPE_CHECKING

from cidash.errors import (
    CidashError,
    ConnectError,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unsupported,
)
from cidash.models import (
    Job,
)
from cidash.remote import jobs as remote_jobs
from cidash.sync.context import (
    _LOG_COMMIT_BATCH,
    _PREFETCH_PER_WORKER,
    FINISHED_JOB_STATUSES,
    _Ctx,
    _Fetched,
    _human_bytes,
    _is_fatal,
    _LogResult,
    _warn,
)
from cidash.sync.pool import submit_bulk

if TYPE_CHECKING:
    from cidash.logparse import TraceParser
    from cidash.models import TraceFacts


def _wanted(name: str, patterns: tuple[str, ...]) -> bool:
    if patterns == ("*",):  # the default: every name (fnmatch would test each of thousands of names)
        return True
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


class _LogCut(Exception):
    """Raised by a :class:`_LogSink` past :data:`~cidash.remote.policy.MAX_LOG_BYTES`: the download stops there
    (the HTTP client closes its connection mid-answer) and the facts of what was read are kept."""


class _LogSink:
    """One download attempt's log (a retried download starts afresh: no parser is ever fed twice). A log that
    arrives in one piece (received whole after its slot was given back: the usual small log) is kept as ``body``;
    one that arrives in chunks (a long log, streamed) goes into a parser chunk by chunk from its first. Past
    :data:`~cidash.remote.policy.MAX_LOG_BYTES` the rest is not read (``cut``, :class:`_LogCut`)."""

    def __init__(self) -> None:
        self.parser: TraceParser | None = None
        self.body: bytes | None = None
        self.bytes = 0
        self.cut = False

    def __call__(self) -> Callable[[bytes], None]:
        self.parser, self.body, self.bytes, self.cut = None, None, 0, False
        from cidash.remote.policy import MAX_LOG_BYTES

        def sink(chunk: bytes) -> None:
            if self.bytes + len(chunk) > MAX_LOG_BYTES:
                self.cut = True
                chunk = chunk[: MAX_LOG_BYTES - self.bytes]
            self.bytes += len(chunk)
            parser = self.parser
            if parser is None and self.body is None:
                self.body = chunk
            else:
                if parser is None:
                    from cidash.logparse import TraceParser

                    parser = self.parser = TraceParser()
                    parser.feed(self.body or b"")
                    self.body = None
                parser.feed(chunk)
            if self.cut:
                raise _LogCut()

        return sink

    def facts(self) -> TraceFacts:
        """The log's facts (parsed here if it came in one piece); a log cut short here is truncated."""
        if self.parser is None:
            from cidash.logparse import parse_bytes

            facts = parse_bytes(self.body or b"")
        else:
            facts = self.parser.finish()
        return dataclasses.replace(facts, truncated=True) if self.cut and not facts.truncated else facts


class _LogFailed(Exception):
    """One log could not be fetched (a non-fatal :class:`CidashError`, see :func:`_is_fatal`): its job is deferred."""

    def __init__(self, job: Job, error: CidashError) -> None:
        super().__init__(error.one_line())
        self.job = job
        self.error = error


def _fetch_log(ctx: _Ctx, job: Job) -> _Fetched:
    """Download ``job``'s log on a pool worker: its facts, or the whole log left for the logs step to parse
    (:data:`~cidash.sync.context._HELD_LOG_BYTES`, :func:`_parsed`)."""
    sink = _LogSink()
    try:
        found = remote_jobs.stream_log(ctx.client.http, ctx.project.id, job.id, sink)
    except _LogCut:
        from cidash.remote.policy import MAX_LOG_BYTES

        found = True  # sink.cut: its facts are parsed here (never held for the logs step, which would lose that)
        _warn(
            ctx, f"log of {_job_label(job)} read only to {_human_bytes(MAX_LOG_BYTES)}: its facts are marked truncated"
        )
    except CidashError as exc:
        if _is_fatal(exc):
            raise
        raise _LogFailed(job, exc) from None
    if not found or sink.bytes == 0:
        return job, None, sink.bytes, _NO_PHASES
    if sink.body is not None and not sink.cut and ctx.hold_log(len(sink.body)):
        return job, sink.body, sink.bytes, _NO_PHASES
    return _with_phases(job, sink.facts(), sink.bytes)


def _parsed(ctx: _Ctx, fetched: _Fetched) -> _LogResult:
    """A download's result with its log parsed: on the logs step's thread if the worker left it whole."""
    job, got, nbytes, phases = fetched
    if not isinstance(got, bytes):
        return job, got, nbytes, phases
    ctx.release_log(len(got))
    from cidash.logparse import parse_bytes

    return _with_phases(job, parse_bytes(got), nbytes)


def _with_phases(job: Job, facts: TraceFacts, nbytes: int) -> _LogResult:
    from cidash.logparse import phase_durations  # the sync computes what it stores: the store never parses

    return job, facts, nbytes, phase_durations(facts)


def _drop(ctx: _Ctx, future: Future[_Fetched]) -> None:
    """Call off a download the logs step will not take; one already running or done gives back, once done, what
    its held log counted (without waiting for it here)."""
    if future.cancel():
        return

    def release(done: Future[_Fetched]) -> None:
        if not done.cancelled() and done.exception() is None:
            got = done.result()[1]
            if isinstance(got, bytes):
                ctx.release_log(len(got))

    future.add_done_callback(release)


_NO_PHASES: Mapping[str, float] = {}


def _log_wanted(ctx: _Ctx, job: Job) -> bool:
    return job.started_at is not None and _wanted(job.name, ctx.options.job_patterns)


def _prefetch_logs(ctx: _Ctx, job_ids: list[int]) -> None:
    """Start downloading the logs of just-committed finished jobs while the listing goes on (the pool would idle)."""
    if not ctx.options.fetch_logs:
        return
    for job in ctx.store.jobs_needing_logs(ctx.project.id, ids=job_ids):
        if job.status in FINISHED_JOB_STATUSES and _log_wanted(ctx, job) and not _prefetch(ctx, job):
            return


def _prefetch_listed(ctx: _Ctx, job: Job) -> None:
    """Start downloading a listed job's log before the job is stored: the early jobs listing of a first sync into
    a store that holds none of the project's jobs (:func:`cidash.sync.jobs.start_jobs_listing`), where every
    finished job's log is due. The same test as the logs step's (finished, started, name wanted); the result is
    used only if the logs step finds the job due (else it is dropped, a request spent for nothing)."""
    if job.finished_at is not None and job.status in FINISHED_JOB_STATUSES and _log_wanted(ctx, job):
        _prefetch(ctx, job)


def _prefetch(ctx: _Ctx, job: Job) -> bool:
    """Queue ``job``'s log download behind every ordinary task (False: the prefetch cap is reached, or the logs
    step took the prefetched downloads already)."""
    cap = _PREFETCH_PER_WORKER * max(1, ctx.options.concurrency)
    with ctx.prefetch_lock:
        if not ctx.prefetch_open or len(ctx.prefetched) >= cap:
            return False
        if job.id not in ctx.prefetched:
            ctx.prefetched[job.id] = submit_bulk(ctx.pool, _fetch_log, ctx, job)
        return True


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
    taken: list[_Fetched] = []
    last_commit = time.monotonic()

    def commit() -> None:
        if not taken:
            return
        # The logs left whole are parsed here, one after another: ~100-150 us of CPU a log less than one at a time
        # between the workers' socket calls (bench/README.md, "Sync", 2026-12-04).
        results = [_parsed(ctx, fetched) for fetched in taken]
        taken.clear()
        parsed = [(job.id, facts, nbytes) for job, facts, nbytes, _ in results if facts is not None]
        unavailable = [job.id for job, facts, _, _ in results if facts is None]
        phases = {job.id: job_phases for job, facts, _, job_phases in results if facts is not None}
        with store.transaction():
            store.save_many_job_facts(parsed, project_id=pid, parsed_at=ctx.now, phases=phases)
            if unavailable:
                store.set_log_state(unavailable, "unavailable")

    stop = threading.Event()  # set when GitLab keeps rate-limiting: the rest waits for the next sync
    connect_failures = 0
    started = 0

    todo_ids = {j.id for j in todo}
    with ctx.prefetch_lock:  # no download is started early from here on
        ctx.prefetch_open = False
        early, ctx.prefetched = ctx.prefetched, {}
    prefetched = {i: f for i, f in early.items() if i in todo_ids}
    for i, f in early.items():
        if i not in todo_ids:
            _drop(ctx, f)
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
    fetched = ctx.bounded(lambda j: _fetch_log(ctx, j), remaining(), bulk=True)
    futures = itertools.chain(as_completed(prefetched.values()), fetched)
    for future in futures:
        try:
            result = future.result()
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
        job, facts = result[0], result[1]
        handled.add(job.id)
        taken.append(result)
        if facts is None:
            ctx.logs_unavailable += 1
        else:
            ctx.logs += 1
        if len(taken) >= _LOG_COMMIT_BATCH or time.monotonic() - last_commit > 1.0:
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
