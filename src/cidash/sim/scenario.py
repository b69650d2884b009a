"""The seeded migration story: :class:`Scenario` (configuration) and :func:`build_world` (the generator).

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

import hashlib
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cidash.sim import content, gitlab_keys
from cidash.sim.content import CRITICAL_FILES, TOOLS, RepoState
from cidash.sim.world import (
    CachePlan,
    JobFacts,
    SectionPlan,
    SimCommit,
    SimJob,
    SimPipeline,
    SimProject,
    SimTag,
    World,
)

MAINTAINER_USER = "demo"  # the demo token's user (Maintainer); schedules run as "ci-bot" (a Developer)
MB = 1_000_000  # the simulator's "MB" is decimal: 10**6 bytes (as registries and `docker images` print sizes)

RUNNER_VERSION = "18.6.0"
RUNNER_REVISION = "5a6e1f2b"


@dataclass(frozen=True, slots=True)
class RunnerKind:
    """What one simulated runner is, as far as its logs show it (see gitlab-facts.md section 2)."""

    version: str
    revision: str
    executor: str  # the name in 'Preparing the "<executor>" executor'
    timestamps: bool  # per-line timestamps (FF_TIMESTAMPS: opt-in from 16.11, on by default since 18.7)
    step_runner: bool = False  # the experimental step-runner path (FF_CONCRETE, 18.11+) labels "(fallback)" attempts

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def fallback_keys(self) -> bool:
        """Whether it knows ``cache:fallback_keys`` (runner 16.0+)."""
        return self.major >= 16


#: The fleet, by runner id (1-based, cycling when a scenario has more runners): a mix as real instances have one.
#: An old static runner (14.x: no timestamps, a miss on the distributed cache prints FATAL), a docker+machine
#: autoscaled fleet on 17.x/18.x with timestamps, a 16.x static runner without them, and one docker-autoscaler
#: runner on the step-runner path, the only one that prints "(fallback)".
FLEET: tuple[RunnerKind, ...] = (
    RunnerKind("14.8.2", "c6e7e194", "docker", timestamps=False),
    RunnerKind("17.11.1", "5a1b2c3d", "docker+machine", timestamps=True),
    RunnerKind(RUNNER_VERSION, RUNNER_REVISION, "docker+machine", timestamps=True),
    RunnerKind("18.9.0", "e1f2a3b4", "docker+machine", timestamps=True),
    RunnerKind("16.11.1", "535ced5f", "docker", timestamps=False),
    RunnerKind("18.11.0", "9c8d7e6f", "docker-autoscaler", timestamps=True, step_runner=True),
)


def runner_kind(runner: int) -> RunnerKind:
    return FLEET[(runner - 1) % len(FLEET)]


DOCKER_IMAGE = "docker:27.3"
DOCKER_IMAGE_SIZE = 148 * MB
OUTPUT_LIMIT = 1024 * 1024  # the simulated runners' output_limit (1 MiB; GitLab Runner's default is 4 MiB)

_AUTHORS = (
    ("Ana Ruiz", "ana.ruiz@example.com"),
    ("Bo Chen", "bo.chen@example.com"),
    ("Chidi Okafor", "chidi.okafor@example.com"),
    ("Dana Weiss", "dana.weiss@example.com"),
)
STAGES = ("image", "prepare", "verify", "test", "build", "release")
_TOPICS = ("metrics", "retry-logic", "config-reload", "grpc-health", "log-format", "rate-limits", "otel", "cli-flags")


@dataclass(frozen=True)
class Scenario:
    """Configuration of the simulated world. Equal scenarios build byte-identical worlds."""

    seed: int = 7
    days: int = 30
    pipelines_per_day: int = 12
    start: datetime = datetime(2026, 10, 28, tzinfo=UTC)
    migration_day: int = 16  # 1-based day on which the migration commit lands (08:00 UTC)
    project_path: str = "platform/app"
    project_id: int = 42
    total_pipelines: int | None = None  # overrides pipelines_per_day (spread evenly over the days)
    legacy_branch: str = "feature/legacy-ci"
    registry_host: str = "registry.example.com"
    # -- model parameters (see README.md) --
    debian_size: int = 807 * MB
    alpine_size: int = 214 * MB + 600_000
    pull_bandwidth_mb_s: float = 60.0
    pull_overhead_s: float = 4.0
    local_image_s: float = 1.2
    pull_probability: float = 0.7
    restore_bandwidth_mb_s: float = 150.0
    archive_bandwidth_mb_s: float = 60.0
    legacy_cache_mb: float = 420.0
    migrated_cache_mb: float = 180.0
    legacy_build_failure_rate: float = 0.05
    migrated_build_failure_rate: float = 0.004
    test_failure_rate: float = 0.02
    manual_play_rate: float = 0.12  # main pipelines (after the migration) whose manual image build someone plays
    runners: int = 6
    with_docs_project: bool = True
    #: the simulated instance's version (``GET /version``): its cache keys follow that version's rules
    gitlab_version: str = "18.6.0"
    #: Put terminal escapes, markup, formulas, Markdown breakers and non-UTF-8 log bytes into every string GitLab
    #: lets a user choose (see :mod:`cidash.sim.hostile_strings`); the history's shape stays the same.
    hostile_strings: bool = False

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)

    @property
    def migration_at(self) -> datetime:
        return self.start + timedelta(days=self.migration_day - 1, hours=8)

    def pipelines_on_day(self, day: int) -> int:
        """Pipelines created on 1-based ``day`` (the migration commit's own pipeline comes on top)."""
        if self.total_pipelines is None:
            return self.pipelines_per_day
        base, extra = divmod(self.total_pipelines, self.days)
        return base + (1 if day <= extra else 0)


@dataclass(frozen=True)
class TagTruth:
    name: str
    digest: str
    total_size: int
    flavor: str
    created_at: datetime


@dataclass(frozen=True)
class Truth:
    """Ground truth of a built scenario, for tests (all about the main project unless said otherwise).

    Start-up seconds are per job, from the first section's start to ``step_script``'s start (per-line timestamps,
    millisecond precision); medians are over ``main`` jobs that run in the CI image (all but
    ``build-ci-image``), baseline = created before ``migration_at``, candidate = at or after.
    """

    project_id: int
    project_path: str
    migration_at: datetime
    migration_sha: str
    baseline_startup_median: float
    candidate_startup_median: float
    startup_improvement: float  # 1 - candidate/baseline
    baseline_image_tag: str
    candidate_image_tag: str
    image_tags: dict[str, TagTruth]
    image_builds_baseline: tuple[int, int]  # (first attempts that ran, of which succeeded), main
    image_builds_candidate: tuple[int, int]
    failed_jobs: dict[int, str]  # job id -> failure_reason
    truncated_jobs: frozenset[int]  # logs cut by the runner's output limit (inside step_script)
    stale_cache_jobs: frozenset[int]  # restored a cache built from other critical-file contents
    default_key_jobs: frozenset[int]  # restore key digest was the literal "default"
    overlapping_writers_baseline: int  # pairs of cache writers of one key overlapping in time, main
    overlapping_writers_candidate: int
    critical_changes: tuple[tuple[str, datetime, str, tuple[str, ...]], ...]  # (sha, at, ref, paths)
    tools: tuple[str, ...]
    pipelines: int
    jobs: int


def _sha(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def _sha256(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def _ms(t: float) -> float:
    return round(t, 3)


@dataclass
class _Writer:
    key: str
    start: float
    end: float
    job_id: int
    migrated: bool
    ref: str


def _last_commit_finder(project: SimProject, commit: SimCommit) -> Callable[[str], str | None]:
    """Git's last commit touching a pathspec at ``commit`` (from each file's last change; the story never
    deletes a file)."""

    def last_commit(spec: str) -> str | None:
        shas = [sha for path, sha in commit.last_change.items() if gitlab_keys.pathspec_matches(spec, path)]
        return max(shas, key=lambda sha: project.commits[sha].at) if shas else None

    return last_commit


@dataclass
class Planner:
    """Plans jobs (times, outcome, trace facts) for the generator and for API mutations at run time."""

    scenario: Scenario
    states: dict[str, RepoState] = field(default_factory=dict)  # commit sha -> state
    cache: dict[str, str] = field(default_factory=dict)  # cache key -> critical checksum it was built from
    rg_free_at: dict[str, float] = field(default_factory=dict)
    writers: list[_Writer] = field(default_factory=list)
    runner_tokens: dict[int, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)  # commit sha -> critical checksum

    # -- images ---------------------------------------------------------------------------------------------
    def image_ref(self, project: SimProject, tag: str) -> str:
        return f"{self.scenario.registry_host}/{project.path}/ci:{tag}"

    def ensure_tag(self, project: SimProject, state: RepoState, at: float) -> SimTag:
        tag = project.tags.get(state.image_tag)
        if tag is None:
            rng = random.Random(_sha(self.scenario.seed, "tag", state.image_tag))
            size = (
                self.scenario.alpine_size + rng.randint(-300_000, 300_000)
                if state.migrated
                else self.scenario.debian_size + rng.randint(-600_000, 900_000)
            )
            tag = SimTag(
                name=state.image_tag,
                digest="sha256:" + _sha256(self.scenario.seed, "manifest", state.image_tag),
                revision=_sha256(self.scenario.seed, "config", state.image_tag),
                total_size=size,
                created_at=_ms(at),
                flavor=state.flavor,
            )
            project.tags[tag.name] = tag
        return tag

    # -- pipelines ------------------------------------------------------------------------------------------
    def plan_pipeline(
        self,
        world: World,
        project: SimProject,
        pipeline: SimPipeline,
        commit: SimCommit,
        rng: random.Random,
        *,
        dockerfile_changed: bool,
        force_build: bool = False,
        history: bool = True,
    ) -> None:
        state = self.states[commit.sha]
        pipeline.design = "migrated" if state.migrated else "legacy"
        specs: list[tuple[str, str, str]] = [
            ("build-ci-image", "image", "image"),
            ("setup", "prepare", "setup"),
            ("verify-ci-image", "verify", "verify"),
            ("lint", "test", "lint"),
            ("test 1/2", "test", "test"),
            ("test 2/2", "test", "test"),
            ("build", "build", "build"),
        ]
        if pipeline.ref == project.default_branch:
            specs.append(("release", "release", "release"))
        jobs: list[SimJob] = []
        for name, stage, kind in specs:
            job = SimJob(
                id=world.next_job_id,
                project_id=project.id,
                pipeline_id=pipeline.id,
                name=name,
                stage=stage,
                created_at=pipeline.created_at,
                pending_at=None,
                started_at=None,
                finished_at=None,
                final_status="created",
                kind=kind,
                user=pipeline.user,
            )
            world.next_job_id += 1
            jobs.append(job)
            project.jobs[job.id] = job
            pipeline.job_ids.append(job.id)
        manual_build = state.migrated and not (dockerfile_changed or force_build)
        ready = pipeline.created_at + rng.uniform(0.5, 2.0)
        stage_order = list(STAGES)
        blocked = False
        block_at = 0.0
        for stage in stage_order:
            stage_jobs = [j for j in jobs if j.stage == stage]
            if not stage_jobs:
                continue
            if blocked:
                if not block_at:
                    block_at = max((j.finished_at or 0.0) for j in world.pipeline_jobs(project, pipeline))
                for j in stage_jobs:
                    j.final_status = "skipped"
                    j.skipped_at = block_at
                continue
            end = ready
            for job in stage_jobs:
                if job.kind == "image" and manual_build:
                    job.manual = True
                    job.allow_failure = True
                    job.final_status = "manual"
                    if (
                        history
                        and pipeline.ref == project.default_branch
                        and rng.random() < self.scenario.manual_play_rate
                    ):
                        # someone pressed play on the manual image build (it runs beside the later stages)
                        job.played = True
                        self.run_job(world, project, pipeline, job, commit, ready + rng.uniform(60.0, 1800.0), rng)
                    continue
                final = self.run_job(world, project, pipeline, job, commit, ready, rng, history=history)
                end = max(end, final.finished_at or ready)
            if any(j.final_status == "failed" and not j.allow_failure for j in stage_jobs):
                # later stages wait for a retry (history: a person retries) or are skipped
                if history:
                    green = self._retry_until_green(world, project, pipeline, stage_jobs, commit, rng)
                    if green is None:
                        blocked = True
                        continue
                    end = green
                else:
                    blocked = True
                    continue
            ready = end + rng.uniform(0.5, 3.0)

    def _retry_until_green(  # noqa: PLR0917
        self,
        world: World,
        project: SimProject,
        pipeline: SimPipeline,
        stage_jobs: list[SimJob],
        commit: SimCommit,
        rng: random.Random,
    ) -> float | None:
        end = max(j.finished_at or 0.0 for j in stage_jobs)
        for job in list(stage_jobs):
            current = job
            attempts = 0
            while current.final_status == "failed" and not current.allow_failure:
                attempts += 1
                if attempts > 3 or (current.kind != "image" and rng.random() < 0.4):
                    return None  # nobody retried: the pipeline fails
                assert current.finished_at is not None
                again = current.finished_at + rng.uniform(240.0, 1500.0)
                current = self._new_attempt(world, project, pipeline, current, again)
                self.run_job(world, project, pipeline, current, commit, again, rng, history=True)
                end = max(end, current.finished_at or again)
        return end

    def _new_attempt(self, world: World, project: SimProject, pipeline: SimPipeline, old: SimJob, at: float) -> SimJob:
        old.retried = True
        job = SimJob(
            id=world.next_job_id,
            project_id=project.id,
            pipeline_id=pipeline.id,
            name=old.name,
            stage=old.stage,
            created_at=_ms(at),
            pending_at=None,
            started_at=None,
            finished_at=None,
            final_status="created",
            kind=old.kind,
            user=old.user,
            allow_failure=old.allow_failure,
        )
        world.next_job_id += 1
        project.jobs[job.id] = job
        pipeline.job_ids.append(job.id)
        return job

    # -- one job ------------------------------------------------------------------------------------------------
    def run_job(  # noqa: PLR0917
        self,
        world: World,
        project: SimProject,
        pipeline: SimPipeline,
        job: SimJob,
        commit: SimCommit,
        ready: float,
        rng: random.Random,
        *,
        history: bool = True,
        forced: bool = False,
    ) -> SimJob:
        sc = self.scenario
        state = self.states[commit.sha]
        migrated = state.migrated
        protected = pipeline.ref in project.protected
        checksum = self.checksums.get(commit.sha)
        if checksum is None:
            checksum = self.checksums[commit.sha] = content.critical_checksum(commit.files)

        job.pending_at = _ms(ready)
        queue = rng.uniform(1.0, 8.0)
        start = ready + queue
        if migrated and job.kind == "setup":
            job.resource_group = "cache_updates"
            project.resource_groups.setdefault("cache_updates", _ms(sc.migration_at.timestamp()))
            free = self.rg_free_at.get("cache_updates", 0.0)
            if free > ready:
                job.resource_at = _ms(free + 0.5)
                start = max(start, free + 0.5 + rng.uniform(1.0, 4.0))
        runner = rng.randint(1, sc.runners)
        job.runner_id = runner

        # image and pull model
        tag = self.ensure_tag(project, state, commit.at).view(start) if job.kind != "image" else None
        if job.kind == "image":
            image, image_size = DOCKER_IMAGE, DOCKER_IMAGE_SIZE
            image_digest = "sha256:" + _sha256("docker-image", DOCKER_IMAGE)
            image_id = _sha256("docker-image-id", DOCKER_IMAGE)
            digest_ref = f"docker@{image_digest}"
        else:
            assert tag is not None
            image = self.image_ref(project, tag.name)
            image_size = tag.total_size
            image_digest = tag.digest
            image_id = tag.revision
            digest_ref = f"{sc.registry_host}/{project.path}/ci@{tag.digest}"
        pulled = rng.random() < sc.pull_probability

        # cache plan
        key: str | None = None
        restores: list[CachePlan] = []
        archive: CachePlan | None = None
        uses_cache = job.kind in ("setup", "lint", "test", "build")
        writer = uses_cache and (not migrated or job.kind == "setup")
        cache_mb = 0.0
        stale = False
        if uses_cache:
            if migrated:
                cache_mb = sc.migrated_cache_mb
            else:
                day = (pipeline.created_at - sc.start.timestamp()) / 86400.0
                cache_mb = sc.legacy_cache_mb + 6.0 * max(0.0, day)
            # GitLab computes the key at pipeline creation from the files committed at the pipeline's SHA (both CI
            # designs list `.cache-key`; only the migrated one commits it), with the rules of its version.
            version = gitlab_keys.parse_version(sc.gitlab_version)
            base = gitlab_keys.cache_key(
                content.CI_CACHE_KEY, commit.files, version, last_commit=_last_commit_finder(project, commit)
            )
            maintainer = job.user == MAINTAINER_USER
            key = gitlab_keys.job_cache_key(base, version, protected_ref=protected, maintainer=maintainer)
            job.cache_key = key
            job.writes_cache = writer
            if key in self.cache:
                restores.append(CachePlan("restore", key, "hit"))
                stale = self.cache[key] != checksum
            else:
                restores.append(CachePlan("restore", key, "miss"))
                if migrated and not protected and runner_kind(runner).fallback_keys:
                    # cache:fallback_keys get the same protection suffix (CACHE_FALLBACK_KEY would not)
                    fb = gitlab_keys.job_cache_key("go-mod-main", version, protected_ref=False, maintainer=maintainer)
                    restores.append(CachePlan("restore", fb, "hit" if fb in self.cache else "miss", fallback=True))
            job.stale_restore = stale

        # failure decision
        fail = False
        if job.kind == "image":
            rate = sc.migrated_build_failure_rate if migrated else sc.legacy_build_failure_rate
            fail = rng.random() < rate
        elif job.kind == "test":
            fail = rng.random() < sc.test_failure_rate

        # sections
        t = start + rng.uniform(0.2, 0.6)
        sections: list[SectionPlan] = []

        def section(name: str, seconds: float, header: str) -> None:
            nonlocal t
            begin = t
            t += max(seconds, 0.05)
            sections.append(SectionPlan(name, _ms(begin), _ms(t), header))
            t += rng.uniform(0.01, 0.08)

        section("resolve_secrets", rng.uniform(0.05, 0.3), "Resolving secrets")
        if pulled:
            pe = sc.pull_overhead_s + image_size / MB / sc.pull_bandwidth_mb_s * rng.uniform(0.9, 1.15)
        else:
            pe = sc.local_image_s * rng.uniform(0.7, 1.4)
        if job.kind == "image":
            pe += rng.uniform(2.5, 4.0)  # docker:dind service start
        section("prepare_executor", pe, f'Preparing the "{runner_kind(runner).executor}" executor')
        section("prepare_script", rng.uniform(0.6, 1.4), "Preparing environment")
        section("get_sources", rng.uniform(4.0, 8.0), "Getting source from Git repository")
        if restores:
            seconds = 0.0
            for r in restores:
                seconds += (0.8 + cache_mb / sc.restore_bandwidth_mb_s) if r.outcome == "hit" else 0.4
            section("restore_cache", seconds * rng.uniform(0.9, 1.1), "Restoring cache")
        if job.kind == "release":
            section("download_artifacts", rng.uniform(0.8, 1.5), "Downloading artifacts")
        script, script_end = self._script(job, state, commit, project, t, rng, fail, stale, restores, forced)
        section("step_script", script_end - t, 'Executing "step_script" stage of the job script')
        if uses_cache and not fail and key is not None:
            if writer:
                up_to_date = migrated and restores[0].outcome == "hit" and not stale
                archive = CachePlan("archive", key, "up_to_date" if up_to_date else "created")
                secs = 0.6 if up_to_date else 1.0 + cache_mb / sc.archive_bandwidth_mb_s
            else:
                archive = CachePlan("archive", key, "skipped")
                secs = 0.1
            a_start = t
            section("archive_cache", secs * rng.uniform(0.9, 1.1), "Saving cache for successful job")
            if writer:
                self.cache[key] = checksum
                self.writers.append(_Writer(key, a_start, t, job.id, migrated, pipeline.ref))
        if job.kind == "build" and not fail:
            section("upload_artifacts_on_success", rng.uniform(1.5, 3.0), "Uploading artifacts for successful job")
        section(
            "cleanup_file_variables", rng.uniform(0.1, 0.3), "Cleaning up project directory and file based variables"
        )
        finished = t + rng.uniform(0.1, 0.4)

        job.started_at = _ms(start)
        job.finished_at = _ms(finished)
        if job.resource_group:
            self.rg_free_at[job.resource_group] = finished
        job.final_status = "failed" if fail else "success"
        job.failure_reason = "script_failure" if fail else None
        job.image_tag = tag.name if tag else None
        if job.kind == "image" and not fail:
            # a successful build pushes the tag (if it was not there yet); a forced rebuild pushes a new digest
            existing = project.tags.get(state.image_tag)
            pushed = self.ensure_tag(project, state, finished)
            if forced and existing is not None:
                n = len(existing.rebuilds) + 1
                pushed.rebuilds.append(
                    (
                        _ms(finished),
                        "sha256:" + _sha256(sc.seed, "manifest", state.image_tag, "rebuild", job.id),
                        _sha256(sc.seed, "config", state.image_tag, "rebuild", job.id),
                        existing.total_size + 1000 * n,
                    )
                )
        cache_events = tuple(restores) + ((archive,) if archive else ())
        kind = runner_kind(runner)
        job.facts = JobFacts(
            runner_version=kind.version,
            runner_revision=kind.revision,
            runner_name=f"sim-runner-{runner}",
            runner_token=self.runner_token(runner),
            executor=kind.executor,
            timestamps=kind.timestamps,
            step_runner=kind.step_runner,
            image=image,
            image_id="sha256:" + image_id,
            image_digest=digest_ref,
            pulled=pulled,
            sections=tuple(sections),
            cache=cache_events,
            script=tuple(script),
            success=not fail,
            checkout_sha=commit.sha,
            ref=pipeline.ref,
            # a third of failing test jobs dump so much that the runner's output_limit (1 MiB) cuts the log;
            # decided by a hash, not the random stream, so the rest of the story does not move
            output_limit=OUTPUT_LIMIT
            if fail and job.kind == "test" and int(_sha(sc.seed, "verbose", job.id)[:4], 16) % 3 == 0
            else None,
        )
        return job

    def runner_token(self, runner: int) -> str:
        token = self.runner_tokens.get(runner)
        if token is None:
            token = "t" + _sha("runner", self.scenario.seed, runner)[:7]
            self.runner_tokens[runner] = token
        return token

    def _script(  # noqa: PLR0917
        self,
        job: SimJob,
        state: RepoState,
        commit: SimCommit,
        project: SimProject,
        t: float,
        rng: random.Random,
        fail: bool,
        stale: bool,
        restores: list[CachePlan],
        forced: bool,
    ) -> tuple[list[tuple[float, str]], float]:
        lines: list[tuple[float, str]] = []

        def out(seconds: float, text: str) -> None:
            nonlocal t
            t += seconds
            lines.append((_ms(t), text))

        image = self.image_ref(project, state.image_tag)
        if job.kind == "setup":
            if state.migrated:
                out(0.3, "$ sha256sum --check --strict .cache-key")
                for path in CRITICAL_FILES:
                    out(0.01, f"{path}: OK")
            else:
                out(0.3, "$ sha256sum go.mod go.sum .gitlab-ci.yml Dockerfile.ci .mise/config.toml > .cache-key")
            out(0.2, "$ go mod download")
            hit = bool(restores) and restores[0].outcome == "hit"
            if hit and not stale:
                out(rng.uniform(2.0, 5.0), "all modules present in the module cache")
            else:
                for mod in content.go_mod(state.deps).decode().splitlines():
                    if mod.startswith("\t"):
                        name, ver = mod.strip().split()
                        out(rng.uniform(2.0, 7.0), f"go: downloading {name} {ver}")
        elif job.kind == "image":
            if state.migrated:
                out(0.3, f'$ ./scripts/ci-image-exists.sh "{image}" || ./scripts/ci-image-build.sh "{image}"')
                present = state.image_tag in project.tags
                exists = present and not forced
                code = 200 if present else 404
                out(
                    rng.uniform(0.3, 1.0),
                    f"HEAD https://{self.scenario.registry_host}/v2/{project.path}/ci/manifests/{state.image_tag}"
                    f" -> {code}",
                )
                if present and forced:
                    out(0.05, f"FORCE_CI_IMAGE_REBUILD=true: rebuilding {state.image_tag} anyway")
                if exists:
                    out(0.1, f"image {state.image_tag} already exists, skipping build")
                else:
                    out(rng.uniform(60.0, 110.0), f"building {image} from Dockerfile.ci")
                    out(rng.uniform(8.0, 18.0), f"pushing {image}")
            else:
                out(0.3, f'$ docker pull "{image}" || true')
                out(rng.uniform(20.0, 35.0), f"{state.image_tag}: Pulling from {project.path}/ci")
                out(0.1, f"Status: Downloaded newer image for {image}")
                out(0.3, f'$ docker build --cache-from "{image}" -f Dockerfile.ci -t "{image}" .')
                out(rng.uniform(30.0, 60.0), "Successfully built " + _sha("build", commit.sha)[:12])
                out(0.3, f'$ docker push "{image}"')
                out(rng.uniform(15.0, 30.0), f"The push refers to repository [{image.rsplit(':', 1)[0]}]")
            if fail:
                out(
                    rng.uniform(1.0, 4.0),
                    "blob upload unknown: blob upload invalid (another push of this tag raced us)",
                )
        elif job.kind == "verify":
            out(0.3, "$ ./scripts/verify-tools.sh go golangci-lint gotestsum mise git jq")
            for tool in TOOLS:
                out(rng.uniform(0.1, 0.5), f"ok   {tool}")
            out(0.05, f"all {len(TOOLS)} tools verified")
        elif job.kind == "lint":
            out(0.3, "$ golangci-lint run ./...")
            out(rng.uniform(35.0, 70.0), "0 issues.")
        elif job.kind == "test":
            out(0.3, "$ gotestsum -- -race ./...")
            for pkg in ("internal/server", "internal/config", "internal/store", "cmd/app"):
                out(rng.uniform(15.0, 45.0), f"ok   {content.MODULE}/{pkg} {rng.uniform(0.5, 9.0):.3f}s")
            if fail:
                out(rng.uniform(2.0, 10.0), f"FAIL {content.MODULE}/internal/store (flaky: TestCompaction)")
        elif job.kind == "build":
            out(0.3, "$ go build -o bin/app ./cmd/app")
            out(rng.uniform(40.0, 90.0), "built bin/app")
        elif job.kind == "release":
            out(0.3, "$ ./scripts/release.sh")
            out(rng.uniform(15.0, 35.0), f"released app {commit.sha[:8]}")
        return lines, t + rng.uniform(0.2, 0.8)

    # -- mutations at run time ---------------------------------------------------------------------------------
    def _rng(self, *parts: object) -> random.Random:
        return random.Random(_sha(self.scenario.seed, *parts))

    def create_pipeline(  # noqa: PLR0917
        self,
        world: World,
        project: SimProject,
        ref: str,
        variables: list[dict[str, str]],
        now: float,
        user: str,
        source: str,
    ) -> SimPipeline:
        commit = world.resolve_ref(project, ref)
        if commit is None or ref not in project.heads:
            raise KeyError(ref)
        pipeline = SimPipeline(
            id=world.next_pipeline_id,
            iid=len(project.pipelines) + 1,
            project_id=project.id,
            ref=ref,
            sha=commit.sha,
            before_sha="0" * 40,
            source=source,
            created_at=_ms(now),
            user=user,
            variables=variables,
        )
        world.next_pipeline_id += 1
        project.pipelines[pipeline.id] = pipeline
        force = any(v.get("key") == "FORCE_CI_IMAGE_REBUILD" and v.get("value") == "true" for v in variables)
        if commit.sha not in self.states:
            return pipeline  # docs project: no CI model, the pipeline stays created
        self.plan_pipeline(
            world,
            project,
            pipeline,
            commit,
            self._rng("pipeline", pipeline.id),
            dockerfile_changed=False,
            force_build=force,
            history=False,
        )
        if force:
            for job in world.pipeline_jobs(project, pipeline):
                if job.kind == "image" and job.facts is not None:
                    # rebuild requested: the job really builds (no "exists" shortcut)
                    self._rerun(world, project, pipeline, job, job.pending_at or now, forced=True)
        return pipeline

    def _rerun(
        self, world: World, project: SimProject, pipeline: SimPipeline, job: SimJob, ready: float, *, forced: bool
    ) -> None:
        commit = project.commits[pipeline.sha]
        self.run_job(
            world, project, pipeline, job, commit, ready, self._rng("job", job.id), history=False, forced=forced
        )
        self._resume_after(world, project, pipeline, job)

    def _resume_after(self, world: World, project: SimProject, pipeline: SimPipeline, job: SimJob) -> None:
        """Re-plan later-stage jobs that have not run (skipped, or planned before this job's new end)."""
        order = list(STAGES)
        idx = order.index(job.stage) if job.stage in order else len(order)
        ready = (job.finished_at or 0.0) + 1.0
        commit = project.commits[pipeline.sha]
        failed = job.final_status == "failed"
        block_at = job.finished_at or 0.0
        for stage in order[idx + 1 :]:
            later = [
                j
                for j in world.pipeline_jobs(project, pipeline)
                if j.stage == stage and not j.retried and not j.manual and j.canceled_at is None
            ]
            if not later:
                continue
            end = ready
            for j in later:
                if failed:
                    j.final_status = "skipped"
                    j.skipped_at = block_at  # created until the failure is known, then skipped
                    j.pending_at = j.started_at = j.finished_at = None
                    j.facts = None
                    continue
                if j.started_at is not None and j.started_at >= ready:
                    continue  # already planned after us
                if j.final_status in ("skipped", "created") or (j.started_at or 0) < ready:
                    self.run_job(
                        world, project, pipeline, j, commit, ready, self._rng("job", j.id, ready), history=False
                    )
                end = max(end, j.finished_at or ready)
            if any(j.final_status == "failed" for j in later) and not failed:
                failed = True
                block_at = end
            ready = end + 1.0

    def retry(self, world: World, project: SimProject, job: SimJob, now: float, user: str) -> SimJob:
        pipeline = project.pipelines[job.pipeline_id]
        new = self._new_attempt(world, project, pipeline, job, now)
        new.user = user
        new.manual = False
        self._rerun(world, project, pipeline, new, now + 0.5, forced=False)
        return new

    def play(self, world: World, project: SimProject, job: SimJob, now: float, user: str) -> SimJob:
        pipeline = project.pipelines[job.pipeline_id]
        job.user = user
        job.played = True
        self._rerun(world, project, pipeline, job, now + 0.5, forced=False)
        return job


# ---------------------------------------------------------------------------------------------------------------
# the generator
# ---------------------------------------------------------------------------------------------------------------


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
        sha = _sha(self.world.scenario.seed, parent, ref, at, title, changed)
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
    t0 = sc.start.timestamp()
    project = SimProject(
        id=sc.project_id,
        path=sc.project_path,
        name=sc.project_path.rsplit("/", 1)[-1],
        description="The platform team's Go service (simulated).",
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
    if sc.with_docs_project:
        _build_docs_project(world, rng)
    world.truth = _truth(world, project, planner, repo, migration_sha, baseline_tag, states["main"].image_tag)
    if sc.hostile_strings:
        from cidash.sim import hostile_strings

        hostile_strings.apply(world)
    return world


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
