"""Each criterion's evidence table (the evidence modal): the rows its sentence counts."""

from __future__ import annotations

from cidash.criteria.protocol import EvalContext, EvidenceTable
from cidash.formatting import fmt_seconds, fmt_time, fmt_value
from cidash.metrics import (
    image_size_history,
    job_startups,
    overlapping_writers,
    stale_cache_events,
    unserialised_config_writers,
)
from cidash.models import MB
from cidash.specs import short_digest


def _evidence_image_size(ctx: EvalContext) -> EvidenceTable:
    rows = [
        (p.tag, short_digest(p.digest or ""), fmt_value(p.size_bytes / MB, "MB", column=True), fmt_time(p.created_at))
        for p in reversed(image_size_history(ctx.ds, ctx.config.image.repository))
    ]
    return ("tag", "digest", "size", "created"), rows


def _evidence_startup(ctx: EvalContext) -> EvidenceTable:
    """The candidate's start-ups the criterion counts (the image-build job left out), slowest first."""
    skip = (ctx.config.image.build_job,)
    counted = job_startups(ctx.periods.candidate, include_retried=ctx.include_retried, exclude_jobs=skip)
    rows = [
        (
            str(s.job_id),
            f"#{s.pipeline_id}",
            s.name,
            fmt_time(s.started_at),
            fmt_seconds(s.seconds),
            short_digest(s.image_digest or ""),
        )
        for s in sorted(counted, key=lambda s: -s.seconds)[:200]
    ]
    return ("job", "pipeline", "name", "started", "start-up", "digest"), rows


def _job_runs(ctx: EvalContext, name: str, *, keep_retried: bool) -> EvidenceTable:
    """The ``name`` jobs the criterion's sentence counts: finished runs only (a manual job nobody played is not a
    run); every attempt for the image build, runs that were not retried for the verify job."""
    from cidash.metrics import FINISHED_STATUSES

    counted = (
        j
        for j in ctx.periods.candidate.jobs
        if j.name == name and j.status in FINISHED_STATUSES and (keep_retried or not j.retried)
    )
    jobs = sorted(counted, key=lambda j: (j.created_at, j.id))
    rows = [
        (
            str(j.id),
            f"#{j.pipeline_id}",
            j.status,
            j.failure_reason or "",
            fmt_time(j.created_at),
            "yes" if j.retried else "",
        )
        for j in reversed(jobs)
    ]
    return ("job", "pipeline", "status", "reason", "created", "retried"), rows


def _evidence_stale_caches(ctx: EvalContext) -> EvidenceTable:
    events = stale_cache_events(ctx.periods.candidate, ctx.config.cache_key.files)
    rows = [(e.kind, e.key, f"#{e.pipeline_id}", fmt_time(e.at), ", ".join(e.changed_files)) for e in reversed(events)]
    return ("kind", "key", "pipeline", "at", "changed files"), rows


def _evidence_cache_key_files(ctx: EvalContext) -> EvidenceTable:
    rows = [(c.job, str(c.index), c.key or "", str(c.key_files), c.policy, str(c.line or "")) for c in ctx.ds.ci_caches]
    return ("job", "cache", "key", "key:files entries", "policy", "line"), rows


def _evidence_cache_writers(ctx: EvalContext) -> EvidenceTable:
    ds = ctx.ds
    rows: list[tuple[str, ...]] = [
        ("config: no resource_group", u.key, ", ".join(u.jobs), "", "")
        for u in (unserialised_config_writers(ds.ci_caches) if ds.ci_config_known else [])
    ]
    rows.extend(
        (
            "observed overlap",
            o.key,
            f"{o.first_job_id}, {o.second_job_id}",
            fmt_seconds(o.overlap_seconds),
            fmt_time(o.at),
        )
        for o in overlapping_writers(ctx.periods.candidate)
    )
    return ("kind", "key", "jobs", "overlap", "at"), rows
