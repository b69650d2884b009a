"""The SQLite store: schema, round trips, migrations, errors, retention."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest

from cidash.config import Config
from cidash.connection import Connection, Secret
from cidash.errors import StoreError
from cidash.logparse import phase_durations
from cidash.models import (
    AuditRecord,
    CacheEvent,
    CiConfig,
    FileChecksum,
    ImageRef,
    ImageTag,
    Job,
    Pipeline,
    Project,
    ResourceGroup,
    Section,
    TraceFacts,
)
from cidash.remote import GitLabClient
from cidash.sim import SimulatedGitLab
from cidash.store import MIGRATIONS, SCHEMA_VERSION, Store
from cidash.sync import SyncOptions, sync_project
from store_support import V7_IMAGE_INDEX, V9_COLUMNS, V10_COLUMNS, V11_INDEXES, as_version_8, as_version_9

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 12, 1, tzinfo=UTC)


def pipeline(pid: int, *, days: int = 0, status: str = "success", ref: str = "main", sha: str = "a" * 40) -> Pipeline:
    created = T0 + timedelta(days=days)
    return Pipeline(
        project_id=1,
        id=pid,
        iid=pid,
        ref=ref,
        sha=sha,
        status=status,
        source="push",
        created_at=created,
        updated_at=created + timedelta(minutes=5),
        started_at=created + timedelta(seconds=3),
        finished_at=created + timedelta(minutes=5),
        duration=297.0,
        queued_duration=3.0,
        web_url=f"https://gl/p/-/pipelines/{pid}",
    )


def job(jid: int, pid: int, *, name: str = "build", days: int = 0, retried: bool = False) -> Job:
    created = T0 + timedelta(days=days)
    return Job(
        project_id=1,
        id=jid,
        pipeline_id=pid,
        name=name,
        stage="build",
        status="success",
        ref="main",
        sha="a" * 40,
        created_at=created,
        started_at=created + timedelta(seconds=10),
        finished_at=created + timedelta(seconds=70),
        duration=60.0,
        queued_duration=10.0,
        failure_reason=None,
        allow_failure=False,
        retried=retried,
        runner="docker-1",
    )


FACTS = TraceFacts(
    runner_version="19.1.0",
    executor="docker",
    truncated=False,
    sections=(
        Section("prepare_executor", 100.0, 104.0, 4.0),
        Section("prepare_script", 104.0, 105.0, 1.0),
        Section("get_sources", 105.0, 107.0, 2.0),
        Section("restore_cache", 107.0, 110.0, 3.0),
        Section("step_script", 110.0, 150.0, 40.0),
        Section("archive_cache", 150.0, None, None),
    ),
    startup_seconds=10.0,
    image=ImageRef("registry/p/ci:1", "sha256:abc", "registry/p/ci@sha256:def", True),
    cache=(CacheEvent("restore", "0-abc-protected", "hit"), CacheEvent("archive", "0-abc-protected", "up_to_date")),
)


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    """Every test taking ``store`` runs twice: on an SQLite file and on a real PostgreSQL server."""
    s = Store.open(store_target)
    s.upsert_project(Project(1, "g/p", "https://gl/g/p", "main"))
    yield s
    s.close()


def test_schema_version_wal_and_migrations_table(store: Store) -> None:
    assert store.schema_version == SCHEMA_VERSION
    conn = store.connection
    if store.backend == "sqlite":
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
        table_sql = "SELECT name FROM sqlite_master WHERE type='table'"
    else:
        table_sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")] == [
        number for number, _, _ in MIGRATIONS
    ]
    tables = {r[0] for r in conn.execute(table_sql).fetchall()}
    for t in (
        "projects",
        "pipelines",
        "jobs",
        "job_facts",
        "cache_events",
        "image_tags",
        "file_checksums",
        "ci_configs",
        "resource_groups",
        "sync_state",
        "audit",
        "job_sections",
        "sync_runs",
    ):
        assert t in tables


def test_pipeline_and_job_round_trip_and_filters(store: Store) -> None:
    store.upsert_pipelines([pipeline(10), pipeline(11, days=1, status="failed", ref="dev"), pipeline(12, days=2)])
    store.upsert_jobs([job(100, 10), job(101, 10, retried=True), job(102, 11, name="test", days=1)])
    assert store.pipelines(1)[0] == pipeline(10)
    assert [p.id for p in store.pipelines(1, ref="dev")] == [11]
    assert [p.id for p in store.pipelines(1, status="success")] == [10, 12]
    assert [p.id for p in store.pipelines(1, since=T0 + timedelta(days=1))] == [11, 12]
    assert [p.id for p in store.pipelines(1, until=T0 + timedelta(days=1))] == [10]
    assert [p.id for p in store.pipelines(1, limit=2)] == [11, 12]
    assert store.jobs(1, pipeline_id=10)[0] == job(100, 10)
    assert [j.id for j in store.jobs(1, include_retried=False)] == [100, 102]
    assert [j.id for j in store.jobs(1, name_glob="te*")] == [102]
    # update in place
    store.upsert_pipelines([pipeline(12, days=2, status="canceled")])
    assert store.pipeline(12) is not None and store.pipeline(12).status == "canceled"  # type: ignore[union-attr]
    assert len(store.pipelines(1)) == 3


def test_job_facts_round_trip_with_phases(store: Store) -> None:
    store.upsert_pipelines([pipeline(10)])
    store.upsert_jobs([job(100, 10), job(101, 10)])
    store.save_job_facts(100, FACTS, log_bytes=1234, phases=phase_durations(FACTS))
    assert store.job_facts([100, 101]) == {100: FACTS}
    stored = store.stored_job_facts([100])[100]
    assert stored.prepare_seconds == 5.0 and stored.sources_seconds == 2.0 and stored.cache_seconds == 3.0
    assert stored.script_seconds == 40.0 and stored.upload_seconds is None and stored.log_bytes == 1234
    assert [j.id for j in store.jobs_needing_logs(1)] == [101]
    events = store.cache_events(1, key="0-abc-protected")
    assert [(e.job_id, e.seq, e.op, e.outcome) for e in events] == [
        (100, 0, "restore", "hit"),
        (100, 1, "archive", "up_to_date"),
    ]
    # re-saving replaces, never duplicates
    store.save_job_facts(100, FACTS)
    assert len(store.cache_events(1)) == 2


def test_save_many_job_facts_matches_one_by_one(store: Store, tmp_path: Path) -> None:
    other = Store.open(tmp_path / "one-by-one.db")
    other.upsert_project(Project(1, "g/p", "https://gl/g/p", "main"))
    other_facts = TraceFacts("16.0", "docker", True, FACTS.sections[:1], None, None, FACTS.cache[:1])
    for s in (store, other):
        s.upsert_pipelines([pipeline(10)])
        s.upsert_jobs([job(100, 10), job(101, 10), job(102, 10)])
    phases = {100: phase_durations(FACTS), 101: phase_durations(other_facts)}
    store.save_many_job_facts([(100, FACTS, 10), (101, other_facts, 20)], parsed_at=T0, phases=phases)
    other.save_job_facts(100, FACTS, log_bytes=10, parsed_at=T0, phases=phases[100])
    other.save_job_facts(101, other_facts, log_bytes=20, parsed_at=T0, phases=phases[101])
    ids = [100, 101, 102]
    assert store.job_facts(ids) == other.job_facts(ids) == {100: FACTS, 101: other_facts}
    assert store.stored_job_facts(ids) == other.stored_job_facts(ids)
    assert store.cache_events(1) == other.cache_events(1)
    assert [j.id for j in store.jobs_needing_logs(1)] == [102]
    # a batch that repeats a job keeps its last facts; re-saving replaces, never duplicates
    store.save_many_job_facts([(100, other_facts, 1), (100, FACTS, 2)], project_id=1)
    assert store.job_facts([100]) == {100: FACTS} and store.stored_job_facts([100])[100].log_bytes == 2
    assert len(store.cache_events(1)) == len(FACTS.cache) + len(other_facts.cache)
    with pytest.raises(StoreError, match="job 999 is not in the store"):
        store.save_many_job_facts([(102, FACTS, 1), (999, FACTS, 1)])
    assert [j.id for j in store.jobs_needing_logs(1)] == [102]  # the failed batch wrote nothing
    other.close()


def test_phase_columns_are_what_the_caller_computed(store: Store) -> None:
    """The store stores the phases it is given (it never parses a log): a phase left out, or no phases, is NULL."""
    store.upsert_pipelines([pipeline(10)])
    store.upsert_jobs([job(100, 10), job(101, 10)])
    store.save_many_job_facts([(100, FACTS, 1), (101, FACTS, 1)], phases={100: {"script": 5.0, "upload": 1.0}})
    stored = store.stored_job_facts([100, 101])
    assert (stored[100].script_seconds, stored[100].upload_seconds, stored[100].prepare_seconds) == (5.0, 1.0, None)
    assert stored[101].script_seconds is None and stored[101].facts == FACTS


def test_sync_stores_the_phases_logparse_sums(tmp_path: Path, small_sim: SimulatedGitLab) -> None:
    """The sync computes the phase columns with :func:`cidash.logparse.phase_durations` (the store does not)."""
    conn = Connection(url=small_sim.url, token=Secret(small_sim.token), max_rps=0, concurrency=2)
    with Store.open(tmp_path / "s.db") as s, GitLabClient(conn) as client:
        options = SyncOptions.from_config(Config(), since="all", now=T1)
        sync_project(client, s, small_sim.project_path, options=options, now=T1)
        ids = [j.id for j in s.jobs()]
        stored = s.stored_job_facts(ids)
    assert stored and any(f.script_seconds for f in stored.values())
    for f in stored.values():
        sums = phase_durations(f.facts)
        got = {
            "prepare": f.prepare_seconds,
            "sources": f.sources_seconds,
            "cache": f.cache_seconds,
            "artifacts": f.artifacts_seconds,
            "script": f.script_seconds,
            "upload": f.upload_seconds,
        }
        assert {k: v for k, v in got.items() if v is not None} == sums


def test_image_tag_history(store: Store) -> None:
    tag = ImageTag(1, "g/p/ci", "latest", "sha256:1", 800_000_000, T0, None)
    store.upsert_image_tags([tag], seen_at=T0)
    store.upsert_image_tags([tag], seen_at=T0 + timedelta(days=1))
    new = ImageTag(1, "g/p/ci", "latest", "sha256:2", 215_000_000, T0 + timedelta(days=2), None)
    store.upsert_image_tags([new], seen_at=T0 + timedelta(days=2))
    history = store.image_tags(1)
    assert [(h.tag.digest, h.first_seen, h.last_seen) for h in history] == [
        ("sha256:1", T0, T0 + timedelta(days=1)),
        ("sha256:2", T0 + timedelta(days=2), T0 + timedelta(days=2)),
    ]
    assert [h.tag.digest for h in store.image_tags(1, current_only=True)] == ["sha256:2"]
    store.upsert_image_tags([ImageTag(1, "g/p/ci", "multi", None, None, None)], seen_at=T0)
    assert store.image_tags(1, tag="multi")[0].tag.digest is None


def test_checksums_configs_groups_cursors_audit(store: Store) -> None:
    store.save_file_checksums(
        [FileChecksum(1, "s1", "go.mod", "b1", "c1", "h1"), FileChecksum(1, "s1", "x", None, None, None)]
    )
    assert store.checksummed_shas(1) == {"s1"}
    assert store.file_checksums(1, sha="s1", path="x")[0].blob_id is None
    store.upsert_pipelines([pipeline(10, sha="s1")])
    store.save_ci_config(CiConfig(1, "s1", ".gitlab-ci.yml", "main", "stages: [build]\n"))
    latest = store.latest_ci_config(1, "main")
    assert latest is not None and latest.content == "stages: [build]\n"
    store.replace_resource_groups(1, [ResourceGroup(1, "cache", "unordered")])
    store.replace_resource_groups(1, [ResourceGroup(1, "cache2", "oldest_first")])
    assert [g.key for g in store.resource_groups(1)] == ["cache2"]
    assert store.last_sync(1) is None
    store.set_cursor(1, "last_sync", "2026-05-01T12:00:00.000000Z")
    assert store.last_sync(1) == T0
    rec = AuditRecord(T0, "me", "g/p", "retry", "job 5", "POST /x", "ok", dry_run=True, extra={"a": "b"})
    store.add_audit(rec)
    assert store.audit() == [rec]


def test_transaction_rolls_back_everything(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.upsert_pipelines([pipeline(10)])
        store.set_cursor(1, "pipelines", "x")
        raise RuntimeError("boom")
    assert store.pipelines(1) == [] and store.cursor(1, "pipelines") is None


def test_prune(store: Store) -> None:
    store.upsert_pipelines([pipeline(10, sha="old"), pipeline(11, days=10, sha="new")])
    store.upsert_jobs([job(100, 10), job(110, 11, days=10)])
    store.save_job_facts(100, FACTS)
    store.save_file_checksums([FileChecksum(1, "old", "f", "b", "c", "h"), FileChecksum(1, "new", "f", "b", "c", "h")])
    cutoff = T0 + timedelta(days=5)
    dry = store.prune(cutoff, dry_run=True)
    assert dry["pipelines"] == 1 and dry["jobs"] == 1 and dry["cache_events"] == 2
    assert len(store.pipelines(1)) == 2
    done = store.prune(cutoff)
    assert done == dry
    assert [p.id for p in store.pipelines(1)] == [11]
    assert store.job_facts([100]) == {} and store.cache_events(1) == []
    assert store.checksummed_shas(1) == {"new"}


def test_uncounted_ids_count_each_item_once_across_prune_and_resync(store: Store) -> None:
    """Counted items are flagged and skipped; a pruned item synced again is not counted twice, and the next look
    no longer reads it (it is flagged the first time it is seen)."""
    store.upsert_pipelines([pipeline(10), pipeline(11, days=10)])
    store.upsert_jobs([job(100, 10), job(110, 11, days=10)])
    store.save_many_job_facts([(100, FACTS, 1), (110, FACTS, 1)])
    kinds = ("pipeline", "job", "log")
    assert [store.uncounted_ids(1, k) for k in kinds] == [[10, 11], [100, 110], [100, 110]]
    store.add_metric_totals(1, {}, [("pipeline", 10), ("job", 100), ("log", 100)])
    assert [store.uncounted_ids(1, k) for k in kinds] == [[11], [110], [110]]
    store.prune(T0 + timedelta(days=5))  # pipeline 10 and its job go; metric_counted keeps them
    store.upsert_pipelines([pipeline(10)])  # ... and a later sync brings them back
    store.upsert_jobs([job(100, 10)])
    store.save_many_job_facts([(100, FACTS, 1)])
    assert [store.uncounted_ids(1, k) for k in kinds] == [[11], [110], [110]]
    unflagged = "SELECT count(*) FROM {} WHERE counted IS NULL"
    assert [store.read(unflagged.format(t))[0][0] for t in ("pipelines", "jobs", "job_facts")] == [1, 1, 1]
    with pytest.raises(ValueError, match="unknown kind"):
        store.uncounted_ids(1, "artifact")


def test_migration_6_flags_what_was_counted(tmp_path: Path) -> None:
    """A version-5 store with running totals opens with its counted items flagged: none is counted again."""
    path = tmp_path / "v5.db"
    conn = sqlite3.connect(path)
    for _, _, sql in MIGRATIONS[:5]:
        conn.executescript(sql)
    conn.execute("PRAGMA user_version = 5")
    for pid, status in ((10, "success"), (11, "failed")):
        conn.execute(
            "INSERT INTO pipelines (id, project_id, ref, sha, status, created_at, updated_at, finished_at, synced_at) "
            "VALUES (?, 1, 'main', 'a', ?, 't', 't', 't', 't')",
            (pid, status),
        )
    conn.execute("INSERT INTO metric_counted (project_id, kind, item_id) VALUES (1, 'pipeline', 10)")
    conn.commit()
    conn.close()
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION >= 6
        assert store.read("SELECT id, counted FROM pipelines ORDER BY id") == [(10, 1), (11, None)]
        assert store.uncounted_ids(1, "pipeline") == [11]


def test_corrupt_file_gives_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="corrupt"):
        Store.open(bad)


def test_newer_schema_gives_store_error(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(path)


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE x (a)")
    conn.close()
    with pytest.raises(StoreError, match="not a cidash store"):
        Store.open(path)


def test_locked_too_long_gives_store_error(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    Store.open(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with Store.open(path, timeout=0.2) as s, pytest.raises(StoreError, match="locked"):
            s.set_cursor(1, "x", "y")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_readonly_open(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(path, readonly=True)
    with Store.open(path) as s:
        s.upsert_project(Project(1, "g/p", "u"))
    with Store.open(path, readonly=True) as ro:
        assert [p.path for p in ro.projects()] == ["g/p"]
        with pytest.raises(StoreError):
            ro.set_cursor(1, "a", "b")


def test_instance_version_migration_and_reads(tmp_path: Path) -> None:
    """A version-1 store gains the instance_versions table; the version is per project, and the store-wide
    answer exists only while every recorded project agrees."""
    from cidash.store import MIGRATIONS

    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0][2])
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    at = datetime(2026, 12, 1, tzinfo=UTC)
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION and store.instance_version() is None
        store.set_instance_version(1, "18.6.0", "2b1c0f3a9e1", at)
        store.set_instance_version(2, None, None, at)  # a 403: unknown
        assert store.instance_version(1) == "18.6.0" and store.instance_version(2) is None
        assert store.instance_version() == "18.6.0"
        store.set_instance_version(3, "17.11.2", None, at)
        assert store.instance_version() is None  # two instances disagree: no single answer


def test_migration_7_indexes_the_images_the_logs_named(tmp_path: Path) -> None:
    """The images a project's logs named are read from the job_facts_image_runs index, not from every row."""
    path = tmp_path / "images.db"
    with Store.open(path) as store:
        plan = " ".join(
            str(r[-1])
            for r in store.read(
                "EXPLAIN QUERY PLAN SELECT DISTINCT image_name, image_digest FROM job_facts "
                "WHERE project_id = ? AND image_name IS NOT NULL AND image_digest IS NOT NULL",
                [1],
            )
        )
    assert "COVERING INDEX job_facts_image_runs" in plan, plan


def test_migration_11_seeks_a_digests_first_and_last_job_of_a_ref(tmp_path: Path) -> None:
    """The CI image's history reads each (name, digest)'s first and last job of a ref by one seek each in the
    job_facts_image_runs index (cidash.queries._digest_runs), in start order, without a sort."""
    from cidash import queries

    with Store.open(tmp_path / "runs.db") as store:
        with mock.patch.object(store, "read", wraps=store.read) as read:
            store.image_names_and_digests = lambda _p: [("ci:1", "sha256:" + "a" * 64)]  # type: ignore[method-assign]
            queries._digest_runs(store, 1, "main", None, names=["ci:1"], digests=["sha256:" + "a" * 64])
        (sql, params), _ = read.call_args
        plan = " ".join(str(r[-1]) for r in store.read("EXPLAIN QUERY PLAN " + sql, params))
    assert plan.count("COVERING INDEX job_facts_image_runs") == 2 and "TEMP B-TREE" not in plan, plan


def _copies(store: Store) -> dict[int, tuple[object, ...]]:
    rows = store.read("SELECT job_id, pipeline_ref, job_started_at, visible_at FROM job_facts ORDER BY job_id")
    return {r[0]: tuple(r[1:]) for r in rows}


def _expected_copies(store: Store) -> dict[int, tuple[object, ...]]:
    """What schema version 8's copies must hold, computed here from the job and pipeline rows."""
    out: dict[int, tuple[object, ...]] = {}
    for job_id, ref, started, p_created, j_created, finished in store.read(
        "SELECT f.job_id, p.ref, j.started_at, p.created_at, j.created_at, j.finished_at FROM job_facts f "
        "JOIN jobs j ON j.id = f.job_id JOIN pipelines p ON p.id = j.pipeline_id ORDER BY f.job_id"
    ):
        out[job_id] = (ref, started, max(t for t in (p_created, j_created, finished) if t is not None))
    return out


def test_job_facts_keep_their_jobs_ref_start_and_entry_in_the_history(store: Store) -> None:
    """Schema version 8: the copies beside a job's facts follow every write of the facts, the job and its
    pipeline, whatever their order (the facts first too: their copies stay NULL until the job is stored)."""
    store.save_job_facts(21, FACTS, project_id=1)  # facts before their job and pipeline
    assert _copies(store) == {21: (None, None, None)}
    store.upsert_jobs([job(20, 2, days=1), job(21, 2, days=1)])
    assert _copies(store) == {21: (None, None, None)}  # no pipeline yet: no ref, no entry
    store.upsert_pipelines([pipeline(2, days=2, ref="feature/x")])  # created after its jobs (as the sync can see)
    store.save_job_facts(20, FACTS, project_id=1)
    assert _copies(store) == _expected_copies(store)
    assert _copies(store)[20][0] == "feature/x"
    assert str(_copies(store)[20][2]).startswith("2026-05-03")  # the pipeline's creation, the latest of the three
    rerun = job(21, 2, days=5)  # ran again under the same id: its start and end moved
    store.upsert_jobs([rerun])
    assert _copies(store) == _expected_copies(store)
    assert str(_copies(store)[21][1]).startswith("2026-05-06")  # started 5 days after T0, after the pipeline
    store.upsert_pipelines([pipeline(2, days=2, ref="feature/y")])
    assert {c[0] for c in _copies(store).values()} == {"feature/y"}
    assert _copies(store) == _expected_copies(store)


def test_migration_8_fills_the_copies_of_existing_facts(tmp_path: Path) -> None:
    """A version-7 store with parsed logs opens with each log's job copies filled from its rows, and the
    digest-change index in place."""
    path = tmp_path / "v7.db"
    with Store.open(path) as store:
        store.upsert_project(Project(1, "g/p", "https://gl/g/p", "main"))
        store.upsert_pipelines([pipeline(1), pipeline(2, days=1, ref="feature/x")])
        store.upsert_jobs([job(10, 1), job(11, 2, days=1), job(12, 2, days=3)])
        store.save_many_job_facts([(10, FACTS, None), (11, FACTS, None), (12, FACTS, None)], project_id=1)
    conn = sqlite3.connect(path)
    for index in ("job_facts_image_order", *V11_INDEXES):
        conn.execute(f"DROP INDEX {index}")
    conn.execute(V7_IMAGE_INDEX)
    for column in ("pipeline_ref", "job_started_at", "visible_at", *V9_COLUMNS, *V10_COLUMNS):
        conn.execute(f"ALTER TABLE job_facts DROP COLUMN {column}")
    conn.execute("DELETE FROM schema_migrations WHERE version >= 8")
    conn.execute("PRAGMA user_version = 7")
    conn.commit()
    conn.close()
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION >= 8
        got = _copies(store)
        assert got == _expected_copies(store) and len(got) == 3
        assert got[12][2] == store.read("SELECT finished_at FROM jobs WHERE id = 12")[0][0]  # ended after the rest
        assert got[10][0] == "main" and got[11][0] == "feature/x"
        plan = " ".join(
            str(r[-1])
            for r in store.read(
                "EXPLAIN QUERY PLAN SELECT job_id, image_name, image_digest FROM job_facts WHERE project_id = ? "
                "AND pipeline_ref = ? AND image_name IS NOT NULL AND image_digest IS NOT NULL "
                "AND job_started_at IS NOT NULL AND visible_at <= ? ORDER BY job_started_at, job_id",
                [1, "main", "x"],
            )
        )
    assert "COVERING INDEX job_facts_image_order" in plan and "TEMP B-TREE" not in plan, plan


#: Start-up sections whose per-phase sums depend on the order they are added in (0.1 + 0.2 + 0.3 is not
#: 0.3 + 0.2 + 0.1 in floats), an unclosed one, a user section named like none, and a lone artifacts phase.
ODD_FACTS = replace(
    FACTS,
    sections=(
        Section("resolve_secrets", 0.0, 0.1, 0.1),
        Section("prepare_executor", 0.1, 0.3, 0.2),
        Section("prepare_script", 0.3, 0.6, 0.30000000000000004),
        Section("get_sources", 1.0, None, None),
        Section("clear_worktree", 1.0, 1.7, 0.7),
        Section("my_user_section", 1.7, 9.0, 7.3),
        Section("restore_cache", 2.0, 3.0, 1e-9),
        Section("restore_cache", 3.0, 5.0, 2.0),
        Section("step_script", 5.0, 8.0, 3.0),
    ),
)
ONLY_ARTIFACTS = replace(FACTS, sections=(Section("download_artifacts", 0.0, 1.5, 1.5),))
NO_STARTUP = replace(FACTS, sections=(Section("step_script", 0.0, 1.0, 1.0),))


def _summed(store: Store) -> dict[int, dict[str, float] | None]:
    """The stored sums as :func:`cidash.metrics.startup_phases` gives them (None: not summed)."""
    out: dict[int, dict[str, float] | None] = {}
    for r in store.read(f"SELECT job_id, {', '.join(V9_COLUMNS)} FROM job_facts ORDER BY job_id"):
        if r[1] is None:
            out[r[0]] = None
            continue
        phases = dict(zip(("prepare", "sources", "cache", "artifacts"), r[2:], strict=True))
        out[r[0]] = {k: v for k, v in phases.items() if v is not None}
    return out


def test_the_store_sums_each_logs_start_up_phases_as_the_metrics_do(store: Store) -> None:
    """Schema version 9: every write of a log's facts stores its start-up phases summed from its sections, the
    very floats :func:`cidash.metrics.startup_phases` adds up (log order), and a new parse replaces them."""
    from cidash.metrics import startup_phases

    store.save_many_job_facts(
        [(100, FACTS, 1), (101, ODD_FACTS, 1), (102, ONLY_ARTIFACTS, 1), (103, NO_STARTUP, 1)], project_id=1
    )
    got = _summed(store)
    for job_id, facts in ((100, FACTS), (101, ODD_FACTS), (102, ONLY_ARTIFACTS), (103, NO_STARTUP)):
        assert got[job_id] == startup_phases(facts), job_id
    assert got[101] is not None and got[101]["prepare"] == (0.0 + 0.1 + 0.2) + 0.30000000000000004
    assert got[101]["prepare"] != 0.30000000000000004 + 0.2 + 0.1  # the order is the log's
    assert got[103] == {}
    store.save_job_facts(101, ONLY_ARTIFACTS, project_id=1)  # parsed again: the old sums go
    assert _summed(store)[101] == {"artifacts": 1.5}


def test_migration_9_sums_the_phases_of_the_stored_logs(tmp_path: Path) -> None:
    """A version-8 store opens with every stored log's start-up phases summed from its sections."""
    from cidash.metrics import startup_phases

    path = tmp_path / "v8.db"
    with Store.open(path) as store:
        store.upsert_project(Project(1, "g/p", "https://gl/g/p", "main"))
        store.upsert_pipelines([pipeline(1)])
        store.upsert_jobs([job(10, 1), job(11, 1), job(12, 1), job(13, 1)])
        store.save_many_job_facts([(10, FACTS, 1), (11, ODD_FACTS, 1), (12, ONLY_ARTIFACTS, 1), (13, NO_STARTUP, 1)])
    as_version_8(path)
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION >= 9
        got = _summed(store)
    assert got == {10: startup_phases(FACTS), 11: startup_phases(ODD_FACTS), 12: {"artifacts": 1.5}, 13: {}}


def test_the_stores_start_up_sections_are_the_parsers() -> None:
    """The store's section -> start-up phase map (it may not import the parser) is the parser's, restricted to
    the start-up phases."""
    from cidash.logparse import SECTION_PHASES
    from cidash.models import STARTUP_PHASE_NAMES, STARTUP_SECTION_PHASES

    assert STARTUP_PHASE_NAMES == ("prepare", "sources", "cache", "artifacts")
    assert dict(STARTUP_SECTION_PHASES) == {n: p for n, p in SECTION_PHASES.items() if p in STARTUP_PHASE_NAMES}


#: Cache events whose keys and details a JSON text could get wrong: quotes, backslashes, control characters,
#: non-ASCII, a key that is itself JSON, an empty key and detail, and the same key twice in one log.
ODD_EVENTS = (
    CacheEvent("restore", 'q"uote\\back', "miss"),
    CacheEvent("restore", "tab\tnew\nline\x1f\x7f", "hit", "fallback"),
    CacheEvent("restore", "ünïcødé-キー-🔑", "unknown", ""),
    CacheEvent("archive", '[["restore","k","hit",null]]', "failed", "too big"),
    CacheEvent("archive", "", "created", None),
    CacheEvent("archive", "", "skipped"),
)


def _events_texts(store: Store) -> dict[int, str | None]:
    return {r[0]: r[1] for r in store.read("SELECT job_id, cache_events FROM job_facts ORDER BY job_id")}


def test_the_store_keeps_each_logs_cache_events_as_one_text(store: Store) -> None:
    """Schema version 10: every write of a log's facts stores its cache events in log order as one JSON text
    beside them (what a window's reader decodes), the same text for the same events; a new parse replaces it."""
    import json

    from cidash.store.eventstext import events_text

    store.upsert_pipelines([pipeline(1)])
    store.upsert_jobs([job(10, 1), job(11, 1), job(12, 1), job(13, 1)])
    odd = replace(FACTS, cache=ODD_EVENTS)
    store.save_many_job_facts([(10, odd, 1), (11, FACTS, 1), (12, replace(FACTS, cache=()), 1)], project_id=1)
    store.save_job_facts(13, odd, project_id=1)
    got = _events_texts(store)
    assert json.loads(got[10] or "") == [[e.op, e.key, e.outcome, e.detail] for e in ODD_EVENTS]
    assert got[13] == got[10] == events_text((e.op, e.key, e.outcome, e.detail) for e in ODD_EVENTS)
    assert json.loads(got[11] or "") == [
        ["restore", "0-abc-protected", "hit", None],
        ["archive", "0-abc-protected", "up_to_date", None],
    ]
    assert got[12] == "[]"
    # the rows the other readers use say the same
    assert [(e.op, e.key, e.outcome, e.detail) for e in store.cache_events(1, job_ids=[10])] == [
        (e.op, e.key, e.outcome, e.detail) for e in ODD_EVENTS
    ]
    store.save_job_facts(10, replace(FACTS, cache=ODD_EVENTS[:1]), project_id=1)  # parsed again
    assert json.loads(_events_texts(store)[10] or "") == [["restore", 'q"uote\\back', "miss", None]]
    # never NULL (a reader tells a job without a parsed log by it): the database refuses one
    with pytest.raises(Exception, match=r"(?i)not.null"):
        store.connection.execute("UPDATE job_facts SET cache_events = NULL WHERE job_id = 12")


def test_migration_10_writes_the_text_of_the_stored_events(tmp_path: Path) -> None:
    """A version-9 store opens with every stored log's events text written from its rows: the very text a write
    of the same facts gives (so the same events share one text), "[]" for a log without events."""
    path, fresh = tmp_path / "v9.db", tmp_path / "v10.db"
    logs = [(10, replace(FACTS, cache=ODD_EVENTS), 1), (11, FACTS, 1), (12, replace(FACTS, cache=()), 1)]
    for target in (path, fresh):
        with Store.open(target) as store:
            store.upsert_project(Project(1, "g/p", "https://gl/g/p", "main"))
            store.upsert_pipelines([pipeline(1)])
            store.upsert_jobs([job(10, 1), job(11, 1), job(12, 1), job(13, 1)])
            store.save_many_job_facts(logs)
    as_version_9(path)
    assert Store.older_schema(path) == 9
    with Store.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION >= 10
        got = _events_texts(store)
    with Store.open(fresh) as store:
        want = _events_texts(store)
    assert got == want and set(got) == {10, 11, 12} and got[12] == "[]"
