"""Step 2: jobs through the project-wide keyset listing, newest first, down to what is due or still running."""

from __future__ import annotations

from collections.abc import Iterator

from cidash.models import Job
from cidash.remote import jobs as remote_jobs
from cidash.remote.jobs import PER_PAGE
from cidash.remote.readahead import ReadAhead
from cidash.remote.wire import WireLog
from cidash.sync.context import (
    ACTIVE_JOB_STATUSES,
    ACTIVE_PIPELINE_STATUSES,
    _absorb_wire,
    _Ctx,
)
from cidash.sync.logs import _prefetch_listed, _prefetch_logs

#: Pages of the jobs listing read ahead while the pipelines step runs (a bound on memory, not on requests).
EARLY_PAGES = 20


def start_jobs_listing(ctx: _Ctx) -> None:
    """Start the jobs listing now, beside the pipelines step, when it will be read to its end anyway: a first
    sync of the whole history (no ``since``) lists every job, so its sequential keyset pages need not wait for
    the pipelines. Any other sync stops the listing at the first job it knows and starts it in the jobs step,
    so that no page is read that it would not read (an idle refresh stays one request)."""
    ctx.jobs_wire = WireLog(now=ctx.wire.now)
    listing = remote_jobs.jobs_newest_first(ctx.client.http, ctx.project.id, log=ctx.jobs_wire, pages_ahead=2)
    if ctx.options.fetch_logs and ctx.store.max_job_id(ctx.project.id) is None:
        # No job of the project is stored (not even from a first sync cut short): every finished job's log will
        # be due, so its download starts as the listing names it, behind the pipelines step's own requests
        # (:mod:`cidash.sync.pool`), instead of after the pipelines and then the jobs are stored.
        listing = _prefetching(ctx, listing)
        ctx.prefetch_listed = True
    ctx.jobs_listing = ReadAhead(listing, depth=EARLY_PAGES * PER_PAGE, name="cidash-sync-jobs")


def _prefetching(ctx: _Ctx, jobs: Iterator[Job]) -> Iterator[Job]:
    for job in jobs:
        _prefetch_listed(ctx, job)
        yield job


def _sync_jobs(ctx: _Ctx) -> None:
    store, pid = ctx.store, ctx.project.id
    due = store.pipelines_needing_jobs(pid)
    active = store.pipelines(pid, status=ACTIVE_PIPELINE_STATUSES)
    watch = {p.id: p for p in [*due, *active]}
    floor_time = min((p.created_at for p in watch.values()), default=None)
    floor_id = store.min_job_id(pid, statuses=ACTIVE_JOB_STATUSES)
    if floor_time is None and floor_id is None:
        if ctx.jobs_listing is not None:
            ctx.jobs_listing.close()
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
            if not ctx.prefetch_listed:  # else the listing queued these logs already
                _prefetch_logs(ctx, [j.id for j in batch])
            batch.clear()
            ctx.emit("jobs")

    ctx.emit("jobs")
    listing = ctx.jobs_listing or remote_jobs.jobs_newest_first(ctx.client.http, pid, log=ctx.wire)
    for job in listing:
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
    if ctx.jobs_wire is not None:
        issues, rejected = ctx.jobs_wire.drain()
        for issue in issues:
            ctx.wire.issue(issue)
        for error in rejected:
            ctx.wire.reject(error)
    _absorb_wire(ctx)
