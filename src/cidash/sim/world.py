"""The simulated GitLab's mutable state: projects, commits, pipelines, jobs, registry, and the clock.

Times are float unix seconds internally (fast, exact to the millisecond they are rounded to) and formatted the
way GitLab does (``2026-11-02T10:15:03.123Z``) only at the HTTP edge.

A job is a *plan*: when it was created, became pending, started and finished, and its final status. Its status
as the API reports it is computed from the plan and the world's clock (:meth:`World.now`), so a pipeline created
through the API moves ``created -> pending -> running -> success`` as simulated time passes (``time_scale`` real
seconds to simulated seconds, or :meth:`World.advance`). Scenario history lies entirely in the past.

Thread safety: the HTTP server calls into the world from many threads; every public method takes ``lock``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cidash.sim.model import Scenario, Truth

FINISHED = frozenset({"success", "failed", "canceled", "skipped"})
JOB_SCOPES = frozenset(
    {"created", "pending", "running", "failed", "success", "canceled", "skipped", "waiting_for_resource", "manual"}
)


def git_blob_id(content: bytes) -> str:
    """The id ``git hash-object`` prints for this content (SHA-1 of ``blob <len>\\0<content>``)."""
    return hashlib.sha1(b"blob %d\x00" % len(content) + content).hexdigest()


@dataclass
class SimCommit:
    sha: str
    parent: str | None
    ref: str
    at: float
    title: str
    author_name: str
    author_email: str
    files: dict[str, bytes]
    last_change: dict[str, str]  # path -> sha of the last commit that changed it (at or before this one)
    changed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SectionPlan:
    name: str
    start: float
    end: float
    header: str


@dataclass(frozen=True, slots=True)
class CachePlan:
    """One cache line group the trace will show. ``outcome`` uses the TraceFacts vocabulary."""

    op: str  # restore | archive
    key: str
    outcome: str  # hit | miss | created | up_to_date | skipped
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class JobFacts:
    """Everything the trace of one job shows; :mod:`cidash.sim.tracegen` renders it."""

    runner_version: str
    runner_revision: str
    runner_name: str
    runner_token: str
    executor: str
    image: str
    image_id: str
    image_digest: str
    pulled: bool
    sections: tuple[SectionPlan, ...]
    cache: tuple[CachePlan, ...]
    script: tuple[tuple[float, str], ...]  # (time, line) printed inside step_script
    success: bool
    checkout_sha: str
    ref: str
    #: the log has per-line timestamps (runner 16.11+ with FF_TIMESTAMPS, 18.7+ by default)
    timestamps: bool = True
    #: the runner takes the step-runner path (FF_CONCRETE), the only one that labels fallback attempts "(fallback)"
    step_runner: bool = False
    #: the runner stopped storing output past this many bytes (a failing test dumped too much): the log ends
    #: inside ``step_script`` with "Job's log exceeded limit"; None: the whole log is kept.
    output_limit: int | None = None

    @property
    def truncated(self) -> bool:
        return self.output_limit is not None

    @property
    def startup_seconds(self) -> float:
        """First section start -> ``step_script`` start, as the per-line timestamps give it (ms precision)."""
        step = next(s for s in self.sections if s.name == "step_script")
        return round(step.start - self.sections[0].start, 3)

    @property
    def marker_startup_seconds(self) -> float:
        """The same from the section markers alone (whole unix seconds, as logs without timestamps give it)."""
        first = int(self.sections[0].start)
        step = next(s for s in self.sections if s.name == "step_script")
        return float(int(step.start) - first)


@dataclass
class SimJob:
    id: int
    project_id: int
    pipeline_id: int
    name: str
    stage: str
    created_at: float
    pending_at: float | None  # None: manual, not played
    started_at: float | None
    finished_at: float | None
    final_status: str  # success | failed | manual | skipped | canceled
    failure_reason: str | None = None
    allow_failure: bool = False
    manual: bool = False
    retried: bool = False
    resource_group: str | None = None
    resource_at: float | None = None  # when the resource group let it through (waiting before)
    runner_id: int | None = None
    facts: JobFacts | None = None
    canceled_at: float | None = None
    user: str = "demo"
    kind: str = ""
    image_tag: str | None = None
    cache_key: str | None = None  # main restore key (after suffix), None: no cache
    writes_cache: bool = False
    stale_restore: bool = False
    played: bool = False
    skipped_at: float | None = None  # when an earlier stage's failure turned this job from created to skipped

    def status_at(self, now: float) -> str:
        if self.canceled_at is not None and now >= self.canceled_at:
            return "canceled"
        if self.pending_at is None:
            if self.final_status == "skipped" and self.skipped_at is not None and now < self.skipped_at:
                return "created"
            return self.final_status
        if now < self.pending_at:
            return "created"
        if self.started_at is None or now < self.started_at:
            if self.resource_at is not None and now < self.resource_at:
                return "waiting_for_resource"
            return "pending"
        if self.finished_at is None or now < self.finished_at:
            return "running"
        return self.final_status


@dataclass
class SimPipeline:
    id: int
    iid: int
    project_id: int
    ref: str
    sha: str
    before_sha: str
    source: str
    created_at: float
    user: str = "demo"
    job_ids: list[int] = field(default_factory=list)
    variables: list[dict[str, str]] = field(default_factory=list)
    design: str = "legacy"  # legacy | migrated
    # (settle time, (status, started, finished, updated)): valid while now >= settle time and no mutation
    settled: tuple[float, tuple[str, float | None, float | None, float]] | None = None


@dataclass
class SimTag:
    """A registry tag as first pushed; ``rebuilds`` are later pushes of the same tag (forced rebuilds)."""

    name: str
    digest: str
    revision: str
    total_size: int
    created_at: float
    flavor: str  # debian | alpine
    rebuilds: list[tuple[float, str, str, int]] = field(default_factory=list)  # (at, digest, revision, size)

    def view(self, t: float) -> SimTag:
        """The tag as the registry shows it at time ``t`` (the newest push at or before ``t``)."""
        current = self
        for at, digest, revision, size in self.rebuilds:
            if at <= t:
                current = SimTag(self.name, digest, revision, size, at, self.flavor)
        return current


class Mutator(Protocol):
    """What the world's mutations need from :class:`cidash.sim.planner.Planner` (which sits above the world)."""

    def retry(self, world: World, project: SimProject, job: SimJob, now: float, user: str) -> SimJob: ...

    def play(self, world: World, project: SimProject, job: SimJob, now: float, user: str) -> SimJob: ...

    def create_pipeline(  # noqa: PLR0917
        self,
        world: World,
        project: SimProject,
        ref: str,
        variables: list[dict[str, str]],
        now: float,
        user: str,
        source: str,
    ) -> SimPipeline: ...


@dataclass
class SimProject:
    id: int
    path: str
    name: str
    description: str
    created_at: float
    default_branch: str = "main"
    protected: tuple[str, ...] = ("main",)
    commits: dict[str, SimCommit] = field(default_factory=dict)
    heads: dict[str, str] = field(default_factory=dict)  # branch -> sha
    pipelines: dict[int, SimPipeline] = field(default_factory=dict)
    jobs: dict[int, SimJob] = field(default_factory=dict)
    registry_repo_id: int | None = None
    registry_created_at: float = 0.0
    tags: dict[str, SimTag] = field(default_factory=dict)
    resource_groups: dict[str, float] = field(default_factory=dict)  # key -> created_at
    last_activity_at: float = 0.0
    namespace: str | None = None  # full path of its group (None: the world's group)
    pending: bool = False  # a listing-only stub: World.ensure generates its history on first use


class World:
    """All simulated state. Build it with :func:`cidash.sim.build_world`; read it freely in tests."""

    def __init__(self, scenario: Scenario, *, time_scale: float = 0.0, clock_start: float | None = None) -> None:
        self.scenario = scenario
        self.lock = threading.RLock()
        self.projects: dict[int, SimProject] = {}
        self.group_id = 7
        self.group_path = "platform"
        self.subgroups: dict[str, int] = {}  # full path -> id, every one a child of the world's group
        #: generates a stub project's history on first use (the group world, see cidash.sim.group)
        self.materialize: Callable[[SimProject], SimProject] | None = None
        self.next_pipeline_id = 1000
        self.next_job_id = 10000
        self._sim_base = scenario.end.timestamp() if clock_start is None else clock_start
        self._real_base = time.monotonic()
        self.time_scale = time_scale
        self.planner: Mutator | None = None
        self.truth: Truth | None = None
        self._blob_cache: dict[int, tuple[bytes, str, str]] = {}
        #: project id -> (its jobs dict, job count, jobs newest first, their ids negated): the jobs listing's index
        self._jobs_desc: dict[int, tuple[dict[int, SimJob], int, list[SimJob], list[int]]] = {}
        #: (project id, path) -> commit sha -> its nearest ancestor-or-self that changed the path (see changes_of)
        self._changed_at: dict[tuple[int, str], dict[str, str | None]] = {}
        #: bumped by every change that can alter what a listing shows at the same ``now`` (a mutation, the clock)
        self.generation = 0
        #: (project id, filter) -> (its pipelines dict, count, generation, now, the listing): pages of one listing
        self.listings: dict[tuple[int, tuple[Any, ...]], tuple[object, int, int, float, list[Any]]] = {}

    # -- clock ---------------------------------------------------------------------------------------------
    def now(self) -> float:
        with self.lock:
            return self._sim_base + (time.monotonic() - self._real_base) * self.time_scale

    def advance(self, seconds: float) -> float:
        """Move simulated time forward; returns the new ``now``."""
        with self.lock:
            self.generation += 1
            self._sim_base += seconds
            return self.now()

    def set_time_scale(self, scale: float) -> None:
        with self.lock:
            self.generation += 1
            current = self.now()
            self._sim_base = current
            self._real_base = time.monotonic()
            self.time_scale = scale

    # -- lookups -------------------------------------------------------------------------------------------
    @property
    def main(self) -> SimProject:
        return self.ensure(self.projects[self.scenario.project_id])

    def project(self, ident: str) -> SimProject | None:
        if ident.isdigit():
            found = self.projects.get(int(ident))
            return None if found is None else self.ensure(found)
        for project in self.projects.values():
            if project.path == ident:
                return self.ensure(project)
        return None

    def ensure(self, project: SimProject) -> SimProject:
        """The project with its history (a stub's is generated now, once)."""
        if not project.pending:
            return project
        with self.lock:
            current = self.projects[project.id]
            if current.pending:
                assert self.materialize is not None
                current = self.materialize(current)
                self.projects[current.id] = current
            return current

    def blob(self, content: bytes) -> tuple[str, str]:
        """(git blob id, sha256 hex) of content, cached by identity."""
        key = id(content)
        hit = self._blob_cache.get(key)
        if hit is not None and hit[0] is content:
            return hit[1], hit[2]
        ids = (git_blob_id(content), hashlib.sha256(content).hexdigest())
        self._blob_cache[key] = (content, ids[0], ids[1])
        return ids

    def resolve_ref(self, project: SimProject, ref: str) -> SimCommit | None:
        if ref in ("HEAD", ""):
            ref = project.default_branch
        if ref.startswith("refs/heads/"):
            ref = ref[len("refs/heads/") :]
        sha = project.heads.get(ref)
        if sha is not None:
            # a branch points at its newest commit that exists yet (history may extend past the clock)
            commit: SimCommit | None = project.commits[sha]
            now = self.now()
            while commit is not None and commit.at > now and commit.parent:
                commit = project.commits.get(commit.parent)
            return commit
        if len(ref) >= 7 and all(c in "0123456789abcdef" for c in ref):
            if ref in project.commits:
                return project.commits[ref]
            for sha, commit in project.commits.items():
                if sha.startswith(ref):
                    return commit
        return None

    def changes_of(self, project: SimProject, start: SimCommit, path: str) -> Iterator[SimCommit]:
        """The commits reachable from ``start`` that changed ``path``, newest first: the same as filtering
        :meth:`history` by ``path in commit.changed``, without walking the commits that did not change it.

        Each commit's nearest ancestor-or-self that changed ``path`` is remembered once found (a commit's ancestry
        never changes, so it holds for good); a listing then costs the commits it lists, whatever the history."""
        memo = self._changed_at.setdefault((project.id, path), {})
        commit: SimCommit | None = start
        while commit is not None:
            found = self._nearest_change(project, commit, path, memo)
            if found is None:
                return
            yield found
            commit = project.commits.get(found.parent) if found.parent else None

    @staticmethod
    def _nearest_change(
        project: SimProject, commit: SimCommit, path: str, memo: dict[str, str | None]
    ) -> SimCommit | None:
        walked: list[str] = []
        current: SimCommit | None = commit
        answer: str | None = None
        while current is not None:
            if current.sha in memo:
                answer = memo[current.sha]
                break
            walked.append(current.sha)
            if path in current.changed:
                answer = current.sha
                break
            current = project.commits.get(current.parent) if current.parent else None
        for sha in walked:
            memo[sha] = answer
        return None if answer is None else project.commits[answer]

    def history(self, project: SimProject, ref: str) -> list[SimCommit]:
        """Commits reachable from ref, newest first."""
        commit = self.resolve_ref(project, ref)
        out: list[SimCommit] = []
        while commit is not None:
            out.append(commit)
            commit = project.commits.get(commit.parent) if commit.parent else None
        return out

    def jobs_newest_first(self, project: SimProject) -> tuple[list[SimJob], list[int]]:
        """The project's jobs by id, newest first, and their ids negated (ascending, for :mod:`bisect`).

        Built once per job count: jobs are only ever added (with a new, higher id), never removed or renumbered,
        so the order holds until the count changes; their states are read at the time of each request.
        """
        with self.lock:
            cached = self._jobs_desc.get(project.id)
            if cached is not None and cached[0] is project.jobs and cached[1] == len(project.jobs):
                return cached[2], cached[3]
            ordered = sorted(project.jobs.values(), key=lambda j: -j.id)
            keys = [-j.id for j in ordered]
            self._jobs_desc[project.id] = (project.jobs, len(project.jobs), ordered, keys)
            return ordered, keys

    def listing(
        self, project: SimProject, key: tuple[Any, ...], now: float, build: Callable[[], list[Any]]
    ) -> list[Any]:
        """``build()``, the items of one filtered, sorted listing, shared by its pages: built again when the
        project's pipelines, the clock (``now``) or anything a mutation touched (:attr:`generation`) changed."""
        with self.lock:
            kept = self.listings.get((project.id, key))
            if (
                kept is not None
                and kept[0] is project.pipelines
                and kept[1] == len(project.pipelines)
                and kept[2] == self.generation
                and kept[3] == now
            ):
                return kept[4]
            items = build()
            if len(self.listings) > 64:
                self.listings.clear()
            self.listings[(project.id, key)] = (project.pipelines, len(project.pipelines), self.generation, now, items)
            return items

    def pipeline_jobs(self, project: SimProject, pipeline: SimPipeline) -> list[SimJob]:
        return [project.jobs[j] for j in pipeline.job_ids]

    def pipeline_state(
        self, project: SimProject, pipeline: SimPipeline, now: float
    ) -> tuple[str, float | None, float | None, float]:
        """(status, started_at, finished_at, updated_at) at ``now``; cached once nothing can change any more."""
        cached = pipeline.settled
        if cached is not None and now >= cached[0]:
            return cached[1]
        status = self._pipeline_status(project, pipeline, now)
        started, finished, updated = self._pipeline_times(project, pipeline, now, status)
        state = (status, started, finished, updated)
        settle = pipeline.created_at
        for j in self.pipeline_jobs(project, pipeline):
            for t in (
                j.created_at,
                j.pending_at,
                j.resource_at,
                j.started_at,
                j.finished_at,
                j.canceled_at,
                j.skipped_at,
            ):
                if t is not None and t > settle:
                    settle = t
        pipeline.settled = (settle, state) if now >= settle else None
        return state

    def invalidate(self, project: SimProject, pipeline_id: int) -> None:
        """Forget a pipeline's cached state (a mutation changed its jobs)."""
        self.generation += 1
        pipeline = project.pipelines.get(pipeline_id)
        if pipeline is not None:
            pipeline.settled = None

    def pipeline_status(self, project: SimProject, pipeline: SimPipeline, now: float) -> str:
        return self.pipeline_state(project, pipeline, now)[0]

    def pipeline_times(
        self, project: SimProject, pipeline: SimPipeline, now: float
    ) -> tuple[float | None, float | None, float]:
        """(started_at, finished_at, updated_at) as visible at ``now``."""
        _, started, finished, updated = self.pipeline_state(project, pipeline, now)
        return started, finished, updated

    def _pipeline_status(self, project: SimProject, pipeline: SimPipeline, now: float) -> str:
        jobs = [j for j in self.pipeline_jobs(project, pipeline) if not j.retried]
        statuses = [j.status_at(now) for j in jobs]
        if not statuses:
            return "created"
        if any(s in ("running",) for s in statuses):
            return "running"
        if any(s in ("pending", "waiting_for_resource") for s in statuses):
            return (
                "pending"
                if all(s in ("pending", "created", "manual", "waiting_for_resource") for s in statuses)
                else "running"
            )
        if all(s == "created" for s in statuses):
            return "created"
        if any(s == "created" for s in statuses):
            return "running"
        if any(s == "failed" and not j.allow_failure for s, j in zip(statuses, jobs, strict=True)):
            return "failed"
        if any(s == "canceled" for s in statuses):
            return "canceled"
        if all(s in ("manual", "skipped") for s in statuses):
            return "manual"
        return "success"

    def _pipeline_times(
        self, project: SimProject, pipeline: SimPipeline, now: float, status: str
    ) -> tuple[float | None, float | None, float]:
        jobs = self.pipeline_jobs(project, pipeline)
        starts = [j.started_at for j in jobs if j.started_at is not None and j.started_at <= now]
        started = min(starts) if starts else None
        events: list[float] = [pipeline.created_at]
        for j in jobs:
            for t in (j.pending_at, j.resource_at, j.started_at, j.finished_at, j.canceled_at):
                if t is not None and t <= now:
                    events.append(t)
        updated = max(events)
        finished: float | None = None
        if status in FINISHED or status == "manual":
            ends = [
                (j.canceled_at if j.canceled_at is not None and j.canceled_at <= now else j.finished_at)
                for j in jobs
                if j.status_at(now) in FINISHED
            ]
            ends_f = [e for e in ends if e is not None]
            finished = max(ends_f) if ends_f else None
        return started, finished, updated

    # -- mutations (the server calls these; they return the changed/created objects) ------------------------
    def retry_job(self, project: SimProject, job: SimJob, user: str) -> SimJob:
        with self.lock:
            assert self.planner is not None
            self.invalidate(project, job.pipeline_id)
            return self.planner.retry(self, project, job, self.now(), user)

    def play_job(self, project: SimProject, job: SimJob, user: str) -> SimJob:
        with self.lock:
            assert self.planner is not None
            self.invalidate(project, job.pipeline_id)
            return self.planner.play(self, project, job, self.now(), user)

    def cancel_job(self, job: SimJob) -> SimJob:
        with self.lock:
            now = self.now()
            project = self.projects[job.project_id]
            self.invalidate(project, job.pipeline_id)
            status = job.status_at(now)
            if status in ("created", "pending", "running", "waiting_for_resource", "manual"):
                job.canceled_at = now
                job.final_status = "canceled"
                if job.started_at is not None and job.started_at > now:
                    job.started_at = None
                if job.finished_at is not None and job.finished_at > now:
                    job.finished_at = now if job.started_at is not None else None
            return job

    def create_pipeline(
        self, project: SimProject, ref: str, variables: Iterable[dict[str, str]], user: str, source: str = "api"
    ) -> SimPipeline:
        with self.lock:
            assert self.planner is not None
            self.generation += 1
            return self.planner.create_pipeline(self, project, ref, list(variables), self.now(), user, source)

    # -- inspection helpers for tests ------------------------------------------------------------------------
    def all_jobs(self, project_id: int | None = None) -> list[SimJob]:
        project = self.ensure(self.projects[project_id or self.scenario.project_id])
        return list(project.jobs.values())

    def all_pipelines(self, project_id: int | None = None) -> list[SimPipeline]:
        project = self.ensure(self.projects[project_id or self.scenario.project_id])
        return list(project.pipelines.values())

    def summary(self) -> dict[str, Any]:
        with self.lock:
            return {
                str(p.id): {"path": p.path, "pipelines": len(p.pipelines), "jobs": len(p.jobs), "tags": len(p.tags)}
                for p in self.projects.values()
            }
