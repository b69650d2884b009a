"""Job outcomes: the image-build job's attempts per pipeline (failures by kind), a job's success rate."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from cidash.metrics.model import FINISHED_STATUSES, Dataset
from cidash.models import Job
from cidash.stats import rate

#: GitLab ``failure_reason`` values caused by the platform rather than the job's own script.
INFRASTRUCTURE_FAILURES = frozenset(
    {
        "runner_system_failure",
        "stuck_or_timeout_failure",
        "scheduler_failure",
        "api_failure",
        "data_integrity_failure",
        "runner_unsupported",
        "stale_schedule",
        "archived_failure",
        "unmet_prerequisites",
        "missing_dependency_failure",
        "forward_deployment_failure",
        "job_execution_timeout",
        "job_execution_server_timeout",
        "trace_size_exceeded",
        "builds_disabled",
        "environment_creation_failure",
        "deployment_rejected",
        "no_matching_runner",
        "ip_restriction_failure",
    }
)


SCRIPT_FAILURES = frozenset({"script_failure"})


@dataclass(frozen=True, slots=True)
class BuildReliability:
    """Image-build job attempts per pipeline. Rates are % of ``n`` (pipelines with a finished first attempt)."""

    job_name: str
    n: int
    first_attempt_successes: int
    eventual_successes: int
    attempts: int
    failures_infrastructure: int
    failures_script: int
    failures_other: int

    @property
    def first_attempt_rate(self) -> float | None:
        return rate(self.first_attempt_successes, self.n)

    @property
    def eventual_rate(self) -> float | None:
        return rate(self.eventual_successes, self.n)


def failure_kind(reason: str | None) -> Literal["infrastructure", "script", "other"]:
    if reason in SCRIPT_FAILURES:
        return "script"
    if reason in INFRASTRUCTURE_FAILURES:
        return "infrastructure"
    return "other"


def image_build_reliability(ds: Dataset, job_name: str) -> BuildReliability:
    """First-attempt and eventual success of ``job_name`` per pipeline; failed attempts split by reason."""
    by_pipeline: dict[int, list[Job]] = defaultdict(list)
    for j in [j for j in ds.jobs if j.name == job_name]:  # (one job in eight or so: found without a loop step each)
        by_pipeline[j.pipeline_id].append(j)
    n = first_ok = eventual = attempts = infra = script = other = 0
    for jobs in by_pipeline.values():
        if len(jobs) > 1:  # most pipelines run it once
            jobs.sort(key=lambda j: (j.created_at, j.id))
        if jobs[0].status not in FINISHED_STATUSES:
            continue
        n += 1
        first_ok += jobs[0].status == "success"
        eventual += any(j.status == "success" for j in jobs)
        for j in jobs:
            if j.status not in FINISHED_STATUSES:
                continue
            attempts += 1
            if j.status == "failed":
                kind = failure_kind(j.failure_reason)
                infra += kind == "infrastructure"
                script += kind == "script"
                other += kind == "other"
    return BuildReliability(job_name, n, first_ok, eventual, attempts, infra, script, other)


@dataclass(frozen=True, slots=True)
class JobOutcomes:
    job_name: str
    n: int
    successes: int
    latest_status: str | None
    latest_job_id: int | None

    @property
    def success_rate(self) -> float | None:
        return rate(self.successes, self.n)


def job_outcomes(ds: Dataset, job_name: str, *, include_retried: bool = False) -> JobOutcomes:
    """Finished runs (success/failed) of one job name, and the latest one."""
    runs = sorted(
        (
            j
            for j in ds.jobs
            if j.name == job_name and j.status in FINISHED_STATUSES and (include_retried or not j.retried)
        ),
        key=lambda j: (j.finished_at or j.created_at, j.id),
    )
    latest = runs[-1] if runs else None
    return JobOutcomes(
        job_name,
        len(runs),
        sum(j.status == "success" for j in runs),
        latest.status if latest else None,
        latest.id if latest else None,
    )
