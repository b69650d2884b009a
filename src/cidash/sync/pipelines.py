"""Step 1: pipelines changed since the cursor, listed oldest update first, each new or changed one's details."""

from __future__ import annotations

from collections.abc import Iterator

from cidash.errors import (
    BadPayload,
    CidashError,
    ConfigError,
    ConnectError,
    RateLimited,
    RemoteError,
    StoreError,
    UsageError,
)
from cidash.models import Pipeline
from cidash.remote import pipelines as remote_pipelines
from cidash.remote.readahead import read_ahead
from cidash.store import from_db_time, to_db_time
from cidash.sync.context import (
    _T,
    CURSOR_GRAPHQL_REFUSED,
    CURSOR_PIPELINES,
    GRAPHQL_RETRY_AFTER,
    _absorb_wire,
    _Ctx,
    _is_fatal,
    _warn,
)


def _sync_pipelines(ctx: _Ctx) -> None:
    store, pid = ctx.store, ctx.project.id
    cursor = store.cursor(pid, CURSOR_PIPELINES)
    updated_after = from_db_time(cursor) if cursor else ctx.options.since
    refused = from_db_time(store.cursor(pid, CURSOR_GRAPHQL_REFUSED))
    if ctx.client.connection.token_kind == "job":
        ctx.graphql = False  # GitLab's GraphQL API takes no CI job token
    elif refused is not None and ctx.now - refused < GRAPHQL_RETRY_AFTER:
        ctx.graphql = False  # said when it happened: asked over REST until a day has passed
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
        for pipeline, problem in _details(ctx, changed):
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
            if ctx.graphql_refused and refused != ctx.now:
                store.set_cursor(pid, CURSOR_GRAPHQL_REFUSED, to_db_time(ctx.now) or "")
                refused = ctx.now
        ctx.pipelines += len(detailed)
        _absorb_wire(ctx)
        ctx.emit("pipelines")
    _absorb_wire(ctx)


def _read_ahead(items: Iterator[_T], depth: int = 2) -> Iterator[_T]:
    """``items``, the next page requested while the caller still works on this one (:class:`ReadAhead`)."""
    return read_ahead(items, depth, "cidash-sync-pages")


def _details(ctx: _Ctx, changed: list[Pipeline]) -> Iterator[tuple[Pipeline, str | None]]:
    """Each changed pipeline with its details (and the reason when they could not be had), in order.

    By GraphQL first, :data:`~cidash.remote.pipelines.GRAPHQL_PIPELINES` pipelines a request (queries in the pool
    side by side): a first sync of 300 pipelines (three pages of 100) asks 12 times instead of 300, which counts
    under GitLab.com's 2,000 requests a minute. A pipeline GraphQL did not give is asked for over REST, one
    request each, as are all when GraphQL fails (:func:`_graphql_details`: warned once; a refusal is remembered a
    day, :data:`~cidash.sync.context.CURSOR_GRAPHQL_REFUSED`) and for a CI job token, which GitLab's GraphQL API
    does not accept."""
    found: dict[int, Pipeline] = {}
    if ctx.graphql and changed:
        size = remote_pipelines.GRAPHQL_PIPELINES
        batches = [changed[i : i + size] for i in range(0, len(changed), size)]
        for future in ctx.bounded(lambda batch: _graphql_details(ctx, batch), batches):
            found.update(future.result())
    rest = [p for p in changed if p.id not in found]
    answers = dict(future.result() for future in ctx.bounded(lambda p: (p.id, _pipeline_detail(ctx, p)), rest))
    for pipeline in changed:
        yield (found[pipeline.id], None) if pipeline.id in found else answers[pipeline.id]


def _graphql_details(ctx: _Ctx, batch: list[Pipeline]) -> dict[int, Pipeline]:
    """One batch's details by GraphQL (on a pool thread); {} when GraphQL failed, which turns it off for the rest of
    the sync with one warning, and marks a refusal the next sync would meet again for the pipelines step to store."""
    if not ctx.graphql:  # refused by an earlier query of this sync
        return {}
    if _refused_elsewhere(ctx):  # refused to another project of this run, for every project
        ctx.graphql, ctx.graphql_refused = False, True
        return {}
    try:
        return remote_pipelines.pipeline_details(ctx.client.http, ctx.project.path, batch, ctx.wire)
    except (CidashError, remote_pipelines.GraphQLRefused) as exc:
        if isinstance(exc, (StoreError, UsageError, ConfigError)):
            raise  # not GitLab's answer: REST would not do better (a token GraphQL refuses is REST's to judge)
        if ctx.graphql:
            ctx.graphql = False
            why = exc.one_line() if isinstance(exc, CidashError) else str(exc)
            if _transient(exc):
                _warn(ctx, f"pipelines' details asked for one by one in this sync (GraphQL did not answer: {why})")
            elif not _refused_elsewhere(ctx):  # (another project may have met it meanwhile: said there)
                ctx.graphql_refused = True
                if not (isinstance(exc, remote_pipelines.GraphQLRefused) and exc.project_only):
                    ctx.client.graphql.refused = why
                _warn(ctx, f"pipelines' details asked for one by one for a day (GraphQL refused them: {why})")
            else:
                ctx.graphql_refused = True
        return {}


def _refused_elsewhere(ctx: _Ctx) -> bool:
    """Whether another project's sync on this client met a refusal every project meets (a pool thread may set it
    at any moment: read it afresh each time)."""
    return ctx.client.graphql.refused is not None


def _transient(exc: Exception) -> bool:
    """A failure the next sync may not meet (no answer, a 5xx after retries, rate limiting); anything else (an
    error in GraphQL's answer, 4xx, a refused redirect, an answer that is not JSON) would come again."""
    if isinstance(exc, RateLimited) or (isinstance(exc, ConnectError) and not isinstance(exc, BadPayload)):
        return True
    return isinstance(exc, RemoteError) and type(exc) is RemoteError and (exc.status or 500) >= 500


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
