"""The sync's own queries stay cheap as the store grows: no full scan inside the per-batch loops (issue 15).

A first sync and an idle refresh run against the simulator with every statement traced; each statement's
``EXPLAIN QUERY PLAN`` must reach the jobs and pipelines tables through the primary key or an index narrower
than "all of this project's rows". The few statements that read a whole project once per sync are listed with
the reason they are allowed.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cidash.config import Config
from cidash.connection import Connection, Secret
from cidash.models import Job, Pipeline, Project, TraceFacts
from cidash.remote import GitLabClient
from cidash.sim import SimulatedGitLab
from cidash.store import Store
from cidash.sync import SyncOptions, sync_project

NOW = datetime(2026, 12, 1, tzinfo=UTC)

#: Statements allowed to read all of one project's rows, once per sync (not per batch).
ONCE_PER_SYNC = (
    "SELECT DISTINCT sha FROM pipelines WHERE project_id",  # which SHAs still need checksums: one covering-index pass
    "SELECT DISTINCT sha FROM file_checksums WHERE project_id",
    "SELECT ref, sha, max(id) FROM pipelines WHERE project_id",  # the newest SHA per ref: one covering-index pass
    "SELECT min(id) FROM jobs WHERE project_id",  # the oldest job still to re-list
    "SELECT max(id) FROM jobs WHERE project_id",  # a first sync: does the store hold any of the project's jobs?
)

# (Each pattern below is a statement shape the sync used to run per batch or per refresh over the whole history.)

HISTORY = r"(jobs|pipelines|job_facts|job_sections|cache_events)"
#: A read of a whole history table, or of all of one project's rows through a non-partial index. (The partial
#: indexes ``jobs_logs_due``, ``pipelines_jobs_due`` and the ``*_uncounted`` ones hold only the rows still due,
#: so they are narrow.)
WIDE = re.compile(
    rf"^(SCAN (?!CONSTANT)\w+"
    r"|SEARCH \w+ USING (COVERING )?INDEX (?!jobs_logs_due|pipelines_jobs_due|\w+_uncounted)"
    rf"{HISTORY}_\w+ \(project_id=\?\)$)"
)


def wide_reads(db: Path, statements: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    with sqlite3.connect(db) as con:
        for sql in statements:
            if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")):
                continue
            plan = [row[3] for row in con.execute("EXPLAIN QUERY PLAN " + sql)]
            wide = [line for line in plan if WIDE.match(line)]
            if wide and not sql.startswith(ONCE_PER_SYNC):
                found[sql[:120]] = wide
    return found


def test_sync_queries_never_scan_the_history(tmp_path: Path, small_sim: SimulatedGitLab) -> None:
    statements: list[str] = []
    conn = Connection(url=small_sim.url, token=Secret(small_sim.token), max_rps=0, concurrency=4)
    options = SyncOptions.from_config(Config(), since="all", now=NOW)
    with Store.open(tmp_path / "store.db") as store, GitLabClient(conn) as client:
        store.trace_statements(statements.append)
        sync_project(client, store, small_sim.project_path, options=options, now=NOW)
        sync_project(client, store, small_sim.project_path, options=options, now=NOW)
        store.trace_statements(None)
    assert any("retried = 1" in s for s in statements)
    assert any("log_state IS NULL" in s for s in statements)
    assert wide_reads(tmp_path / "store.db", statements) == {}


def test_the_plan_check_catches_what_the_sync_used_to_run(tmp_path: Path) -> None:
    with Store.open(tmp_path / "store.db"):
        pass
    before = [
        # recompute_retried: no project condition, so every job of every project was compared
        "UPDATE jobs SET retried = 1 WHERE pipeline_id IN (1, 2) AND EXISTS (SELECT 1 FROM jobs j2 WHERE "
        "j2.pipeline_id = jobs.pipeline_id AND j2.name = jobs.name AND j2.id > jobs.id)",
        # latest_sha_per_ref as a correlated subquery per pipeline
        "SELECT ref, sha FROM pipelines p WHERE project_id = 1 AND id = (SELECT max(id) FROM pipelines p2 "
        "WHERE p2.project_id = p.project_id AND p2.ref = p.ref)",
        # the active pipelines, walked in (project, created) order to skip a sort
        "SELECT id FROM pipelines WHERE project_id = 1 AND status IN ('running', 'pending') ORDER BY created_at DESC",
    ]
    wide = wide_reads(tmp_path / "store.db", before)
    assert len(wide) == len(before), wide


# -- the running totals' "what is not counted yet" (issue 17) ------------------------------------------------------

T0 = datetime(2026, 11, 1, tzinfo=UTC)
KINDS = ("pipeline", "job", "log")
#: kind -> the partial index (migration 6) its :meth:`Store.uncounted_ids` must go through.
UNCOUNTED_INDEX = {"pipeline": "pipelines_uncounted", "job": "jobs_uncounted", "log": "job_facts_uncounted"}


def add_history(store: Store, first: int, n: int) -> None:
    """``n`` finished pipelines from id ``first``, each with one finished job (id ``first * 10``...) and its log."""
    ids = range(first, first + n)
    store.upsert_pipelines(
        Pipeline(1, i, i, "main", "a" * 40, "success", "push", T0, T0, T0, T0, 60.0, 1.0) for i in ids
    )
    store.upsert_jobs(
        Job(1, i * 10, i, "build", "build", "success", "main", "a" * 40, T0, T0, T0, 30.0, 1.0, None, False, False)
        for i in ids
    )
    store.save_many_job_facts([(i * 10, TraceFacts(None, None, False, (), 1.0, None, ()), 10) for i in ids])


def count_everything(store: Store) -> None:
    items = [(kind, item) for kind in KINDS for item in store.uncounted_ids(1, kind)]
    store.add_metric_totals(1, {("cidash_x_total", "{}"): float(len(items))}, items, now=T0)


def uncounted_store(target: str | Path, counted: int) -> Store:
    store = Store.open(target)
    store.upsert_project(Project(1, "g/p", "https://gl/g/p", "main"))
    add_history(store, 1, counted)
    count_everything(store)
    add_history(store, counted + 1, 3)  # what changed since the last count
    return store


def test_uncounted_ids_go_through_the_partial_indexes(store_target: str) -> None:
    """On SQLite (EXPLAIN QUERY PLAN) and PostgreSQL (EXPLAIN, sequential scans priced out), each kind's question
    reads its ``*_uncounted`` partial index: only the rows not counted yet, never the project's history."""
    with uncounted_store(store_target, 200) as store:
        statements: list[str] = []
        store.trace_statements(statements.append)
        got = {kind: store.uncounted_ids(1, kind) for kind in KINDS}
        store.trace_statements(None)
        assert got == {"pipeline": [201, 202, 203], "job": [2010, 2020, 2030], "log": [2010, 2020, 2030]}
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == len(KINDS)
        conn = store.connection
        for kind, sql in zip(KINDS, selects, strict=True):
            if store.backend == "sqlite":
                plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
                assert not [line for line in plan if WIDE.match(line)], plan
            else:
                conn.execute("ANALYZE")
                conn.execute("SET enable_seqscan = off")
                plan = [row[0] for row in conn.execute("EXPLAIN " + sql, (kind, 1))]
                conn.execute("RESET enable_seqscan")
            assert any(UNCOUNTED_INDEX[kind] in line for line in plan), plan


def vm_steps(store: Store, fn: Callable[[], object]) -> int:
    """SQLite virtual-machine instructions ``fn`` runs on the store's connection."""
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1
        return 0

    store.connection.set_progress_handler(tick, 1)
    try:
        fn()
    finally:
        store.connection.set_progress_handler(None, 0)
    return steps


def test_uncounted_ids_cost_what_changed_not_the_history(tmp_path: Path) -> None:
    """Three new items after 30 or after 3,000 counted ones: the same work (the scan it replaced grew 100x)."""
    old_shape = (
        "SELECT id FROM jobs t WHERE project_id = 1 AND finished_at IS NOT NULL AND NOT EXISTS "
        "(SELECT 1 FROM metric_counted c WHERE c.kind = 'job' AND c.item_id = t.id) ORDER BY 1"
    )
    with uncounted_store(tmp_path / "small.db", 30) as small, uncounted_store(tmp_path / "big.db", 3000) as big:
        cost = {
            name: vm_steps(s, lambda s=s: [s.uncounted_ids(1, kind) for kind in KINDS])  # type: ignore[misc]
            for name, s in (("small", small), ("big", big))
        }
        before = {name: vm_steps(s, lambda s=s: s.read(old_shape)) for name, s in (("small", small), ("big", big))}
    assert before["big"] > 20 * max(before["small"], 1)  # the measure tells a history scan apart
    assert cost["big"] <= cost["small"] + 20, (cost, before)  # measured: 174 and 174 (the old shape: 553, 48,073)
