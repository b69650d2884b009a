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
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cidash.config import Config
from cidash.errors import ActionRefused, CidashError, NotFound
from cidash.models import Project, RateLimitState
from cidash.store import Store

Clock = Callable[[], datetime]
Progress = Callable[[str], None]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh did: a one-line summary and the API rate-limit state seen last (if any)."""

    summary: str
    rate_limit: RateLimitState | None = None


class Refresher(Protocol):
    def __call__(self, project: Project | None, progress: Progress) -> RefreshResult: ...


def sync_refresher(client_factory: Callable[[], Any], store: Store, config: Config, clock: Clock) -> Refresher:
    """A refresher over :func:`cidash.sync.sync_project` (the current project) or :func:`cidash.sync.sync_projects`
    (every configured project, when none is in the store yet)."""

    def refresh(project: Project | None, progress: Progress) -> RefreshResult:
        from cidash.sync import SyncOptions, SyncProgress, sync_project, sync_projects

        def on_progress(p: SyncProgress) -> None:
            if p.phase == "logs" and p.logs_total:
                progress(f"sync {p.phase} {p.logs_done}/{p.logs_total}")
            else:
                progress(f"sync {p.phase}")

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
        return RefreshResult("; ".join(r.summary() for r in reports), reports[-1].rate_limit)

    return refresh


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

    def follow(self, outcome: ActionOutcome) -> Sequence[str]: ...


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


def core_actions(client_factory: Callable[[], Any] | None, store: Store, config: Config) -> Actions:
    """The actions layer (``cidash.actions``) behind the :class:`Actions` protocol, or :class:`UnavailableActions`."""
    if config.actions.read_only:
        return UnavailableActions("read-only mode ([actions] read_only = true)")
    if client_factory is None:
        return UnavailableActions("no GitLab connection")
    try:
        mod = importlib.import_module("cidash.actions")
    except ImportError:
        return UnavailableActions("this build has no actions layer")
    factory = getattr(mod, "tui_actions", None)
    if factory is None:
        return UnavailableActions("the actions layer offers no dashboard adapter yet")
    try:
        actions: Actions = factory(client_factory, store, config)
    except CidashError as exc:
        return UnavailableActions(exc.one_line())
    return actions
