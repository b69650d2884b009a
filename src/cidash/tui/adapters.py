"""What the App is given instead of reaching for globals (harlequin-style adapters; no Textual here).

- a :class:`~cidash.store.Store` and a :class:`~cidash.config.Config`;
- ``clock``: a callable returning an aware ``datetime`` (tests freeze it);
- ``client_factory``: a callable returning a connected GitLab client (the simulator's in tests and ``cidash demo``);
- a :class:`Refresher` (pull new data into the store; default: :func:`sync_refresher` over ``cidash.sync``);
- an :class:`Actions` (plan -> execute for rebuild / retry / key recompute; default: :func:`core_actions`).

Every failure these raise is a :class:`cidash.errors.CidashError`; the App turns each into one titled
notification (``notify(title=exc.title, severity="error")``).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cidash.config import Config
from cidash.errors import ActionRefused, NotFound
from cidash.models import Project, RateLimitState
from cidash.store import Store

if TYPE_CHECKING:
    from cidash.sync import SyncProgress, SyncReport

Clock = Callable[[], datetime]
Progress = Callable[[str], None]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh did: a one-line summary and the API rate-limit state seen last (if any)."""

    summary: str
    rate_limit: RateLimitState | None = None
    changed: bool = True  # False: nothing new in the store, the screens need no recomputation


class Refresher(Protocol):
    def __call__(self, project: Project | None, progress: Progress) -> RefreshResult: ...


class ProgressLine:
    """The dashboard's one-line sync status. One project: its phase (``sync logs 40/120``). Several projects
    syncing at once (a group's first refresh): every project's share, not whichever reported last
    (``sync 3/8 projects · logs 40/120``). Progress arrives on the sync's worker threads, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, SyncProgress] = {}

    def update(self, p: SyncProgress) -> str:
        with self._lock:
            self._latest[p.project] = p
            states = list(self._latest.values())
        if len(states) == 1 and p.projects <= 1:
            if p.phase == "logs" and p.logs_total:
                return f"sync {p.phase} {p.logs_done}/{p.logs_total}"
            return f"sync {p.phase}"
        done = sum(s.phase == "done" for s in states)
        logs_total = sum(s.logs_total for s in states)
        logs = f" · logs {sum(s.logs_done for s in states)}/{logs_total}" if logs_total else ""
        total = max(len(states), *(s.projects for s in states))
        return f"sync {done}/{total} projects{logs}"


def sync_refresher(client_factory: Callable[[], Any], store: Store, config: Config, clock: Clock) -> Refresher:
    """A refresher over :func:`cidash.sync.sync_project` (the current project) or :func:`cidash.sync.sync_projects`
    (every configured project, when none is in the store yet)."""

    def refresh(project: Project | None, progress: Progress) -> RefreshResult:
        from cidash.sync import SyncOptions, sync_project, sync_projects

        line = ProgressLine()

        def on_progress(p: SyncProgress) -> None:
            progress(line.update(p))

        now = clock()
        options = SyncOptions.from_config(config, now=now)
        client = client_factory()
        try:
            options = dataclasses.replace(options, concurrency=client.connection.concurrency)
            if project is not None:
                reports = [sync_project(client, store, project, options=options, progress=on_progress, now=now)]
            else:
                reports = sync_projects(
                    client,
                    store,
                    projects=client.connection.projects,
                    group=client.connection.group,
                    options=options,
                    progress=on_progress,
                    now=now,
                )
        finally:
            client.close()
        if not reports:
            return RefreshResult("nothing to sync")
        changed = any(sync_changed(r) for r in reports)
        return RefreshResult("; ".join(r.summary() for r in reports), reports[-1].rate_limit, changed)

    return refresh


def sync_changed(report: SyncReport) -> bool:
    """Whether a project's sync wrote anything the screens show (else the Health on screen is still the store's)."""
    r = report
    return bool(r.pipelines or r.jobs or r.logs or r.checksums or r.image_tags or r.ci_configs)


def log_fetcher(client_factory: Callable[[], Any]) -> Callable[[int, int], bytes]:
    """Fetch one job's log text (streamed, capped at 8 MiB) through the client's httpx side."""

    def fetch(project_id: int, job_id: int) -> bytes:
        chunks: list[bytes] = []
        size = 0

        def sink_factory() -> Callable[[bytes], None]:
            chunks.clear()

            def sink(data: bytes) -> None:
                nonlocal size
                if size < 8 << 20:
                    chunks.append(data)
                    size += len(data)

            return sink

        client = client_factory()
        try:
            found = client.http.stream_trace(project_id, job_id, sink_factory)
        finally:
            client.close()
        if not found:
            raise NotFound(f"GitLab has no log for job {job_id} (erased or expired)")
        return b"".join(chunks)

    return fetch


# ---------------------------------------------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionPlan:
    """What an action will do, shown in the confirmation modal before anything is sent."""

    kind: str  # rebuild | retry | keys
    title: str
    lines: tuple[str, ...]  # project, ref, job, effect ...
    dry_run: str  # the exact call, e.g. "POST /api/v4/projects/42/pipeline ref=main variables=..."
    payload: Any = None  # what :meth:`Actions.execute` needs (the core plan object)
    diff: tuple[str, ...] = ()  # keys: per-file changes


@dataclass(frozen=True)
class ActionOutcome:
    summary: str
    job_id: int | None = None
    pipeline_id: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


class Actions(Protocol):
    """Guarded mutations. ``disabled_reason`` is not None in read-only mode (the UI shows it)."""

    disabled_reason: str | None

    def plan(self, kind: str, project: Project, *, job_id: int | None = None) -> ActionPlan: ...

    def execute(self, plan: ActionPlan) -> ActionOutcome: ...

    def follow(self, outcome: ActionOutcome) -> Iterator[str] | Sequence[str]: ...

    def decline(self, plan: ActionPlan) -> None: ...


class UnavailableActions:
    """Actions when none can run: every plan raises :class:`ActionRefused` with the reason."""

    def __init__(self, reason: str) -> None:
        self.disabled_reason: str | None = reason

    def plan(self, kind: str, project: Project, *, job_id: int | None = None) -> ActionPlan:
        raise ActionRefused(f"{kind} is disabled: {self.disabled_reason}")

    def execute(self, plan: ActionPlan) -> ActionOutcome:
        raise ActionRefused(f"{plan.kind} is disabled: {self.disabled_reason}")

    def follow(self, outcome: ActionOutcome) -> Sequence[str]:
        return ()

    def decline(self, plan: ActionPlan) -> None:
        return None


def core_actions(
    client_factory: Callable[[], Any] | None,
    store: Store,
    config: Config,
    *,
    clock: Clock = system_clock,
    checkout: Path | None = None,
) -> Actions:
    """The actions layer (:mod:`cidash.actions`) behind the :class:`Actions` protocol, or :class:`UnavailableActions`
    with the reason (read-only mode, no connection)."""
    if config.actions.read_only:
        return UnavailableActions("read-only mode ([actions] read_only = true or --read-only)")
    if client_factory is None:
        return UnavailableActions("no GitLab connection")
    return CoreActions(client_factory, store, config, clock=clock, checkout=checkout)


@dataclass
class _Payload:
    core: Any
    actor: str
    project: Project


class CoreActions:
    """Plan -> execute -> follow through :mod:`cidash.actions` (the same functions ``cidash rebuild``/``retry``
    and ``cidash key --write`` use). Each call opens its own client (they run in worker threads)."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        store: Store,
        config: Config,
        *,
        clock: Clock = system_clock,
        checkout: Path | None = None,
        follow_timeout: float = 120.0,
    ) -> None:
        self.client_factory = client_factory
        self.store = store
        self.config = config
        self.clock = clock
        self.checkout = checkout
        self.follow_timeout = follow_timeout
        self.disabled_reason: str | None = None

    def _remote(self) -> Any:
        from cidash.remote.mutations import ActionsRemote
        from cidash.sync.origin import check_store_origin

        client = self.client_factory()
        check_store_origin(self.store, client.connection.url)  # the store's ids name records of its own GitLab only
        return ActionsRemote(client)

    def latest_failed_build(self, project: Project) -> int | None:
        jobs = self.store.jobs(project.id, name=self.config.image.build_job, status="failed", include_retried=False)
        return jobs[-1].id if jobs else None

    def _nothing_to_retry(self, project: Project) -> str:
        """Why ``t`` outside a pipeline has nothing to retry: no failed build at all, or each one was retried."""
        name = self.config.image.build_job
        failed = self.store.jobs(project.id, name=name, status="failed", include_retried=True)
        if failed:
            n = len(failed)
            return (
                f"every failed `{name}` job was already retried ({n} failed attempt{'s' if n != 1 else ''}, "
                f"the latest job {failed[-1].id}): nothing to retry"
            )
        return f"no failed `{name}` job in the store to retry"

    def plan(self, kind: str, project: Project, *, job_id: int | None = None) -> ActionPlan:
        from cidash.actions import plan_key_recompute_local, plan_rebuild, plan_retry, remote_key_status, resolve_actor

        if kind == "keys":
            if self.checkout is None:
                raise ActionRefused("no local checkout to write the cache-key file in")
            kp = plan_key_recompute_local(self.checkout, self.config)
            lines = list(kp.lines())
            remote = self._remote()
            try:
                ref = project.default_branch or "main"
                status = remote_key_status(remote, project, ref, self.config, self.store)
                lines.append(f"GitLab on {ref} @ {(status.sha or '?')[:8]}: {status.verdict}")
                lines.extend(f"  {line}" for line in status.explanation)
                lines.append(f"  key last seen in logs: {status.seen_key or 'none'}")
                actor = resolve_actor(remote)
            finally:
                remote.close()
            if kp.up_to_date:
                raise ActionRefused(f"{kp.relpath} is up to date: nothing to write", hint="; ".join(lines[1:3]))
            return ActionPlan(
                "keys",
                f"Recompute {kp.relpath}",
                tuple(lines),
                f"write {kp.target} ({len(kp.content.splitlines())} lines); nothing is sent to GitLab",
                _Payload(kp, actor, project),
                tuple(kp.diff().splitlines()),
            )
        remote = self._remote()
        try:
            core: Any
            if kind == "rebuild":
                core = plan_rebuild(
                    remote,
                    project,
                    ref=self.config.actions.rebuild_ref,
                    variables=self.config.actions.rebuild_variables,
                    build_job=self.config.image.build_job,
                )
                title = f"Rebuild the CI image of {project.path}"
            elif kind == "retry":
                target = job_id or self.latest_failed_build(project)
                if target is None:
                    raise ActionRefused(self._nothing_to_retry(project))
                core = plan_retry(remote, project, target)
                title = f"Retry job {target} of {project.path}"
            else:
                raise ActionRefused(f"unknown action {kind}")
            actor = resolve_actor(remote)
        finally:
            remote.close()
        if core.refused:
            raise ActionRefused(f"{kind}: {core.refusal}")
        return ActionPlan(
            kind,
            title,
            tuple(line for line in core.lines() if not line.startswith("request")),
            "; ".join(core.shown_calls()),
            _Payload(core, actor, project),
        )

    def execute(self, plan: ActionPlan) -> ActionOutcome:
        from cidash.actions import execute, write_key

        payload: _Payload = plan.payload
        if plan.kind == "keys":
            result = write_key(
                payload.core, self.store, actor=payload.actor, now=self.clock(), project=payload.project.path
            )
            return ActionOutcome(result.message)
        remote = self._remote()
        try:
            done = execute(payload.core, remote, self.store, actor=payload.actor, now=self.clock())
        finally:
            remote.close()
        return ActionOutcome(
            done.message,
            job_id=done.job.id if done.job else None,
            pipeline_id=done.pipeline.id if done.pipeline else None,
            extra={"project_id": str(payload.project.id)},
        )

    def decline(self, plan: ActionPlan) -> None:
        """Record in the audit that the user cancelled (nothing is sent)."""
        from cidash.actions import record_declined

        payload: _Payload = plan.payload
        if plan.kind != "keys":
            record_declined(
                payload.core, self.store, actor=payload.actor, now=self.clock(), reason="cancelled in the dashboard"
            )

    def follow(self, outcome: ActionOutcome) -> Iterator[str]:
        from cidash.actions import follow

        if outcome.job_id is None:
            return
        remote = self._remote()
        try:
            for update in follow(remote, int(outcome.extra["project_id"]), outcome.job_id, timeout=self.follow_timeout):
                job = update.job
                if update.timed_out:
                    yield f"job {job.id} still {job.status} after {update.elapsed:.0f} s"
                else:
                    yield f"job {job.id} {job.status} ({update.elapsed:.0f} s)"
        finally:
            remote.close()
