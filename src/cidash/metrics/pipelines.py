"""Pipeline durations and queue times (GitLab's own ``duration`` and ``queued_duration``), as samples."""

from __future__ import annotations

from cidash.metrics.model import Dataset, Sample, _plausible, counted_jobs
from cidash.models import DECIDED_STATUSES


def pipeline_durations(ds: Dataset) -> Sample:
    """GitLab's ``duration`` (running time, seconds) of finished pipelines."""
    return Sample("pipeline_duration", _plausible(p.duration for p in ds.pipelines if p.status in DECIDED_STATUSES))


def pipeline_queue_times(ds: Dataset) -> Sample:
    """GitLab's ``queued_duration`` (seconds waiting for a runner) of pipelines that report one."""
    return Sample("pipeline_queue", _plausible(p.queued_duration for p in ds.pipelines))


def job_queue_times(ds: Dataset, *, include_retried: bool = False) -> Sample:
    """Jobs' ``queued_duration`` (pending -> picked by a runner), manual jobs never counted."""
    jobs = counted_jobs(ds, include_retried=include_retried)
    return Sample("job_queue", _plausible(j.queued_duration for j in jobs))
