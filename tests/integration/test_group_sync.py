"""Several projects in flight (issue #15 "Group scale"): ``sync_projects`` with ``project_concurrency`` > 1.

Against the simulated group (``cidash.sim.group``), on SQLite and on a real PostgreSQL server: the store ends up
with the same data as a sequential sync, reports keep the order of the targets, one failing project does not stop
the others, a fatal error or an interrupt stops the rest without leaving a run half-written, and no project is
ever synced twice at once (within one call, or by two calls sharing the store).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cidash.config import Config
from cidash.connection import Connection, Secret
from cidash.errors import AuthError
from cidash.remote import GitLabClient
from cidash.sim import SimulatedGitLab
from cidash.sim.faults import FaultPlan, FaultRule
from cidash.sim.group import build_group_world
from cidash.store import Store
from cidash.sync import SyncOptions, SyncProgress, sync_projects

NOW = datetime(2026, 12, 1, tzinfo=UTC)

#: The tables that hold synced data (not the bookkeeping of runs, leases, audit or metric totals).
DATA_TABLES = (
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
    "sync_state",
    "sync_deferred",
    "instance_versions",
)


@pytest.fixture
def group_sim() -> Iterator[SimulatedGitLab]:
    """8 projects in ``platform`` and two subgroups, 2 days x 2 pipelines each."""
    with SimulatedGitLab(world=build_group_world(8, subgroups=2, days=2, pipelines_per_day=2)) as sim:
        yield sim


@pytest.fixture
def second_target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """Another empty store on the same backend as ``store_target``."""
    if backend == "postgresql":
        from pgserver import new_schema_name

        server = request.getfixturevalue("pg_server")
        schema = new_schema_name()
        yield server.schema_url(schema)
        server.drop_schema(schema)
    else:
        yield str(tmp_path / "second.db")


def client_for(sim: SimulatedGitLab) -> GitLabClient:
    return GitLabClient(Connection(url=sim.url, token=Secret(sim.token), max_rps=0, concurrency=6))


def options(**kw: Any) -> SyncOptions:
    base = SyncOptions.from_config(Config(), since="all", now=NOW)
    return SyncOptions(**{**base.__dict__, **kw})


#: Columns that record this machine's clock when a row was written (not what was synced).
WALL_CLOCK = {"added_at", "synced_at", "seen_at", "fetched_at", "checked_at", "sync_state.updated_at"}


#: Columns that also hold the sync's ``now`` (differ between a CLI run and an in-process one at ``NOW``).
SYNC_TIME = {"parsed_at", "first_seen", "last_seen", "sync_state.cursor", "sync_deferred.deferred_at"}


def dump(store: Store, volatile: set[str] = WALL_CLOCK) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the data tables without their write times, sorted (insertion order differs when projects
    overlap)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in DATA_TABLES:
        cursor = store.connection.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cursor.description]
        keep = [i for i, n in enumerate(names) if n not in volatile and f"{table}.{n}" not in volatile]
        out[table] = sorted((tuple(row[i] for i in keep) for row in cursor.fetchall()), key=repr)
    return out


def sync_group(sim: SimulatedGitLab, store: Store, **kw: Any) -> list[Any]:
    progress: Callable[[SyncProgress], None] | None = kw.pop("progress", None)
    projects = kw.pop("projects", ())
    with client_for(sim) as client:
        return sync_projects(
            client, store, projects=projects, group="platform", options=options(**kw), progress=progress, now=NOW
        )


def test_concurrent_group_sync_stores_what_a_sequential_one_does(
    group_sim: SimulatedGitLab, store_target: str, second_target: str
) -> None:
    with Store.open(store_target) as one_by_one, Store.open(second_target) as at_once:
        in_flight, peak = 0, 0

        def count(p: SyncProgress) -> None:  # called under the pool's lock: never from two threads at once
            nonlocal in_flight, peak
            in_flight += {"project": 1, "done": -1}.get(p.phase, 0)
            peak = max(peak, in_flight)

        sequential = sync_group(group_sim, one_by_one, project_concurrency=1)
        concurrent = sync_group(group_sim, at_once, project_concurrency=4, progress=count)
        assert 1 < peak <= 4 and in_flight == 0
        # the same reports, in the same order (the group listing's), each counting its own project's requests
        assert [r.project.path for r in concurrent] == [r.project.path for r in sequential]
        assert len(concurrent) == len(group_sim.world.projects)
        assert all(r.error is None for r in concurrent)
        assert [(r.pipelines, r.jobs, r.logs, r.checksums) for r in concurrent] == [
            (r.pipelines, r.jobs, r.logs, r.checksums) for r in sequential
        ]
        assert [r.requests_by_kind for r in concurrent] == [r.requests_by_kind for r in sequential]
        assert dump(at_once) == dump(one_by_one)
        assert sum(len(rows) for rows in dump(at_once).values()) > 1000
        for project in group_sim.world.projects.values():
            assert {p.id for p in at_once.pipelines(project.id)} == set(project.pipelines)
        runs = at_once.read("SELECT status, count(*) FROM sync_runs GROUP BY status")
        assert [tuple(r) for r in runs] == [("ok", len(group_sim.world.projects))]


def test_idle_refresh_with_projects_in_flight_costs_one_request_per_project(
    group_sim: SimulatedGitLab, tmp_path: Path
) -> None:
    with Store.open(str(tmp_path / "group.db")) as store:
        sync_group(group_sim, store, project_concurrency=4)
        group_sim.stats.reset()
        reports = sync_group(group_sim, store, project_concurrency=4)
    assert group_sim.stats.count("GET /groups/:gid/projects") == 1
    assert group_sim.stats.total_requests - 1 <= len(group_sim.world.projects)
    assert [r.requests for r in reports] == [1] * len(group_sim.world.projects)


def test_a_forbidden_project_does_not_stop_the_others(group_sim: SimulatedGitLab, store_target: str) -> None:
    world = group_sim.world
    denied = sorted(world.projects)[2]
    group_sim.set_faults(FaultPlan(rules=(FaultRule(endpoint=f"*/projects/{denied}/pipelines*", status=403),)))
    events: list[SyncProgress] = []
    with Store.open(store_target) as store:
        reports = sync_group(group_sim, store, project_concurrency=3, progress=events.append)
        synced = [r for r in reports if r.error is None]
        failed = [r for r in reports if r.error is not None]
        assert len(synced) == len(world.projects) - 1
        assert [r.project.path for r in failed] == [world.projects[denied].path]
        assert failed[0].error is not None and "403" in failed[0].error
        assert reports[-1] is failed[0]  # failures after the synced projects, as with one project at a time
        for project in world.projects.values():
            stored = {p.id for p in store.pipelines(project.id)}
            assert stored == (set() if project.id == denied else set(project.pipelines))
        runs = {tuple(r) for r in store.read("SELECT project_id, status FROM sync_runs")}
        assert (denied, "error") in runs
        assert len(runs) == len(world.projects)
    ends = [e for e in events if e.phase == "done"]
    assert len(ends) == len(world.projects)
    why = [e.message or "" for e in ends if e.project == world.projects[denied].path]
    assert len(why) == 1 and why[0].startswith("not synced: ") and "403" in why[0]


def test_a_fatal_error_stops_the_group_with_nothing_left_running(group_sim: SimulatedGitLab, store_target: str) -> None:
    world = group_sim.world
    # The group's first project in GitLab's listing order: its sync starts in the first wave, so the projects that
    # wait for a free place behind it are the ones the failure must keep from starting (a project later in the
    # order could start last with nothing left to hold back, whatever the code does).
    listed = httpx.get(
        f"{group_sim.url}/api/v4/groups/platform/projects",
        params={"include_subgroups": "true", "archived": "false", "per_page": 100},
        headers={"PRIVATE-TOKEN": group_sim.token},
    ).json()
    revoked = listed[0]["id"]
    group_sim.set_faults(FaultPlan(rules=(FaultRule(endpoint=f"*/projects/{revoked}/pipelines*", status=401),)))
    with Store.open(store_target) as store:
        with pytest.raises(AuthError):
            sync_group(group_sim, store, project_concurrency=3)
        assert not store.read("SELECT * FROM sync_runs WHERE status = 'running'")
        assert not store.read("SELECT * FROM sync_leases")
        started = store.read("SELECT count(DISTINCT project_id) FROM sync_runs")[0][0]
        assert started < len(world.projects)  # projects after the failure were never started
        group_sim.set_faults(None)
        reports = sync_group(group_sim, store, project_concurrency=3)
        assert all(r.error is None for r in reports)
        for project in world.projects.values():
            assert {p.id for p in store.pipelines(project.id)} == set(project.pipelines)
            assert len(store.jobs(project.id)) == len(project.jobs)


def test_an_interrupt_stops_every_project_at_a_commit(
    group_sim: SimulatedGitLab, tmp_path: Path, second_target: str
) -> None:
    """Ctrl-C (here: raised by the progress callback, as a signal handler would on the main thread) ends the syncs
    in flight at their next commit; re-running completes the store exactly as an uninterrupted sync does."""
    logs_events = 0

    def interrupt(p: SyncProgress) -> None:
        nonlocal logs_events
        if p.phase == "logs":
            logs_events += 1
            if logs_events == 3:
                raise KeyboardInterrupt

    with Store.open(str(tmp_path / "cut.db")) as store, Store.open(second_target) as whole:
        with pytest.raises(KeyboardInterrupt):
            sync_group(group_sim, store, project_concurrency=4, progress=interrupt)
        assert not store.read("SELECT * FROM sync_runs WHERE status = 'running'")
        assert not store.read("SELECT * FROM sync_leases")
        stopped = [r[0] for r in store.read("SELECT error FROM sync_runs WHERE status = 'error'")]
        assert stopped and all("stopped before its end" in e or "KeyboardInterrupt" in e for e in stopped)
        sync_group(group_sim, store, project_concurrency=4)
        sync_group(group_sim, whole, project_concurrency=1)
        assert dump(store) == dump(whole)


def test_no_project_is_synced_twice_at_once(group_sim: SimulatedGitLab, store_target: str) -> None:
    """One call naming projects twice (path, id, and the group listing) syncs each once; two calls sharing the
    store at the same moment never sync one project at the same time (the second waits for the lease)."""
    world = group_sim.world
    first, second = sorted(world.projects)[:2]
    log: list[tuple[int, str, str]] = []  # (call, project, phase)
    lock = threading.Lock()

    def recorder(call: int) -> Callable[[SyncProgress], None]:
        def record(p: SyncProgress) -> None:
            if p.phase in ("project", "done"):
                with lock:
                    log.append((call, p.project, p.phase))

        return record

    named = [world.projects[first].path, str(first), first, world.projects[second].path]
    with Store.open(store_target) as store:
        reports = sync_group(group_sim, store, project_concurrency=4, projects=named, progress=recorder(0))
        assert [r.project.path for r in reports[:2]] == [world.projects[first].path, world.projects[second].path]
        assert sorted(r.project.id for r in reports) == sorted(world.projects)
        counts = store.read("SELECT project_id, count(*) FROM sync_runs GROUP BY project_id")
        assert {tuple(r) for r in counts} == {(pid, 1) for pid in world.projects}

        errors: list[BaseException] = []

        def call(n: int) -> None:
            try:
                with Store.open(store_target) as own:
                    sync_group(group_sim, own, project_concurrency=4, progress=recorder(n))
            except BaseException as exc:
                errors.append(exc)

        group_sim.advance(3600)  # new pipelines, so each sync has work while the other one waits
        threads = [threading.Thread(target=call, args=(n,)) for n in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
    open_syncs: dict[str, int] = {}
    for _, project, phase in log:
        depth = open_syncs.get(project, 0) + (1 if phase == "project" else -1)
        assert depth in (0, 1), f"{project} synced twice at once"
        open_syncs[project] = depth
    assert set(open_syncs.values()) == {0}
    assert sum(1 for c, _, phase in log if c > 0 and phase == "project") == 2 * len(world.projects)


def test_ctrl_c_on_the_cli_stops_the_group_cleanly(tmp_path: Path) -> None:
    """SIGINT to ``cidash sync --group`` with projects in flight: one line, exit 130, no run left ``running``, no
    lease held; the next run completes the store as one uninterrupted sync does."""
    import os
    import signal
    import subprocess
    import sys
    import time

    world = build_group_world(8, subgroups=2, days=2, pipelines_per_day=2)
    with SimulatedGitLab(world=world, latency_ms=5) as sim:
        db = tmp_path / "cli.db"
        cmd = [sys.executable, "-m", "cidash", "sync", "--url", sim.url, "--group", "platform", "--db", str(db)]
        cmd += ["--since", "all", "--project-concurrency", "4"]
        env = {**os.environ, "GITLAB_TOKEN": sim.token, "CI": "true"}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # interrupt after a number of requests (a first sync of the group is ~1,000, four projects in flight), not
        # after a time: early enough that the first four cannot all have ended and let the other four start
        deadline = time.monotonic() + 60
        while sim.stats.total_requests < 120 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert proc.poll() is None, "the sync finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert err.strip().splitlines()[-1] == "cidash: interrupted" and "Traceback" not in err
        with Store.open(str(db)) as store:
            assert not store.read("SELECT * FROM sync_runs WHERE status = 'running'")
            assert not store.read("SELECT * FROM sync_leases")
            runs = [tuple(r) for r in store.read("SELECT project_id, status, error FROM sync_runs")]
            # the projects in flight ended at a commit (stopped, or finished their last step); none started after
            assert {status for _, status, _ in runs} <= {"ok", "error"}
            assert len({pid for pid, _, _ in runs}) < len(world.projects), (runs, err)
        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert again.returncode == 0, again.stderr
        with Store.open(str(db)) as store, Store.open(str(tmp_path / "whole.db")) as whole:
            sync_group(sim, whole, project_concurrency=1)
            assert dump(store, WALL_CLOCK | SYNC_TIME) == dump(whole, WALL_CLOCK | SYNC_TIME)


def test_serve_workers_sync_projects_at_once_each_counting_its_own_requests(tmp_path: Path) -> None:
    """``cidash serve --workers 4`` (the scheduler's pool): every project synced once with no double sync, and the
    request counts logged per sync add up to what GitLab served (no sync counts another project's requests)."""
    import json

    from serve_support import serving, wait_ready

    world = build_group_world(6, subgroups=2, days=2, pipelines_per_day=2)
    with (
        SimulatedGitLab(world=world) as sim,
        serving(sim, tmp_path, workers=4, interval=3600.0, max_interval=3600.0) as running,
    ):
        wait_ready(running.url)
        lines = [json.loads(line) for line in running.log.getvalue().splitlines()]
        served = sim.stats.total_requests
        listing = sim.stats.count("GET /groups/:gid/projects")
    syncs = [line for line in lines if line["event"] == "sync"]
    assert sorted(s["project"] for s in syncs) == sorted(p.path for p in world.projects.values())
    assert listing >= 1 and sum(int(s["requests"]) for s in syncs) + listing == served


@pytest.mark.parametrize("at_once", [1, 4])
def test_a_graphql_refusal_every_project_meets_is_met_once_a_run(
    group_sim: SimulatedGitLab, tmp_path: Path, at_once: int
) -> None:
    """An instance without GraphQL's endpoint (404 here) refuses every project's details query: the first project
    to meet it says so, the projects that start after it ask REST at once and silently, and every project
    remembers it for a day (the next run asks GraphQL nothing)."""
    group_sim.set_faults(FaultPlan(rules=(FaultRule(endpoint="POST /api/graphql", status=404),)))
    try:
        with Store.open(tmp_path / "s.db") as store:
            reports = sync_group(group_sim, store, project_concurrency=at_once)
            said = [w for r in reports for w in r.warnings if "GraphQL" in w]
            asked = group_sim.stats.count("POST /api/graphql")
            assert all(r.error is None for r in reports) and len(reports) == 8
            assert 1 <= len(said) <= asked <= at_once and "POST /api/graphql (404)" in said[0]
            if at_once == 1:
                assert len(said) == asked == 1
            details = sum(r.requests_by_kind.get("GET pipeline", 0) for r in reports)
            assert details == sum(len(store.pipelines(r.project.id)) for r in reports) > 0
            group_sim.stats.reset()
            for project in (r.project for r in reports):  # new pipelines would be asked over REST, not GraphQL
                assert store.cursor(project.id, "graphql_refused_at") is not None
    finally:
        group_sim.set_faults(None)
