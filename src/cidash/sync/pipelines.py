"""Step 1: pipelines changed since the cursor, listed oldest update first, each new or changed one's details."""

from __future__ import annotations

from collections.abc import Iterator

from cidash.errors import CidashError
from cidash.models import Pipeline
from cidash.remote import pipelines as remote_pipelines
from cidash.remote.readahead import read_ahead
from cidash.store import from_db_time, to_db_time
from cidash.sync.context import (
    _T,
    CURSOR_PIPELINES,
    _absorb_wire,
    _Ctx,
    _is_fatal,
    _warn,
)


def _sync_pipelines(ctx: _Ctx) -> None:
    store, pid = ctx.store, ctx.project.id
    cursor = store.cursor(pid, CURSOR_PIPELINES)
    updated_after = from_db_time(cursor) if cursor else ctx.options.since
    ctx.emit("pipelines")
    listing = remote_pipelines.pipeline_pages(ctx.client.http, pid, updated_after=updated_after, log=ctx.wire)
    pages = _read_ahead(listing)
    for page in pages:
        ctx.listed.set()
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
    """``items``, the next page requested while the caller still works on this one (:class:`ReadAhead`)."""
    return read_ahead(items, depth, "cidash-sync-pages")


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
