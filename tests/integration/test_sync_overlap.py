"""The order of a sync's requests (no wall clock: the simulator's request log, in the order it answered them).

A first sync of the whole history downloads logs while the pipelines step still waits for details (the early jobs
listing queues each finished job's log as bulk work, behind the steps' own requests), and reads the registry at
once; a first sync into a store that already holds jobs (one cut short) does not, and downloads no log twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cidash.config import Config
from cidash.connection import Connection, Secret
from cidash.remote import GitLabClient
from cidash.sim import FaultPlan, FaultRule, Scenario, SimulatedGitLab
from cidash.store import Store
from cidash.sync import SyncOptions, SyncProgress, sync_project

NOW = datetime(2026, 12, 1, tzinfo=UTC)
DETAIL = "POST /api/graphql"  # the pipelines' details, 30 a query


@pytest.fixture
def slow_details() -> Iterator[SimulatedGitLab]:
    """Pipeline details answer after 300 ms (one GraphQL query: it alone has to leave room for what overlaps it),
    everything else at once: what overlaps them shows in the log."""
    plan = FaultPlan(rules=[FaultRule(endpoint=DETAIL, latency_ms=300)])
    with SimulatedGitLab(Scenario(days=3, pipelines_per_day=5, migration_day=2), faults=plan) as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db") as s:
        yield s


def client_for(sim: SimulatedGitLab) -> GitLabClient:
    return GitLabClient(Connection(url=sim.url, token=Secret(sim.token), max_rps=0, concurrency=32))


def first_sync_options(**kw: Any) -> SyncOptions:
    base = SyncOptions.from_config(Config(), since="all", now=NOW)
    return SyncOptions(**{**base.__dict__, **kw})


def answered(sim: SimulatedGitLab) -> list[str]:
    """``"METHOD path"`` of every request, in the order the simulator answered them."""
    return [f"{method} {path}" for method, path, _ in sim.stats.log]


def is_detail(entry: str) -> bool:
    return entry == DETAIL


def test_a_first_sync_downloads_logs_and_reads_the_registry_while_pipeline_details_come(
    slow_details: SimulatedGitLab, store: Store
) -> None:
    sim = slow_details
    with client_for(sim) as client:
        report = sync_project(client, store, sim.project_path, options=first_sync_options(), now=NOW)
    log = answered(sim)
    last_detail = max(i for i, entry in enumerate(log) if is_detail(entry))
    traces = [i for i, entry in enumerate(log) if entry.endswith("/trace")]
    registry = [i for i, entry in enumerate(log) if "/registry/repositories" in entry]
    assert report.pipelines > 0 and report.logs > 0
    # Before: the first log was asked for after the pipelines and then the jobs were stored.
    assert traces[0] < last_detail
    assert registry and max(registry) < last_detail  # the registry needs no pipeline: read at once
    # Each log downloaded once (the listing's early downloads are the logs step's, not extra ones).
    assert len(traces) == report.logs + report.logs_unavailable
    assert len(store.job_facts([j.id for j in store.jobs(sim.project_id)])) == report.logs


class _CutShort(Exception):
    """Stands for a first sync killed once its jobs are stored (at the start of the logs step)."""


def test_a_first_sync_cut_short_then_resumed_downloads_each_log_once(
    slow_details: SimulatedGitLab, store: Store
) -> None:
    sim = slow_details

    def stop_at_logs(update: SyncProgress) -> None:
        if update.phase == "logs":
            raise _CutShort

    with client_for(sim) as client, pytest.raises(_CutShort):
        sync_project(client, store, sim.project_path, options=first_sync_options(), now=NOW, progress=stop_at_logs)
    jobs = store.jobs(sim.project_id)
    assert jobs and store.last_sync(sim.project_id) is None  # the next sync is a first sync again
    sim.stats.reset()
    with client_for(sim) as client:
        report = sync_project(client, store, sim.project_path, options=first_sync_options(), now=NOW)
    traces = [entry for entry in answered(sim) if entry.endswith("/trace")]
    # The store holds the project's jobs: the listing starts no download (whose log might be parsed already);
    # the logs step fetches each due log exactly once.
    assert len(traces) == len(set(traces)) == report.logs + report.logs_unavailable
    due = [j for j in jobs if j.status in ("success", "failed", "canceled") and j.started_at and j.finished_at]
    assert report.logs + report.logs_unavailable == len(due)
    assert len(store.job_facts([j.id for j in store.jobs(sim.project_id)])) == report.logs
