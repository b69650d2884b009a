"""The sync's own queries stay cheap as the store grows: no full scan inside the per-batch loops (issue 15).

A first sync and an idle refresh run against the simulator with every statement traced; each statement's
``EXPLAIN QUERY PLAN`` must reach the jobs and pipelines tables through the primary key or an index narrower
than "all of this project's rows". The few statements that read a whole project once per sync are listed with
the reason they are allowed.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from cidash.config import Config
from cidash.connection import Connection, Secret
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
)

# (Each pattern below is a statement shape the sync used to run per batch or per refresh over the whole history.)

HISTORY = r"(jobs|pipelines|job_facts|job_sections|cache_events)"
#: A read of a whole history table, or of all of one project's rows through a non-partial index. (The partial
#: indexes ``jobs_logs_due`` and ``pipelines_jobs_due`` hold only the rows still due, so they are narrow.)
WIDE = re.compile(
    rf"^(SCAN (?!CONSTANT)\w+"
    rf"|SEARCH \w+ USING (COVERING )?INDEX (?!jobs_logs_due|pipelines_jobs_due){HISTORY}_\w+ \(project_id=\?\)$)"
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
