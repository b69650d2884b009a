"""Every fault the simulator can inject: the sync completes, or stops with a clear error and a consistent store."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cidash.errors import CidashError, ConnectError, RemoteError
from cidash.sim import SimulatedGitLab
from cidash.sim.faults import FaultPlan, FaultRule
from cidash.store import Store
from cidash.sync import sync_project
from test_sync import NOW, assert_matches_world, make_client, options

TRACE = "GET /projects/:id/jobs/:job_id/trace"
JOBS = "GET /projects/:id/jobs"
PIPELINES = "GET /projects/:id/pipelines"
FILES = "HEAD /projects/:id/repository/files/:file_path"


@pytest.fixture
def small_sim() -> Iterator[SimulatedGitLab]:
    """Smaller than conftest's small_sim: every fault test syncs the whole history at least once."""
    from cidash.sim import Scenario

    with SimulatedGitLab(Scenario(days=2, pipelines_per_day=4, migration_day=2)) as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db") as s:
        yield s


RECOVERABLE = {
    "429 on logs, Retry-After": FaultRule(endpoint=TRACE, status=429, retry_after=0.05, first=3),
    "500 on the pipeline listing": FaultRule(endpoint=PIPELINES, status=500, first=1),
    "502 on the jobs listing": FaultRule(endpoint=JOBS, status=502, first=2),
    "503 on pipeline details": FaultRule(endpoint="POST /api/graphql", status=503, first=1),
    "connection reset mid-log": FaultRule(endpoint=TRACE, reset=True, first=6),
    "connection reset on listings": FaultRule(endpoint=JOBS, reset=True, first=1),
    "latency and jitter": FaultRule(endpoint="*", latency_ms=5, jitter_ms=10),
    "slow log bodies": FaultRule(endpoint=TRACE, slow_bytes_per_s=2_000_000, first=3),
    "500 on file HEADs": FaultRule(endpoint=FILES, status=500, every=5),
}


@pytest.mark.parametrize("rule", list(RECOVERABLE.values()), ids=list(RECOVERABLE))
def test_transient_faults_are_ridden_out(small_sim: SimulatedGitLab, store: Store, rule: FaultRule) -> None:
    small_sim.set_faults(FaultPlan(seed=3, rules=(rule,)))
    with make_client(small_sim) as client:
        report = sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert all(small_sim.fault_state.fired), "the fault never fired"
    assert report.logs_failed == 0, report.warnings
    assert_matches_world(small_sim, store)


def test_repeated_resets_on_logs_defer_them(small_sim: SimulatedGitLab, store: Store) -> None:
    small_sim.set_faults(FaultPlan(rules=(FaultRule(endpoint=TRACE, reset=True, every=2),)))
    from cidash.remote import RetryPolicy

    with make_client(small_sim, retry=RetryPolicy(attempts=2, base_delay=0.01)) as client:
        report = sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert report.logs_failed > 0 and report.logs > 0 and any("reset" in w for w in report.warnings)
    small_sim.set_faults(None)
    with make_client(small_sim) as client:
        again = sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert again.logs == report.logs_failed
    assert_matches_world(small_sim, store)


def test_truncated_logs_are_kept_as_truncated(small_sim: SimulatedGitLab, store: Store) -> None:
    small_sim.set_faults(FaultPlan(rules=(FaultRule(endpoint=TRACE, truncate_bytes=1500, first=2),)))
    with make_client(small_sim) as client:
        report = sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    facts = store.job_facts(j.id for j in store.jobs(small_sim.project_id))
    assert len(facts) == report.logs
    world_jobs = small_sim.world.projects[small_sim.project_id].jobs
    cut = [i for i, f in facts.items() if len(f.sections) < len(world_jobs[i].facts.sections)]  # type: ignore[union-attr]
    assert len(cut) == 2  # the two cut-off logs are stored as GitLab served them
    for i in cut:
        reached_script = any(s.name in ("step_script", "build_script") for s in facts[i].sections)
        # a log cut before step_script has an unknown start-up, not an invented one (which two logs are cut
        # depends on the download order: a short log cut at 1,500 bytes may already show step_script)
        assert (facts[i].startup_seconds is None) == (not reached_script), (i, facts[i].sections)


def test_persistent_server_error_stops_cleanly_and_resumes(small_sim: SimulatedGitLab, store: Store) -> None:
    small_sim.set_faults(FaultPlan(rules=(FaultRule(endpoint=JOBS, status=500),)))
    with make_client(small_sim) as client, pytest.raises(RemoteError, match="500") as info:
        sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert small_sim.token not in info.value.one_line()
    # Pipelines committed, no half-synced jobs, no cursor claiming the jobs were synced.
    assert len(store.pipelines(small_sim.project_id)) == small_sim.truth.pipelines
    assert store.jobs(small_sim.project_id) == []
    assert len(store.pipelines_needing_jobs(small_sim.project_id)) == small_sim.truth.pipelines
    assert store.last_sync(small_sim.project_id) is None
    assert store.sync_runs(small_sim.project_id)[0].status == "error"
    small_sim.set_faults(None)
    with make_client(small_sim) as client:
        sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert_matches_world(small_sim, store)


def test_persistent_rate_limit_on_logs_defers_them(small_sim: SimulatedGitLab, store: Store) -> None:
    small_sim.set_faults(FaultPlan(rules=(FaultRule(endpoint=TRACE, status=429, retry_after=0.01),)))
    from cidash.remote import RetryPolicy

    with make_client(small_sim, concurrency=2, retry=RetryPolicy(attempts=2)) as client:
        report = sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert report.logs == 0 and report.logs_failed > 0
    assert any("429" in w for w in report.warnings)
    small_sim.set_faults(None)
    with make_client(small_sim) as client:
        again = sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert again.logs == report.logs_failed
    assert_matches_world(small_sim, store)


@pytest.mark.parametrize(
    ("endpoint", "status"),
    [("*/registry/repositories*", 403), ("*/resource_groups", 404)],
)
def test_optional_endpoints_missing_are_warnings(
    small_sim: SimulatedGitLab, store: Store, endpoint: str, status: int
) -> None:
    small_sim.set_faults(FaultPlan(rules=(FaultRule(endpoint=endpoint, status=status),)))
    with make_client(small_sim) as client:
        report = sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert report.warnings and str(status) in report.warnings[0]
    assert_matches_world(small_sim, store)


@pytest.mark.parametrize(
    ("status", "title"),
    [(401, "Authentication"), (403, "Permission"), (404, "Not found")],
)
def test_project_errors_are_one_line(small_sim: SimulatedGitLab, store: Store, status: int, title: str) -> None:
    small_sim.set_faults(FaultPlan(rules=(FaultRule(endpoint="GET /projects/:id", status=status),)))
    with make_client(small_sim) as client, pytest.raises(CidashError) as info:
        sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert info.value.title == title and str(status) in info.value.one_line()
    assert store.projects() == []


def test_unreachable_host(store: Store) -> None:
    from cidash.connection import Connection
    from cidash.remote import GitLabClient, RetryPolicy

    client = GitLabClient(Connection(url="http://127.0.0.1:9", timeout=2), retry=RetryPolicy(attempts=1))
    with client, pytest.raises(ConnectError, match=r"cannot reach GitLab at http://127\.0\.0\.1:9: connection refused"):
        sync_project(client, store, "platform/app", options=options(), now=NOW)


def test_enforced_rate_limit_is_respected_without_429s() -> None:
    from cidash.sim import Scenario

    with (
        SimulatedGitLab(
            Scenario(days=1, pipelines_per_day=4, migration_day=1), rate_limit=40, rate_limit_window=2.0
        ) as sim,
        Store.open(Path(tempfile.mkdtemp()) / "s.db") as store,
        make_client(sim, concurrency=4) as client,
    ):
        report = sync_project(client, store, sim.project_path, options=options(), now=NOW)
        assert report.requests > 40  # more than one window's budget: it had to pace itself
        assert sim.stats.by_status.get(429, 0) == 0
        assert report.rate_limit.limit == 40 and report.rate_limit_wait > 0
        assert_matches_world(sim, store)
