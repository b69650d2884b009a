"""The seeded migration story: :class:`Scenario` and :func:`build_world` (the generator).

``Scenario()`` is 30 days of ``platform/app`` (id 42): ~12 pipelines a day on ``main``, a long-lived
``feature/legacy-ci`` branch that keeps the old CI design, and short topic branches. On ``migration_day`` at
08:00 UTC one commit on ``main`` moves the CI image from Debian to Alpine, commits ``.cache-key`` (verified by the
``setup`` job), makes the image-build job check existence with a manifest HEAD (manual unless ``Dockerfile.ci``
changed), and serialises the single cache writer with ``resource_group: cache_updates``. Every number comes
from the model documented in ``src/cidash/sim/README.md``; :class:`Truth` records what the model put in.

Public API::

    Scenario(seed=7, days=30, pipelines_per_day=12, start=datetime(2026, 10, 28, tzinfo=UTC), migration_day=16,
             project_path="platform/app", project_id=42, total_pipelines=None)
    build_world(scenario) -> World          # world.truth is a Truth
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime

from cidash.sim import content
from cidash.sim.content import CRITICAL_FILES, TOOLS, RepoState
from cidash.sim.model import (
    _AUTHORS,
    _TOPICS,
    DOCKER_IMAGE,
    DOCKER_IMAGE_SIZE,
    FLEET,
    MAINTAINER_USER,
    MB,
    OUTPUT_LIMIT,
    RUNNER_REVISION,
    RUNNER_VERSION,
    STAGES,
    RunnerKind,
    Scenario,
    TagTruth,
    Truth,
    runner_kind,
)
from cidash.sim.planner import Planner, _ms, _sha
from cidash.sim.world import SimCommit, SimPipeline, SimProject, World

#: Names that lived here before the split (model.py, planner.py), still importable from this module.
__all__ = [
    "DOCKER_IMAGE",
    "DOCKER_IMAGE_SIZE",
    "FLEET",
    "MAINTAINER_USER",
    "MB",
    "OUTPUT_LIMIT",
    "RUNNER_REVISION",
    "RUNNER_VERSION",
    "STAGES",
    "Planner",
    "RunnerKind",
    "Scenario",
    "TagTruth",
    "Truth",
    "build_world",
    "runner_kind",
]


class _Repo:
    def __init__(self, world: World, project: SimProject, planner: Planner, rng: random.Random) -> None:
        self.world = world
        self.project = project
        self.planner = planner
        self.rng = rng
        self.critical_changes: list[tuple[str, datetime, str, tuple[str, ...]]] = []

    def commit(self, ref: str, state: RepoState, at: float, title: str, parent: str | None = None) -> SimCommit:
        project = self.project
        if parent is None:
            parent = project.heads.get(ref)
        prev = project.commits[parent] if parent else None
        files = content.snapshot(state)
        changed = tuple(
            sorted(
                p
                for p in set(files) | set(prev.files if prev else {})
                if (prev is None or prev.files.get(p) is not files.get(p))
            )
        )
        author = _AUTHORS[self.rng.randrange(len(_AUTHORS))]
        sha = _sha(self.planner.scenario.seed, parent, ref, at, title, changed)
        last_change = dict(prev.last_change) if prev else {}
        for path in changed:
            if path in files:
                last_change[path] = sha
            else:
                last_change.pop(path, None)
        commit = SimCommit(
            sha=sha,
            parent=parent,
            ref=ref,
            at=_ms(at),
            title=title,
            author_name=author[0],
            author_email=author[1],
            files=files,
            last_change=last_change,
            changed=changed,
        )
        project.commits[sha] = commit
        project.heads[ref] = sha
        self.planner.states[sha] = state
        crit = tuple(p for p in changed if p in CRITICAL_FILES)
        if crit:
            self.critical_changes.append((sha, datetime.fromtimestamp(commit.at, UTC), ref, crit))
        return commit


def _change(rng: random.Random, state: RepoState, *, main: bool) -> tuple[RepoState, str]:
    r = rng.random()
    if r < 0.55:
        return state.bump(src=state.src + 1), "Refactor request handling"
    if r < 0.70:
        return state.bump(deps=state.deps + 1, src=state.src + 1), "Bump Go dependencies"
    if r < 0.78:
        return state.bump(deps=state.deps + 1), "go mod tidy"
    if r < 0.84:
        return state.bump(mise=state.mise + 1), "Update tool versions in .mise/config.toml"
    if r < 0.90 and main:
        return state.bump(ci=state.ci + 1), "CI: tweak job settings"
    if r < 0.95 and main:
        return state.bump(docker=state.docker + 1, ci=state.ci + 1), "CI image: update base and tools"
    return state.bump(src=state.src + 1, deps=state.deps + 1), "Add endpoint and its dependency"


def build_world(
    scenario: Scenario | None = None, *, time_scale: float = 0.0, clock_start: datetime | None = None
) -> World:
    """Generate the scenario's world (deterministic for a given ``Scenario``).

    The world's clock starts at ``scenario.end`` (all history in the past) unless ``clock_start`` says otherwise
    (then pipelines planned after it appear as their time comes, e.g. a live demo day).
    """
    sc = scenario or Scenario()
    world = World(sc, time_scale=time_scale, clock_start=clock_start.timestamp() if clock_start else None)
    rng = random.Random(sc.seed)
    planner = Planner(sc)
    world.planner = planner
    story = tell_story(world, sc, planner, rng, description="The platform team's Go service (simulated).")
    if sc.with_docs_project:
        _build_docs_project(world, rng)
    world.truth = _truth(
        world, story.project, planner, story.repo, story.migration_sha, story.baseline_tag, story.candidate_tag
    )
    if sc.hostile_strings:
        from cidash.sim import hostile_strings

        hostile_strings.apply(world)
    return world


@dataclass
class Story:
    """What :func:`tell_story` generated: the project, and what the ground truth needs of it."""

    project: SimProject
    repo: _Repo
    migration_sha: str
    baseline_tag: str
    candidate_tag: str


def tell_story(world: World, sc: Scenario, planner: Planner, rng: random.Random, *, description: str) -> Story:
    """Generate one project's migration story (``sc.project_id``, ``sc.project_path``) into ``world``.

    Pipeline and job ids come from the world's counters; the commits' SHAs from ``sc.seed``.
    """
    t0 = sc.start.timestamp()
    project = SimProject(
        id=sc.project_id,
        path=sc.project_path,
        name=sc.project_path.rsplit("/", 1)[-1],
        description=description,
        created_at=t0 - 400 * 86400,
    )
    project.registry_repo_id = 1
    project.registry_created_at = t0 - 300 * 86400
    world.projects[project.id] = project
    repo = _Repo(world, project, planner, rng)

    main_state = RepoState()
    repo.commit("main", main_state, t0 - 7 * 86400, "Initial CI setup")
    planner.ensure_tag(project, main_state, t0 - 6 * 86400)
    legacy_state = main_state.bump(src=1000)
    repo.commit(
        sc.legacy_branch, legacy_state, t0 - 3 * 86400, "Start legacy-ci experiment", parent=project.heads["main"]
    )
    states: dict[str, RepoState] = {"main": main_state, sc.legacy_branch: legacy_state}
    topic: str | None = None
    topic_until = 0.0
    topic_n = 0
    migration_at = sc.migration_at.timestamp()
    migration_sha = ""
    baseline_tag = main_state.image_tag
    migrated_done = False

    def run_pipeline(ref: str, commit: SimCommit, at: float, source: str, before: str, changed_docker: bool) -> None:  # noqa: PLR0917
        pipeline = SimPipeline(
            id=world.next_pipeline_id,
            iid=len(project.pipelines) + 1,
            project_id=project.id,
            ref=ref,
            sha=commit.sha,
            before_sha=before,
            source=source,
            created_at=_ms(at),
            user="demo" if source != "schedule" else "ci-bot",
        )
        world.next_pipeline_id += 1
        project.pipelines[pipeline.id] = pipeline
        planner.plan_pipeline(world, project, pipeline, commit, rng, dockerfile_changed=changed_docker)

    for day in range(1, sc.days + 1):
        day_start = t0 + (day - 1) * 86400
        n = sc.pipelines_on_day(day)
        times = sorted(day_start + rng.uniform(8.25 * 3600, 20 * 3600) for _ in range(n))
        for i, at in enumerate(times):
            if not migrated_done and at >= migration_at:
                migrated_done = True
                old_tag = states["main"].image_tag
                states["main"] = states["main"].bump(migrated=True, docker=1, ci=states["main"].ci + 1)
                before = project.heads["main"]
                commit = repo.commit(
                    "main", states["main"], migration_at, "CI: Alpine image, committed .cache-key, serialised cache"
                )
                migration_sha = commit.sha
                baseline_tag = old_tag
                run_pipeline("main", commit, migration_at + 20.0, "push", before, True)
            if i == 0:
                commit = project.commits[project.heads["main"]]
                run_pipeline("main", commit, at, "schedule", commit.sha, False)
                continue
            r = rng.random()
            if r < 0.6:
                ref = "main"
            elif r < 0.75:
                ref = sc.legacy_branch
            else:
                if topic is None or at > topic_until:
                    topic = f"feature/{_TOPICS[topic_n % len(_TOPICS)]}"
                    topic_n += 1
                    topic_until = at + rng.uniform(1.5, 3.0) * 86400
                    states[topic] = states["main"]
                    project.heads[topic] = project.heads["main"]
                ref = topic
            if rng.random() < 0.06:
                commit = project.commits[project.heads[ref]]
                run_pipeline(ref, commit, at, "web", commit.sha, False)
                continue
            new_state, title = _change(rng, states[ref], main=ref == "main")
            before = project.heads[ref]
            states[ref] = new_state
            commit = repo.commit(ref, new_state, at - rng.uniform(30.0, 300.0), title)
            run_pipeline(ref, commit, at, "push", before, "Dockerfile.ci" in commit.changed)
        if not migrated_done and day == sc.migration_day:
            pass

    for p in project.pipelines.values():
        for j in world.pipeline_jobs(project, p):
            for t in (j.finished_at, j.started_at, j.created_at):
                if t is not None:
                    project.last_activity_at = max(project.last_activity_at, t)
    return Story(project, repo, migration_sha, baseline_tag, states["main"].image_tag)


def _build_docs_project(world: World, rng: random.Random) -> None:
    """A second, small project in the ``platform`` group (for group sync): no CI model, a few commits."""
    sc = world.scenario
    t0 = sc.start.timestamp()
    docs = SimProject(
        id=sc.project_id + 1,
        path="platform/docs",
        name="docs",
        description="Platform team handbook (simulated, no CI history).",
        created_at=t0 - 200 * 86400,
    )
    sha = _sha(sc.seed, "docs-initial")
    files = {"README.md": b"# Platform docs\n", "index.md": b"Welcome.\n"}
    docs.commits[sha] = SimCommit(
        sha=sha,
        parent=None,
        ref="main",
        at=t0 - 100 * 86400,
        title="Initial docs",
        author_name=_AUTHORS[0][0],
        author_email=_AUTHORS[0][1],
        files=files,
        last_change=dict.fromkeys(files, sha),
        changed=tuple(files),
    )
    docs.heads["main"] = sha
    docs.last_activity_at = t0 - 100 * 86400
    world.projects[docs.id] = docs


def _truth(  # noqa: PLR0917
    world: World,
    project: SimProject,
    planner: Planner,
    repo: _Repo,
    migration_sha: str,
    baseline_tag: str,
    candidate_tag: str,
) -> Truth:
    sc = world.scenario
    mig = sc.migration_at.timestamp()
    base: list[float] = []
    cand: list[float] = []
    builds = {False: [0, 0], True: [0, 0]}
    failed: dict[int, str] = {}
    stale: set[int] = set()
    default: set[int] = set()
    for pipeline in project.pipelines.values():
        first_build_seen = False
        for job in world.pipeline_jobs(project, pipeline):
            if job.final_status == "failed" and job.failure_reason:
                failed[job.id] = job.failure_reason
            if job.stale_restore:
                stale.add(job.id)
            if job.cache_key and "-default-" in f"-{job.cache_key}-":
                default.add(job.id)
            if pipeline.ref != project.default_branch or job.facts is None:
                continue
            after = pipeline.created_at >= mig
            if job.kind == "image":
                if not first_build_seen:
                    first_build_seen = True
                    builds[after][0] += 1
                    builds[after][1] += job.final_status == "success"
                continue
            (cand if after else base).append(job.facts.startup_seconds)
    b = statistics.median(base) if base else 0.0
    c = statistics.median(cand) if cand else 0.0

    def overlaps(migrated: bool) -> int:
        ws = sorted((w for w in planner.writers if w.migrated == migrated and w.ref == "main"), key=lambda w: w.start)
        count = 0
        for i, w in enumerate(ws):
            for v in ws[i + 1 :]:
                if v.start >= w.end:
                    break
                if v.key == w.key:
                    count += 1
        return count

    tags = {
        t.name: TagTruth(t.name, t.digest, t.total_size, t.flavor, datetime.fromtimestamp(t.created_at, UTC))
        for t in project.tags.values()
    }
    return Truth(
        project_id=project.id,
        project_path=project.path,
        migration_at=sc.migration_at,
        migration_sha=migration_sha,
        baseline_startup_median=b,
        candidate_startup_median=c,
        startup_improvement=(1.0 - c / b) if b else 0.0,
        baseline_image_tag=baseline_tag,
        candidate_image_tag=candidate_tag,
        image_tags=tags,
        image_builds_baseline=(builds[False][0], builds[False][1]),
        image_builds_candidate=(builds[True][0], builds[True][1]),
        failed_jobs=failed,
        truncated_jobs=frozenset(j.id for j in project.jobs.values() if j.facts is not None and j.facts.truncated),
        stale_cache_jobs=frozenset(stale),
        default_key_jobs=frozenset(default),
        overlapping_writers_baseline=overlaps(False),
        overlapping_writers_candidate=overlaps(True),
        critical_changes=tuple(repo.critical_changes),
        tools=TOOLS,
        pipelines=len(project.pipelines),
        jobs=len(project.jobs),
    )
