"""`cidash sync` as a process: killed at random points and re-run, two at once on one store, its output."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cidash.sim import Scenario, SimulatedGitLab
from cidash.store import Store
from cidash.sync import sync_project
from test_sync import NOW, make_client, options

#: Columns that legitimately differ between runs (wall-clock bookkeeping).
VOLATILE = {"synced_at", "parsed_at", "fetched_at", "first_seen", "last_seen", "seen_at", "added_at"}
TABLES = (
    "projects",
    "pipelines",
    "jobs",
    "job_facts",
    "job_sections",
    "cache_events",
    "image_tags",
    "file_checksums",
    "ci_configs",
    "resource_groups",
)


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(path)
    out = {}
    for table in TABLES:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] not in VOLATILE]
        out[table] = sorted(conn.execute(f"SELECT {', '.join(cols)} FROM {table}").fetchall(), key=repr)
    conn.close()
    return out


@pytest.fixture
def sim() -> Iterator[SimulatedGitLab]:
    with SimulatedGitLab(Scenario(days=3, pipelines_per_day=4, migration_day=2), latency_ms=4) as server:
        yield server


@pytest.fixture
def reference(sim: SimulatedGitLab, tmp_path: Path) -> dict[str, list[tuple[object, ...]]]:
    path = tmp_path / "reference.db"
    with make_client(sim) as client, Store.open(path) as store:
        sync_project(client, store, sim.project_path, options=options(), now=NOW)
    sim.stats.reset()
    return dump(path)


def sync_cmd(sim: SimulatedGitLab, db: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cidash",
        "sync",
        "--url",
        sim.url,
        "--project",
        sim.project_path,
        "--db",
        str(db),
        "--since",
        "all",
        "--max-rps",
        "0",
        *extra,
    ]


def env_for(sim: SimulatedGitLab) -> dict[str, str]:
    return {**os.environ, "GITLAB_TOKEN": sim.token, "CI": "true"}


def test_killed_at_random_points_then_rerun_gives_the_same_rows(
    sim: SimulatedGitLab, reference: dict[str, list[tuple[object, ...]]], tmp_path: Path
) -> None:
    db = tmp_path / "killed.db"
    rng = random.Random(5)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen(sync_cmd(sim, db), env=env_for(sim), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Kill after a random number of requests (a first sync here is ~150): a point in time would depend on how
        # fast the sync and the machine are, a request count lands in the pipelines, jobs or logs step alike.
        target = sim.stats.total_requests + rng.randint(1, 80)
        deadline = time.monotonic() + 20
        while sim.stats.total_requests < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    assert kills >= 2, "the sync finished too fast to be interrupted"
    final = subprocess.run(
        sync_cmd(sim, db), env=env_for(sim), check=False, capture_output=True, text=True, timeout=120
    )
    assert final.returncode == 0, final.stderr
    assert dump(db) == reference


def test_two_concurrent_syncs_on_one_store(
    sim: SimulatedGitLab, reference: dict[str, list[tuple[object, ...]]], tmp_path: Path
) -> None:
    db = tmp_path / "shared.db"
    procs = [
        subprocess.Popen(sync_cmd(sim, db), env=env_for(sim), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert dump(db) == reference


def test_cli_plain_output_and_verbose(sim: SimulatedGitLab, tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    first = subprocess.run(
        sync_cmd(sim, db, "--verbose"), env=env_for(sim), check=False, capture_output=True, text=True, timeout=120
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"{sim.project_path}: {sim.truth.pipelines} pipelines, {sim.truth.jobs} jobs")
    assert "sync platform/app: logs" in first.stderr  # plain progress lines when CI=true / no terminal
    assert "GET trace" in first.stderr and "requests" in first.stderr  # --verbose: what it asked for
    assert sim.token not in first.stderr + first.stdout
    again = subprocess.run(sync_cmd(sim, db), env=env_for(sim), check=False, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and f"{sim.project_path}: 0 pipelines, 0 jobs, 0 logs" in again.stdout
    prune = subprocess.run(
        [sys.executable, "-m", "cidash", "prune", "--db", str(db), "--before", "2100-01-01", "--dry-run"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert prune.returncode == 0 and f"{sim.truth.pipelines} pipelines" in prune.stdout


def test_cli_bad_token_is_one_line_exit_2(sim: SimulatedGitLab, tmp_path: Path) -> None:
    env = {**env_for(sim), "GITLAB_TOKEN": "glpat-not-the-right-one-123"}
    proc = subprocess.run(
        sync_cmd(sim, tmp_path / "x.db"), env=env, check=False, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("cidash: error:") and "401" in last
    assert "glpat-not-the-right-one-123" not in proc.stderr
    assert "Traceback" not in proc.stderr
