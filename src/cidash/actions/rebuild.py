"""Plans for the CI-image rebuild and for retrying a job (read-only GitLab calls; nothing is changed here)."""

from __future__ import annotations

from collections.abc import Sequence

from cidash.actions.base import (
    ACTIVE_STATUSES,
    RETRYABLE_STATUSES,
    ActionRemote,
    CancelPlan,
    HttpCall,
    RebuildPlan,
    RetryPlan,
    api_path,
    shown_variables,
)
from cidash.errors import UsageError
from cidash.models import Job, Project

DEFAULT_BUILD_JOB = "build-ci-image"
DEFAULT_REBUILD_VARIABLES: tuple[tuple[str, str], ...] = (("FORCE_CI_IMAGE_REBUILD", "true"),)


def _url(job: Job) -> str:
    return job.web_url or f"job {job.id}"


def plan_rebuild(
    remote: ActionRemote,
    project: Project,
    *,
    ref: str | None = None,
    variables: Sequence[tuple[str, str]] = DEFAULT_REBUILD_VARIABLES,
    play_variables: Sequence[tuple[str, str]] = (),
    build_job: str = DEFAULT_BUILD_JOB,
    force: bool = False,
    show_values: bool = False,
) -> RebuildPlan:
    """Plan a CI-image rebuild on ``ref`` (default: the project's default branch).

    - If the latest pipeline on the ref has a **manual** ``build_job``, play it (``POST .../jobs/:id/play``, with
      ``play_variables`` as job variables when given: the user's explicit ``--var`` values).
    - Otherwise create a pipeline on the ref with ``variables`` (``POST .../pipeline``).
    - Variable values are redacted (``K=***``) in the plan's effect and printed calls unless ``show_values``;
      the audit keeps variable names only, whatever ``show_values`` says.
    - Duplicate/race guard: when a ``build_job`` for that ref is already created/pending/running/waiting for its
      resource group, the plan is refused (naming that job's URL) unless ``force``.

    Read-only: ``GET /projects/:id/jobs?scope[]=...`` (one page: active jobs are few),
    ``GET /projects/:id/pipelines?ref=R&per_page=1`` and ``GET .../pipelines/:id/jobs``.
    """
    ref = ref or project.default_branch
    if not ref:
        raise UsageError(f"{project.path} has no default branch: name the ref with --ref")
    active = sorted(
        (j for j in remote.active_jobs(project.id, build_job) if j.ref == ref and j.status in ACTIVE_STATUSES),
        key=lambda j: j.id,
    )
    latest = remote.latest_pipeline(project.id, ref)
    if latest is None and remote.ref_head(project.id, ref) is None:
        raise UsageError(f"ref {ref!r} does not exist in {project.path}", hint="name a branch or tag with --ref")
    build: Job | None = None
    if latest is not None:
        candidates = [j for j in remote.pipeline_jobs(project.id, latest.id) if j.name == build_job and not j.retried]
        build = max(candidates, key=lambda j: j.id) if candidates else None

    warnings: list[str] = []
    base = f"/projects/{project.id}"
    if build is not None and build.status == "manual":
        body = (
            {"job_variables_attributes": [{"key": k, "value": v} for k, v in play_variables]}
            if play_variables
            else None
        )
        call = HttpCall("POST", api_path(f"{base}/jobs/{build.id}/play"), body)
        assert latest is not None
        effect = f"play the manual job {build_job} #{build.id} of pipeline #{latest.id} (the latest on {ref})"
        if play_variables:
            effect += " with " + shown_variables(play_variables, show_values=show_values)
        kind = "play"
        used_vars = tuple(play_variables)
        target_job: Job | None = build
    else:
        body_vars = [{"key": k, "value": v, "variable_type": "env_var"} for k, v in variables]
        call = HttpCall("POST", api_path(f"{base}/pipeline"), {"ref": ref, "variables": body_vars})
        effect = f"create a new pipeline on {ref}"
        effect += " with " + shown_variables(variables, show_values=show_values) if variables else " (no variables)"
        kind = "create_pipeline"
        used_vars = tuple(variables)
        target_job = None
        if latest is None:
            warnings.append(f"no pipeline on {ref} yet")
        elif build is None:
            warnings.append(
                f"the latest pipeline #{latest.id} on {ref} has no {build_job} job: the CI file's rules decide "
                "whether the new pipeline gets one"
            )
        elif build.status == "failed":
            warnings.append(
                f"the latest {build_job} (job {build.id}) failed: 'cidash retry {build.id}' re-runs that job instead "
                "of a whole pipeline"
            )
        if play_variables and build is not None:
            warnings.append(f"{build_job} is not manual ({build.status}): the --var values go to the new pipeline")
    refusal: str | None = None
    blocking = active[-1] if active else None
    if blocking is not None:
        what = f"{build_job} job {blocking.id} is already {blocking.status} on {ref}: {_url(blocking)}"
        if force:
            warnings.append(f"--force: {what}; triggering another build anyway (the two may race)")
        else:
            refusal = what
    return RebuildPlan(
        action="rebuild",
        kind=kind,  # type: ignore[arg-type]
        project=project,
        ref=ref,
        effect=effect,
        calls=(call,),
        target=f"ref {ref}",
        warnings=tuple(warnings),
        refusal=refusal,
        job=target_job,
        pipeline=latest,
        variables=used_vars,
        build_job=build_job,
        blocking=blocking,
        forced=force and blocking is not None,
        show_values=show_values,
    )


def plan_retry(remote: ActionRemote, project: Project, job_id: int) -> RetryPlan:
    """Plan ``POST /projects/:id/jobs/:job_id/retry`` after reading the job (``GET .../jobs/:job_id``).

    Refused locally (GitLab would refuse too) when the job is still on its way, manual, or already retried.
    """
    job = remote.job(project.id, job_id)
    call = HttpCall("POST", api_path(f"/projects/{project.id}/jobs/{job.id}/retry"))
    refusal: str | None = None
    warnings: list[str] = []
    if job.status in ACTIVE_STATUSES:
        refusal = f"job {job.id} ({job.name}) is still {job.status}: nothing to retry yet"
    elif job.status == "manual":
        refusal = f"job {job.id} ({job.name}) is manual and has not run: play it instead (cidash rebuild)"
    elif job.retried or (newer := _newer_attempt(remote, project, job)) is not None:
        newer_id = "" if job.retried else f" (job {newer})"
        refusal = (
            f"job {job.id} ({job.name}) was already retried: pipeline #{job.pipeline_id} has a newer attempt{newer_id}"
        )
    elif job.status not in RETRYABLE_STATUSES:
        refusal = f"job {job.id} ({job.name}) has status {job.status}: GitLab cannot retry it"
    if job.status == "success" and refusal is None:
        warnings.append(f"job {job.id} succeeded: the retry runs it again")
    effect = f"retry job {job.id} ({job.name}, {job.status}) of pipeline #{job.pipeline_id}: a new attempt"
    return RetryPlan(
        action="retry",
        kind="retry",
        project=project,
        ref=job.ref or None,
        effect=effect,
        calls=(call,),
        target=f"job {job.id}",
        warnings=tuple(warnings),
        refusal=refusal,
        job=job,
    )


def _newer_attempt(remote: ActionRemote, project: Project, job: Job) -> int | None:
    """The id of a later attempt of ``job`` in its pipeline, if any.

    GitLab's single-job JSON does not say whether a job was retried, but the pipeline's job listing (without
    ``include_retried``) shows only the latest attempt of each name: a same-name job with a higher id there
    means ``job`` is an old attempt, which GitLab would refuse to retry (403 "Job is not retryable").
    """
    if job.status in ACTIVE_STATUSES or job.status == "manual":
        return None
    newer = [j.id for j in remote.pipeline_jobs(project.id, job.pipeline_id) if j.name == job.name and j.id > job.id]
    return max(newer) if newer else None


def plan_cancel(remote: ActionRemote, project: Project, job_id: int) -> CancelPlan:
    """Plan ``POST /projects/:id/jobs/:job_id/cancel`` (for the dashboard; refused unless the job is on its way)."""
    job = remote.job(project.id, job_id)
    call = HttpCall("POST", api_path(f"/projects/{project.id}/jobs/{job.id}/cancel"))
    refusal = None
    if job.status not in ACTIVE_STATUSES:
        refusal = f"job {job.id} ({job.name}) is {job.status}: nothing to cancel"
    return CancelPlan(
        action="cancel",
        kind="cancel",
        project=project,
        ref=job.ref or None,
        effect=f"cancel job {job.id} ({job.name}, {job.status}) of pipeline #{job.pipeline_id}",
        calls=(call,),
        target=f"job {job.id}",
        refusal=refusal,
        job=job,
    )
