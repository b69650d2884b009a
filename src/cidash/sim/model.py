"""The simulated world's parameters and ground truth: :class:`Scenario`, :class:`Truth`, the runner fleet.

The bottom of the simulator: plain values, no world. :mod:`cidash.sim.world` holds the state they describe,
:mod:`cidash.sim.planner` plans jobs from them, :mod:`cidash.sim.scenario` and :mod:`cidash.sim.group` generate
worlds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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
