"""Small builders of cidash models for the metrics, criteria, compare and export tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from cidash.config import Config
from cidash.dataset import load_dataset
from cidash.metrics import Dataset, JobCacheConfig
from cidash.models import CacheEvent, FileChecksum, ImageRef, ImageTag, Job, Pipeline, Project, Section, TraceFacts
from cidash.snapshot import Snapshot
from cidash.store import Store

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
PROJECT = Project(id=1, path="platform/app", web_url="https://gitlab.example.com/platform/app", default_branch="main")
IMAGE = "registry.example.com/platform/app/ci"
OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64


def pipeline(
    pid: int,
    at: datetime,
    *,
    ref: str = "main",
    sha: str | None = None,
    status: str = "success",
    duration: float | None = 300.0,
    queued: float | None = 5.0,
) -> Pipeline:
    return Pipeline(
        project_id=1,
        id=pid,
        iid=pid,
        ref=ref,
        sha=sha or f"{pid:040x}",
        status=status,
        source="push",
        created_at=at,
        updated_at=at,
        started_at=at,
        finished_at=at + timedelta(seconds=duration or 0),
        duration=duration,
        queued_duration=queued,
    )


def job(
    jid: int,
    p: Pipeline,
    name: str = "test",
    *,
    status: str = "success",
    start: float = 10.0,
    duration: float = 60.0,
    retried: bool = False,
    failure_reason: str | None = None,
    created: float = 0.0,
) -> Job:
    started = p.created_at + timedelta(seconds=start)
    return Job(
        project_id=1,
        id=jid,
        pipeline_id=p.id,
        name=name,
        stage="test",
        status=status,
        ref=p.ref,
        sha=p.sha,
        created_at=p.created_at + timedelta(seconds=created),
        started_at=started,
        finished_at=started + timedelta(seconds=duration),
        duration=duration,
        queued_duration=start,
        failure_reason=failure_reason,
        retried=retried,
    )


def facts(
    startup: float | None = 20.0,
    *,
    digest: str | None = None,
    image: str = IMAGE,
    cache: Sequence[CacheEvent] = (),
    phases: dict[str, float] | None = None,
) -> TraceFacts:
    sections: list[Section] = []
    t = 1_000_000.0
    for name, secs in (phases or {}).items():
        sections.append(Section(name, t, t + secs, secs))
        t += secs
    ref = ImageRef(f"{image}:latest", "sha256:" + "f" * 64, f"{image}@{digest}", None) if digest else None
    return TraceFacts("19.1.0", "docker", False, tuple(sections), startup, ref, tuple(cache))


def restore(key: str, outcome: str = "hit", detail: str | None = None) -> CacheEvent:
    return CacheEvent("restore", key, outcome, detail)  # type: ignore[arg-type]


def archive(key: str, outcome: str = "created") -> CacheEvent:
    return CacheEvent("archive", key, outcome)  # type: ignore[arg-type]


def checksums(sha: str, files: dict[str, str]) -> list[FileChecksum]:
    return [FileChecksum(1, sha, path, f"blob-{digest}", None, digest) for path, digest in files.items()]


def tag(name: str, digest: str, size: int, at: datetime) -> ImageTag:
    return ImageTag(1, "platform/app/ci", name, digest, size, at)


@dataclass
class Builder:
    """Collects models and hands out a Dataset."""

    pipelines: list[Pipeline] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    facts: dict[int, TraceFacts] = field(default_factory=dict)
    tags: list[ImageTag] = field(default_factory=list)
    sums: list[FileChecksum] = field(default_factory=list)
    caches: list[JobCacheConfig] = field(default_factory=list)
    config_known: bool = False
    _next_job: int = 1000

    def add_pipeline(self, p: Pipeline) -> Pipeline:
        self.pipelines.append(p)
        return p

    def add_job(self, p: Pipeline, name: str = "test", f: TraceFacts | None = None, **kw: object) -> Job:
        self._next_job += 1
        j = job(self._next_job, p, name, **kw)  # type: ignore[arg-type]
        self.jobs.append(j)
        if f is not None:
            self.facts[j.id] = f
        return j

    def add_checksums(self, items: Iterable[FileChecksum]) -> None:
        self.sums.extend(items)

    def dataset(self) -> Dataset:
        return Dataset(
            project=PROJECT,
            pipelines=tuple(self.pipelines),
            jobs=tuple(self.jobs),
            facts=dict(self.facts),
            image_tags=tuple(self.tags),
            checksums=tuple(self.sums),
            ci_caches=tuple(self.caches),
            ci_config_ref="main",
            ci_config_sha="c" * 40 if self.config_known else None,
            ci_config_known=self.config_known,
        )


def migration_story(
    *,
    days_before: int = 10,
    days_after: int = 10,
    per_day: int = 3,
    old_startup: float = 60.0,
    new_startup: float = 30.0,
    build_failures_before: int = 1,
) -> Builder:
    """A small hand-made before/after world: image OLD (807 MB) then NEW (215 MB) from day ``days_before``.

    Before: restore key ``0-default-protected`` (stale), start-ups around ``old_startup``. After: key from
    files, start-ups around ``new_startup``. One ``build-ci-image`` per day, ``build_failures_before`` failing
    first attempts before the migration (retried successfully).
    """
    b = Builder(config_known=True)
    b.tags.append(tag("debian", OLD, 807_000_000, T0 - timedelta(days=1)))
    b.tags.append(tag("alpine", NEW, 215_000_000, T0 + timedelta(days=days_before) - timedelta(hours=2)))
    pid = 100
    failures = build_failures_before
    for day in range(days_before + days_after):
        after = day >= days_before
        digest = NEW if after else OLD
        for k in range(per_day):
            pid += 1
            at = T0 + timedelta(days=day, hours=k)
            go_sum = f"gosum-{day}"  # changes every day
            p = b.add_pipeline(pipeline(pid, at))
            b.add_checksums(checksums(p.sha, {"go.sum": go_sum, "go.mod": "gomod-1"}))
            key = f"0-{go_sum}-protected" if after else "0-default-protected"
            jitter = (k - per_day // 2) * 1.5
            startup = (new_startup if after else old_startup) + jitter
            for name in ("test", "lint"):
                b.add_job(
                    p,
                    name,
                    facts(startup, digest=digest, cache=[restore(key), archive(key, "up_to_date")]),
                    start=5.0 + k,
                )
            if k == 0:
                if not after and failures > 0:
                    failures -= 1
                    b.add_job(
                        p,
                        "build-ci-image",
                        facts(None, digest=None),
                        status="failed",
                        failure_reason="script_failure",
                        retried=True,
                    )
                b.add_job(p, "build-ci-image", facts(None, digest=None), created=1.0)
                b.add_job(p, "verify-ci-image", facts(startup, digest=digest))
    b.caches.append(JobCacheConfig("test", 0, "0-{files: .cache-key}", 1, "pull-push", "cache-writers"))
    b.caches.append(JobCacheConfig("lint", 0, "0-{files: .cache-key}", 1, "pull", None))
    return b


# ---------------------------------------------------------------------------------------------------------------
# The simulator, synced into a store once per test session (import the fixture into a test module to use it)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncedWorld:
    db: str
    truth: object  # cidash.sim.Truth
    scenario: object  # cidash.sim.Scenario
    now: datetime
    config_file: str


@pytest.fixture(scope="session")
def synced_world(tmp_path_factory: pytest.TempPathFactory) -> SyncedWorld:
    """A small migration scenario (12 days, 5 pipelines a day, migration on day 6) synced over real HTTP."""
    from cidash.config import Config
    from cidash.connection import Connection, Secret
    from cidash.remote import GitLabClient
    from cidash.sim import Scenario, SimulatedGitLab
    from cidash.store import Store
    from cidash.sync import SyncOptions, sync_project

    base = tmp_path_factory.mktemp("synced-world")
    db = base / "cidash.db"
    config_file = base / "cidash.toml"
    config_file.write_text("[criteria]\nwindow_days = 30\n", encoding="utf-8")
    scenario = Scenario(days=12, pipelines_per_day=5, migration_day=6)
    now = scenario.end
    with SimulatedGitLab(scenario=scenario) as sim:
        conn = Connection(url=sim.url, token=Secret(sim.token), projects=(sim.project_path,), max_rps=10_000.0)
        with Store.open(db) as store, GitLabClient(conn) as client:
            sync_project(
                client,
                store,
                sim.project_path,
                options=SyncOptions.from_config(Config(), since="all", now=now),
                now=now,
            )
        truth = sim.truth
    return SyncedWorld(str(db), truth, scenario, now, str(config_file))


def every_section_snapshot(
    store: Store, config: Config, project: Project, now: datetime, *, as_of: bool = True
) -> Snapshot:
    """The whole history (as of ``now`` unless ``as_of`` is false) with every runner section of every log kept
    as the store has it (:func:`cidash.dataset.load_dataset` without spans): the reference the snapshot's loads
    are held equal to (they sum each job's start-up phases and keep only the cache-upload sections)."""
    ds = load_dataset(store, project, config_ref=config.criteria.ref, as_of=now if as_of else None)
    assert ds.phases_by_job is None
    return Snapshot(project, now, config, ds, store.last_sync(project.id), as_of=as_of, store=store)
