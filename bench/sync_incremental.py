"""Benchmark: file-checksum requests of incremental syncs, compare-based vs history-based, against the minimum.

    .venv/bin/python bench/sync_incremental.py

The demo scenario (30 days, ~12 pipelines a day) with the clock 3 days before its end: a first sync, then syncs
through a working day (every 2 hours from 08:00) and two daily ones. Counted by the simulator: the requests of the
checksum step (``repository/compare``, ``repository/commits``, ``HEAD repository/files``) for the new pipeline
SHAs, with cidash as it is (a compare per new SHA of an already checksummed ref) and with the compare step turned
off (the path-filtered history per ref, which the first sync uses). The minimum is one HEAD per version of a
critical file (path, last commit that changed it) not seen at an earlier SHA. Logs and registry are not fetched.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cidash.sync as sync
import cidash.sync.repository as sync_repository
from cidash.config import Config
from cidash.connection import Connection, Secret
from cidash.remote import GitLabClient
from cidash.sim import Scenario, SimulatedGitLab
from cidash.store import Store

NOW = datetime(2026, 12, 1, tzinfo=UTC)
STEPS_HOURS = (8, 2, 2, 2, 2, 2, 2, 24, 24)


def run(use_compare: bool) -> dict[str, int]:
    original = sync_repository._checksums_from_compare
    if not use_compare:
        sync_repository._checksums_from_compare = lambda *a, **k: None  # type: ignore[assignment]
    try:
        scenario = Scenario(days=30, migration_day=16, with_docs_project=False)
        base = sync.SyncOptions.from_config(Config(), since="all", now=NOW)
        options = sync.SyncOptions(**{**base.__dict__, "fetch_logs": False, "fetch_registry": False})
        total = {"new_shas": 0, "requests": 0, "minimum": 0}
        with (
            SimulatedGitLab(scenario, clock_start=scenario.end - timedelta(days=3)) as sim,
            tempfile.TemporaryDirectory() as tmp,
            GitLabClient(Connection(url=sim.url, token=Secret(sim.token))) as client,
            Store.open(Path(tmp) / "s.db") as store,
        ):
            pid, files = sim.project_id, options.critical_files
            project = sim.world.projects[pid]

            def versions(shas: set[str]) -> set[tuple[str, Any]]:
                return {
                    (f, project.commits[s].last_change.get(f))
                    for s in shas
                    for f in files
                    if f in project.commits[s].files
                }

            sync.sync_project(client, store, sim.project_path, options=options, now=NOW)
            for hours in STEPS_HOURS:
                before = store.pipeline_shas(pid)
                sim.advance(hours * 3600)
                sim.stats.reset()
                sync.sync_project(client, store, sim.project_path, options=options, now=NOW)
                new = store.pipeline_shas(pid) - before
                total["new_shas"] += len(new)
                total["requests"] += sum(
                    n
                    for k, n in sim.stats.by_endpoint.items()
                    if "/repository/compare" in k or "/repository/commits" in k or k.startswith("HEAD ")
                )
                total["minimum"] += len(versions(new) - versions(before))
        return total
    finally:
        sync_repository._checksums_from_compare = original


def main() -> int:
    for label, use in (("compare (cidash)", True), ("history only", False)):
        t = run(use)
        print(
            f"{label:18} {t['new_shas']} new SHAs in {len(STEPS_HOURS)} syncs: {t['requests']} checksum requests "
            f"(minimum {t['minimum']} HEADs)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
