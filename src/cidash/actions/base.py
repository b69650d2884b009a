"""What every mutating action shares: the plan you can show, its execution, the audit row, the follow loop.

An action is two steps so a CLI prompt or a TUI modal can sit between them:

1. a **plan** (:class:`ActionPlan`, built by ``plan_rebuild`` / ``plan_retry`` with read-only GitLab calls): the
   project, the ref, the effect in words, the exact HTTP calls it would make, warnings, and a ``refusal`` when a
   guard says no (a duplicate image build, a job that cannot be retried);
2. :func:`execute`: refuses (read-only mode, a refused plan), records a dry run, or sends exactly the planned
   calls; every outcome writes one :class:`cidash.models.AuditRecord` (never a token) before returning or raising.

Then :func:`follow` polls the triggered job (bounded, with back-off) until it starts.

Everything GitLab-specific goes through :class:`ActionRemote`; :class:`cidash.remote.mutations.ActionsRemote` is
the implementation over the sync's HTTP client. Errors come back in words (:func:`explain_error`).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, Protocol

from cidash.errors import (
    ActionHttpError,
    ActionRefused,
    AuthError,
    CidashError,
    NotFound,
    PermissionDenied,
    RateLimited,
    RemoteError,
    UsageError,
    redact,
)
from cidash.models import (
    ACTIVE_STATUSES,
    API_PREFIX,
    REDACTED,
    RETRYABLE_STATUSES,
    STARTED_STATUSES,
    VARIABLE_FIELDS,
    AuditRecord,
    FileChecksum,
    HttpCall,
    Job,
    Pipeline,
    Project,
    shown_variables,
)

# The vocabulary (requests, statuses) lives in cidash.models, ActionHttpError in cidash.errors; re-exported here.
__all__ = [
    "ACTIVE_STATUSES",
    "API_PREFIX",
    "REDACTED",
    "RETRYABLE_STATUSES",
    "STARTED_STATUSES",
    "VARIABLE_FIELDS",
    "ActionHttpError",
    "HttpCall",
    "shown_variables",
]

ActionKind = Literal["play", "create_pipeline", "retry", "cancel"]


# ---------------------------------------------------------------------------------------------------------------
# Plans and results
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionPlan:
    """A mutating action, ready to show and to execute. ``refusal`` set: a guard says it must not run."""

    action: str  # "rebuild" | "retry"
    kind: ActionKind
    project: Project
    ref: str | None
    effect: str
    calls: tuple[HttpCall, ...]
    target: str  # for the audit: "ref main", "job 1234"
    warnings: tuple[str, ...] = ()
    refusal: str | None = None
    job: Job | None = None  # the job played / retried
    pipeline: Pipeline | None = None  # the latest pipeline considered
    variables: tuple[tuple[str, str], ...] = ()
    show_values: bool = False  # print variable values (``--show-values``); redacted otherwise

    @property
    def refused(self) -> bool:
        return self.refusal is not None

    def question(self) -> str:
        """The confirmation question, naming project, ref and effect."""
        where = f" on ref {self.ref}" if self.ref else ""
        return f"{self.action} in {self.project.path}{where}: {self.effect}. Proceed?"

    def shown_calls(self) -> list[str]:
        """The calls as printed: variable values redacted unless ``show_values``."""
        return [str(call if self.show_values else call.redacted()) for call in self.calls]

    def lines(self) -> list[str]:
        """Human-readable description, one fact per line (the CLI prints these; the TUI modal can too)."""
        out = [f"project  {self.project.path} (id {self.project.id})"]
        if self.ref:
            out.append(f"ref      {self.ref}")
        out.append(f"effect   {self.effect}")
        out.extend(f"request  {call}" for call in self.shown_calls())
        out.extend(f"warning  {w}" for w in self.warnings)
        if self.refusal:
            out.append(f"refused  {self.refusal}")
        return out


@dataclass(frozen=True)
class RebuildPlan(ActionPlan):
    """``plan_rebuild``'s plan: play the manual image-build job, or create a pipeline with the rebuild variables."""

    build_job: str = "build-ci-image"
    blocking: Job | None = None  # the image build already on its way (the duplicate guard)
    forced: bool = False


@dataclass(frozen=True)
class RetryPlan(ActionPlan):
    """``plan_retry``'s plan: a new attempt of one job."""


@dataclass(frozen=True)
class CancelPlan(ActionPlan):
    """``plan_cancel``'s plan: cancel one job that is on its way (for the dashboard)."""


@dataclass(frozen=True)
class ActionResult:
    """What :func:`execute` did. ``job`` is the job to follow (played, new attempt, or the new pipeline's build)."""

    plan: ActionPlan
    status: Literal["ok", "dry_run"]
    message: str
    audit: AuditRecord
    job: Job | None = None
    pipeline: Pipeline | None = None

    @property
    def dry_run(self) -> bool:
        return self.status == "dry_run"


@dataclass(frozen=True)
class FollowUpdate:
    """One observation while following a job: each status change, then a final one (started or timed out)."""

    job: Job
    elapsed: float
    started: bool
    timed_out: bool = False
    final: bool = False


# ---------------------------------------------------------------------------------------------------------------
# What actions need from GitLab and from the store
# ---------------------------------------------------------------------------------------------------------------


class ActionRemote(Protocol):
    """The GitLab calls actions make. Reads return cidash models; :meth:`send` performs one planned call."""

    def project(self, ident: str | int) -> Project: ...

    def username(self) -> str | None: ...

    def latest_pipeline(self, project_id: int, ref: str) -> Pipeline | None: ...

    def pipeline_jobs(self, project_id: int, pipeline_id: int) -> list[Job]: ...

    def active_jobs(self, project_id: int, name: str) -> list[Job]: ...

    def job(self, project_id: int, job_id: int) -> Job: ...

    def send(self, call: HttpCall) -> Job | Pipeline: ...

    def ref_head(self, project_id: int, ref: str) -> str | None: ...

    def file_head(self, project_id: int, path: str, ref: str) -> FileChecksum | None: ...

    def file_raw(self, project_id: int, path: str, ref: str) -> bytes | None: ...


class AuditSink(Protocol):
    """Where audit rows go (:class:`cidash.store.Store` is one)."""

    def add_audit(self, record: AuditRecord) -> None: ...


# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------

_VAR_KEY = re.compile(r"[A-Za-z0-9_]{1,255}")


def parse_variable(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (from ``--var``) -> (key, value). GitLab keys: letters, digits and ``_``, at most 255."""
    key, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"--var {text!r}: expected KEY=VALUE")
    key = key.strip()
    if not _VAR_KEY.fullmatch(key):
        raise UsageError(f"--var {text!r}: a variable key may only contain letters, digits and '_' (at most 255)")
    if "\n" in value or "\0" in value:
        raise UsageError(f"--var {key}: the value must be one line")
    return key, value


def merge_variables(base: Sequence[tuple[str, str]], extra: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """``base`` with ``extra`` added; a key given in ``extra`` replaces the same key in ``base`` (in place)."""
    merged: dict[str, str] = dict(base)
    merged.update(dict(extra))
    return tuple(merged.items())


def local_actor() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = os.environ.get("USER") or os.environ.get("USERNAME") or "unknown"
    return f"{name} (local user)"


def resolve_actor(remote: ActionRemote) -> str:
    """The GitLab username behind the token (``GET /user``), else the local user name."""
    try:
        name = remote.username()
    except CidashError:
        name = None
    return name or local_actor()


def api_path(path: str) -> str:
    return f"{API_PREFIX}{path}"


def _audit(
    sink: AuditSink | None,
    *,
    now: datetime,
    actor: str,
    project: str,
    action: str,
    target: str,
    request: str,
    result: str,
    dry_run: bool = False,
    extra: Mapping[str, str] | None = None,
) -> AuditRecord:
    record = AuditRecord(
        at=now,
        actor=actor,
        project=project,
        action=action,
        target=target,
        request=redact(request),
        result=redact(" ".join(result.split()))[:500],
        dry_run=dry_run,
        extra=dict(extra or {}),
    )
    if sink is not None:
        sink.add_audit(record)
    return record


def _plan_extra(plan: ActionPlan) -> dict[str, str]:
    extra: dict[str, str] = {"kind": plan.kind}
    if plan.variables:
        extra["variables"] = ",".join(k for k, _ in plan.variables)  # names only: values may be secrets
    if plan.job is not None:
        extra["job"] = str(plan.job.id)
    if isinstance(plan, RebuildPlan) and plan.forced:
        extra["forced"] = "true"
    return extra


def refuse(
    sink: AuditSink | None,
    *,
    now: datetime,
    actor: str,
    project: str,
    action: str,
    target: str,
    reason: str,
    request: str = "",
    hint: str | None = None,
    dry_run: bool = False,
) -> ActionRefused:
    """Record a refused action and return the :class:`ActionRefused` to raise."""
    _audit(
        sink,
        now=now,
        actor=actor,
        project=project,
        action=action,
        target=target,
        request=request,
        result=f"refused: {reason}",
        dry_run=dry_run,
    )
    return ActionRefused(reason, hint=hint)


def read_only_refusal(action: str, project: str, *, source: str = "--read-only") -> tuple[str, str]:
    """(reason, hint) for read-only mode."""
    return (
        f"read-only mode: cidash refuses to {action} in {project}; nothing was sent",
        f"read-only set by {source}; drop it to allow actions",
    )


def record_declined(
    plan: ActionPlan, sink: AuditSink | None, *, actor: str, now: datetime, reason: str = "answered no at the prompt"
) -> AuditRecord:
    """Record that the user did not confirm (nothing was sent)."""
    return _audit(
        sink,
        now=now,
        actor=actor,
        project=plan.project.path,
        action=plan.action,
        target=plan.target,
        request="; ".join(c.line for c in plan.calls),
        result=f"declined: {reason}",
        extra=_plan_extra(plan),
    )


# ---------------------------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------------------------


def execute(
    plan: ActionPlan,
    remote: ActionRemote,
    audit: AuditSink | None,
    *,
    actor: str,
    now: datetime,
    dry_run: bool = False,
    read_only: bool = False,
    read_only_source: str = "--read-only",
) -> ActionResult:
    """Run a confirmed plan (or record its dry run). Always writes one audit row; raises after writing it.

    Raises :class:`ActionRefused` in read-only mode (unless ``dry_run``) or when the plan is refused, and a
    :class:`CidashError` in words (see :func:`explain_error`) when GitLab says no.
    """
    request = "; ".join(c.line for c in plan.calls)
    extra = _plan_extra(plan)
    common: dict[str, Any] = {
        "now": now,
        "actor": actor,
        "project": plan.project.path,
        "action": plan.action,
        "target": plan.target,
    }
    if plan.refusal is not None:
        raise refuse(
            audit,
            **common,
            reason=plan.refusal,
            request=request,
            dry_run=dry_run,
            hint="use --force to trigger it anyway" if isinstance(plan, RebuildPlan) and plan.blocking else None,
        )
    if dry_run:
        record = _audit(audit, **common, request=request, result="dry-run: nothing sent", dry_run=True, extra=extra)
        return ActionResult(plan=plan, status="dry_run", message="dry run: nothing was sent", audit=record)
    if read_only:
        reason, hint = read_only_refusal(plan.action, plan.project.path, source=read_only_source)
        raise refuse(audit, **common, reason=reason, request=request, hint=hint)

    job: Job | None = None
    pipeline: Pipeline | None = None
    try:
        for call in plan.calls:
            answer = remote.send(call)
            if isinstance(answer, Pipeline):
                pipeline = answer
            else:
                job = answer
        if pipeline is not None and job is None and isinstance(plan, RebuildPlan):
            job = _build_job_of(remote, plan, pipeline)
    except RemoteError as exc:
        if exc.status in (400, 403) and plan.job is not None:
            # the job moved on since the plan (played or retried by someone else): name its status now
            with contextlib.suppress(CidashError):
                plan = replace(plan, job=remote.job(plan.project.id, plan.job.id))
        error = explain_error(exc, plan)
        _audit(audit, **common, request=request, result=f"error: {error.one_line()}", extra=extra)
        raise error from None
    message = _success_message(plan, job, pipeline)
    record = _audit(audit, **common, request=request, result=f"ok: {message}", extra=extra)
    return ActionResult(plan=plan, status="ok", message=message, audit=record, job=job, pipeline=pipeline)


def _build_job_of(remote: ActionRemote, plan: RebuildPlan, pipeline: Pipeline) -> Job | None:
    jobs = [j for j in remote.pipeline_jobs(plan.project.id, pipeline.id) if j.name == plan.build_job]
    return max(jobs, key=lambda j: j.id) if jobs else None


def _success_message(plan: ActionPlan, job: Job | None, pipeline: Pipeline | None) -> str:
    if plan.kind == "create_pipeline":
        assert isinstance(plan, RebuildPlan)
        text = f"pipeline {pipeline.id if pipeline else '?'} created on {plan.ref}"
        if job is not None:
            text += f"; {job.name} job {job.id} {job.status}"
        else:
            text += f"; it has no {plan.build_job} job (the CI file's rules did not add one)"
        return text
    if plan.kind == "play":
        return f"job {job.id if job else '?'} ({job.name if job else ''}) played: {job.status if job else '?'}"
    if plan.kind == "cancel":
        return f"job {job.id if job else '?'} canceled: {job.status if job else '?'}"
    return (
        f"job {plan.job.id if plan.job else '?'} retried: new job {job.id if job else '?'} {job.status if job else ''}"
    )


def explain_error(exc: RemoteError, plan: ActionPlan) -> CidashError:
    """A GitLab error on a mutating call, in words a user can act on."""
    status = exc.status
    server = exc.server_message if isinstance(exc, ActionHttpError) else ""
    call = exc.call.line if isinstance(exc, ActionHttpError) else ""
    project = plan.project.path
    job = plan.job
    if isinstance(exc, AuthError) and exc.message.startswith("no GitLab token"):
        return exc  # nothing was rejected: no token is configured (see remote.policy.error_for_status)
    if status == 401 or isinstance(exc, AuthError):
        return AuthError(
            f"GitLab rejected the token (401) on {call or plan.action}", status=401, hint="check the token"
        )
    if status == 403:
        if plan.kind == "retry" and "retryable" in server.lower():
            state = job.status if job else "unknown"
            return RemoteError(
                f"job {job.id if job else '?'} cannot be retried (status {state}; GitLab: {server})", status=403
            )
        return PermissionDenied(
            f"your token lacks the api scope or the Developer role on {project}",
            status=403,
            hint=f"GitLab answered 403 to {call}" if call else None,
        )
    if status == 400 and plan.kind == "play":
        state = job.status if job else "unknown"
        return RemoteError(f"job {job.id if job else '?'} is not manual (status {state}): nothing to play", status=400)
    if status == 400 and plan.kind == "create_pipeline":
        return RemoteError(f"GitLab refused to create a pipeline on {plan.ref} in {project}: {server or 'bad request'}")
    if status in (409, 423):
        return RemoteError(
            f"GitLab answered {status} ({'conflict' if status == 409 else 'locked'}) on {call}: another change to "
            f"this {'pipeline' if plan.kind == 'create_pipeline' else 'job'} is in progress in {project}; "
            "nothing was changed, try again in a moment",
            status=status,
        )
    if status == 404:
        what = f"job {job.id}" if job else f"ref {plan.ref}"
        return NotFound(f"{what} not found in {project} (404 on {call})", status=404, hint="or the token cannot see it")
    if status == 429 or isinstance(exc, RateLimited):
        after = exc.retry_after if isinstance(exc, RateLimited) else None
        wait = f"; try again in {after:.0f} s" if after else "; try again in a minute"
        return RateLimited(
            f"GitLab kept rate-limiting {call or plan.action} (429) after the allowed retries; "
            f"nothing was changed{wait}",
            retry_after=after,
        )
    if status is not None and status >= 500:
        return RemoteError(
            f"GitLab server error {status} on {call}: the request may or may not have taken effect",
            status=status,
            hint="look at the project's pipelines before trying again",
        )
    return exc


# ---------------------------------------------------------------------------------------------------------------
# Following a job until it starts
# ---------------------------------------------------------------------------------------------------------------


def follow(
    remote: ActionRemote,
    project_id: int,
    job_id: int,
    *,
    timeout: float = 120.0,
    first_delay: float = 1.0,
    max_delay: float = 10.0,
    factor: float = 1.6,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    initial: Job | None = None,
) -> Iterator[FollowUpdate]:
    """Poll ``GET .../jobs/:id`` with back-off until the job starts (running or finished) or ``timeout`` passes.

    Yields the first observation, every status change, and a ``final`` update (``started`` or ``timed_out``).
    Makes at most about ``log(timeout)`` requests; never sleeps past the timeout.
    """
    start = clock()
    job = initial if initial is not None else remote.job(project_id, job_id)
    last = job.status
    started = job.status in STARTED_STATUSES
    yield FollowUpdate(job=job, elapsed=0.0, started=started, final=started)
    if started:
        return
    delay = first_delay
    while True:
        elapsed = clock() - start
        remaining = timeout - elapsed
        if remaining <= 0:
            yield FollowUpdate(job=job, elapsed=elapsed, started=False, timed_out=True, final=True)
            return
        sleep(min(delay, remaining))
        delay = min(delay * factor, max_delay)
        job = remote.job(project_id, job_id)
        elapsed = clock() - start
        started = job.status in STARTED_STATUSES
        if started:
            yield FollowUpdate(job=job, elapsed=elapsed, started=True, final=True)
            return
        if job.status != last:
            last = job.status
            yield FollowUpdate(job=job, elapsed=elapsed, started=False)
