"""The sync engine against the simulated GitLab over real HTTP: first sync, refresh, changes, retries, groups."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cidash.config import Config
from cidash.connection import Connection, Secret
from cidash.errors import StoreError
from cidash.models import Project
from cidash.remote import GitLabClient
from cidash.sim import Scenario, SimulatedGitLab
from cidash.sim.world import FINISHED, git_blob_id
from cidash.store import Store
from cidash.sync import (
    SyncOptions,
    SyncProgress,
    _checksums_from_compare,
    _Ctx,
    parse_since,
    resolve_project,
    sync_project,
    sync_projects,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def make_client(sim: SimulatedGitLab, **kw: Any) -> GitLabClient:
    retry = kw.pop("retry", None)
    conn = Connection(url=sim.url, token=Secret(sim.token), max_rps=0, concurrency=kw.pop("concurrency", 6), **kw)
    return GitLabClient(conn, retry=retry)


def options(**kw: Any) -> SyncOptions:
    base = SyncOptions.from_config(Config(), since="all", now=NOW)
    return SyncOptions(**{**base.__dict__, **kw})


@pytest.fixture
def store(store_target: str) -> Iterator[Store]:
    """Each sync test runs on an SQLite file and on a real PostgreSQL server (tests/pgserver.py)."""
    with Store.open(store_target) as s:
        yield s


def assert_matches_world(sim: SimulatedGitLab, store: Store) -> None:
    """The store holds exactly the main project's pipelines and jobs as the simulator shows them now."""
    world, pid = sim.world, sim.project_id
    now = world.now()
    sim_pipelines = {p.id: p for p in world.all_pipelines(pid)}
    stored_pipelines = {p.id: p for p in store.pipelines(pid)}
    assert set(stored_pipelines) == set(sim_pipelines)
    project = world.projects[pid]
    for p in sim_pipelines.values():
        assert stored_pipelines[p.id].status == world.pipeline_status(project, p, now)
        assert stored_pipelines[p.id].sha == p.sha
    sim_jobs = {j.id: j for j in world.all_jobs(pid)}
    stored_jobs = {j.id: j for j in store.jobs(pid)}
    assert set(stored_jobs) == set(sim_jobs)
    for j in sim_jobs.values():
        got = stored_jobs[j.id]
        assert (got.name, got.pipeline_id, got.status) == (j.name, j.pipeline_id, j.status_at(now))
        assert got.retried == j.retried, f"job {j.id} retried flag"
    for job_id, reason in sim.truth.failed_jobs.items():
        if job_id in stored_jobs:
            assert stored_jobs[job_id].failure_reason == reason
    # Every finished job that ran has its log parsed, with the start-up the simulator planned.
    facts = store.job_facts(stored_jobs)
    for j in sim_jobs.values():
        ran = j.status_at(now) in FINISHED and j.started_at is not None and j.facts is not None
        if ran and j.status_at(now) != "skipped":
            assert j.id in facts, f"job {j.id} ({j.name}) has no parsed log"
            assert j.facts is not None
            # whole seconds from the markers when the job's runner writes no per-line timestamps
            planned = j.facts.startup_seconds if j.facts.timestamps else j.facts.marker_startup_seconds
            assert facts[j.id].startup_seconds == pytest.approx(planned, abs=0.01), j.id
    assert store.counts()["cache_events"] == sum(len(f.cache) for f in facts.values())


def test_first_sync_matches_ground_truth(small_sim: SimulatedGitLab, store: Store) -> None:
    seen: list[SyncProgress] = []
    with make_client(small_sim) as client:
        report = sync_project(client, store, small_sim.project_path, options=options(), progress=seen.append, now=NOW)
    assert report.first_sync and report.logs > 0 and report.pipelines == small_sim.truth.pipelines
    assert_matches_world(small_sim, store)
    assert {p.phase for p in seen} >= {"pipelines", "jobs", "logs", "done"}
    assert seen[-1].logs_done == seen[-1].logs_total == report.logs + report.logs_unavailable
    # Requests: the client's own count agrees with the server's.
    assert report.requests == small_sim.stats.total_requests
    # Jobs came from the project-wide listing: one request per 100 jobs, not one per pipeline.
    assert small_sim.stats.count("/pipelines/:pipeline_id/jobs") == 0
    assert report.requests_by_kind["GET jobs"] <= small_sim.truth.jobs // 100 + 1
    # Each finished log fetched exactly once.
    assert small_sim.stats.count("/trace") == report.logs + report.logs_unavailable
    # File checksums for every pipeline SHA: blob ids as git computes them, None for absent files.
    project = small_sim.world.projects[small_sim.project_id]
    files = options().critical_files
    for sha in store.pipeline_shas(small_sim.project_id):
        rows = {c.path: c for c in store.file_checksums(small_sim.project_id, sha=sha)}
        assert set(rows) == set(files)
        commit = project.commits[sha]
        for path in files:
            content = commit.files.get(path)
            assert rows[path].blob_id == (git_blob_id(content) if content is not None else None)
    # Registry tags with sizes, and the CI file of the newest commit of each ref.
    tags = {t.tag.name: t.tag for t in store.image_tags(small_sim.project_id, current_only=True)}
    for name, truth in small_sim.truth.image_tags.items():
        assert tags[name].digest == truth.digest and tags[name].total_size == truth.total_size
    latest = store.latest_ci_config(small_sim.project_id, "main")
    assert latest is not None and latest.content and "stages" in latest.content
    assert [g.key for g in store.resource_groups(small_sim.project_id)] == sorted(project.resource_groups)
    assert store.last_sync(small_sim.project_id) == NOW


def test_unchanged_refresh_costs_at_most_two_requests(small_sim: SimulatedGitLab, store: Store) -> None:
    with make_client(small_sim) as client:
        sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
        before = store.counts()
        small_sim.stats.reset()
        report = sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert small_sim.stats.total_requests <= 2, small_sim.stats.by_endpoint
    assert report.requests == small_sim.stats.total_requests
    assert report.pipelines == 0 and report.logs == 0
    assert store.counts() == before


def _api(sim: SimulatedGitLab) -> httpx.Client:
    return httpx.Client(base_url=sim.url + "/api/v4", headers={"PRIVATE-TOKEN": sim.token})


def test_pipeline_changing_state_between_syncs(small_sim: SimulatedGitLab, store: Store) -> None:
    pid = small_sim.project_id
    with make_client(small_sim) as client:
        sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
        with _api(small_sim) as api:
            created = api.post(f"/projects/{pid}/pipeline", json={"ref": "main"})
            assert created.status_code == 201, created.text
        new_id = created.json()["id"]
        small_sim.advance(90)  # some jobs running, others waiting
        sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
        mid = store.pipeline(new_id)
        assert mid is not None and mid.status in ("running", "pending", "created")
        assert_matches_world(small_sim, store)
        small_sim.advance(6 * 3600)  # all finished
        small_sim.stats.reset()
        report = sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    done = store.pipeline(new_id)
    assert done is not None and done.status in ("success", "failed", "manual") and done.finished_at is not None
    assert_matches_world(small_sim, store)
    # Only the logs that were not fetched before; none twice.
    new_jobs = store.jobs(pid, pipeline_id=new_id)
    assert report.logs + report.logs_unavailable <= len(new_jobs)
    assert small_sim.stats.count("/trace") == report.logs + report.logs_unavailable


def test_retried_job_is_flagged(small_sim: SimulatedGitLab, store: Store) -> None:
    pid = small_sim.project_id
    with make_client(small_sim) as client:
        sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
        target = next(j for j in store.jobs(pid) if j.status in ("failed", "success") and not j.retried)
        with _api(small_sim) as api:
            resp = api.post(f"/projects/{pid}/jobs/{target.id}/retry")
            assert resp.status_code == 201, resp.text
        new_id = resp.json()["id"]
        small_sim.advance(6 * 3600)
        sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    jobs = {j.id: j for j in store.jobs(pid, pipeline_id=target.pipeline_id)}
    assert jobs[target.id].retried and not jobs[new_id].retried
    assert [j.id for j in store.jobs(pid, pipeline_id=target.pipeline_id, include_retried=False)].count(target.id) == 0
    assert_matches_world(small_sim, store)


def test_group_sync_stores_every_project(small_sim: SimulatedGitLab, store: Store) -> None:
    with make_client(small_sim) as client:
        reports = sync_projects(client, store, group="platform", options=options(), now=NOW)
    paths = sorted(r.project.path for r in reports)
    assert paths == sorted(p.path for p in small_sim.world.projects.values())
    assert sorted(p.path for p in store.projects()) == paths
    assert_matches_world(small_sim, store)


def test_since_limits_the_first_sync(small_sim: SimulatedGitLab, store: Store) -> None:
    pid = small_sim.project_id
    all_pipelines = small_sim.world.all_pipelines(pid)
    cut = sorted(p.created_at for p in all_pipelines)[len(all_pipelines) // 2]
    since = datetime.fromtimestamp(cut, UTC)
    with make_client(small_sim) as client:
        sync_project(client, store, small_sim.project_path, options=options(since=since), now=NOW)
    stored = store.pipelines(pid)
    assert stored and min(p.updated_at for p in stored) >= since
    assert len(stored) < len(all_pipelines)
    # Every job of every stored pipeline is there, and no job of a pipeline that is not.
    world_jobs = {j.id for j in small_sim.world.all_jobs(pid) if j.pipeline_id in {p.id for p in stored}}
    assert {j.id for j in store.jobs(pid)} == world_jobs


def test_a_project_stored_by_another_process_at_the_same_moment_is_used(
    small_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two first syncs of one project on one PostgreSQL database can insert it at the same moment; the loser's
    insert fails on the path's unique index. The sync then finds the row and updates it instead of failing."""
    with Store.open(tmp_path / "s.db") as store, make_client(small_sim) as client:
        real = store.upsert_project
        calls: list[int] = []

        def racing(project: Project) -> None:
            calls.append(project.id)
            if len(calls) == 1:
                real(project)  # the other process's insert lands first
                raise StoreError("store: duplicate key value violates unique constraint projects_path_key")
            real(project)

        monkeypatch.setattr(store, "upsert_project", racing)
        project = resolve_project(client, store, small_sim.project_path)
        assert project.id == small_sim.project_id and calls == [project.id, project.id]
        assert store.project(small_sim.project_path) == project

        def broken(project: Project) -> None:
            raise StoreError("store: disk I/O error")

        with Store.open(tmp_path / "other.db") as empty:
            monkeypatch.setattr(empty, "upsert_project", broken)
            with pytest.raises(StoreError, match="disk I/O"):
                resolve_project(client, empty, small_sim.project_path)


def _first_jobs_page_before_last_pipeline_detail(sim: SimulatedGitLab) -> bool:
    log = [path for _, path, _ in sim.stats.log]
    first_jobs = next(i for i, path in enumerate(log) if path.endswith("/jobs"))
    details = [i for i, path in enumerate(log) if path == "/api/graphql" or "/pipelines/" in path]
    last_detail = max(i for i in details if not log[i].endswith("/jobs"))
    return first_jobs < last_detail


@pytest.mark.parametrize("whole_history", [True, False], ids=["since-all", "since-window"])
def test_a_first_sync_of_the_whole_history_lists_jobs_beside_the_pipelines(whole_history: bool, tmp_path: Path) -> None:
    """The jobs listing (sequential keyset pages) starts with the pipelines step when it will be read to its end
    (a first sync of the whole history); with a ``since`` window it waits for the pipelines, which tell it where
    to stop. Both end with the same store as the world."""
    with SimulatedGitLab(Scenario(days=3, pipelines_per_day=4, migration_day=2), latency_ms=15) as sim:
        pid = sim.project_id
        pipelines = sim.world.all_pipelines(pid)
        since = None if whole_history else datetime.fromtimestamp(min(p.created_at for p in pipelines) - 1, UTC)
        with Store.open(tmp_path / "s.db") as store, make_client(sim) as client:
            report = sync_project(client, store, sim.project_path, options=options(since=since), now=NOW)
            assert report.requests == sim.stats.total_requests
            assert _first_jobs_page_before_last_pipeline_detail(sim) is whole_history
            assert_matches_world(sim, store)
            sim.stats.reset()
            again = sync_project(client, store, sim.project_path, options=options(since=since), now=NOW)
            assert again.requests == sim.stats.total_requests <= 2  # the refresh starts no early listing


def test_job_patterns_limit_logs(small_sim: SimulatedGitLab, store: Store) -> None:
    with make_client(small_sim) as client:
        report = sync_project(
            client, store, small_sim.project_path, options=options(job_patterns=("build-ci-image",)), now=NOW
        )
    names = {j.name for j in store.jobs(small_sim.project_id, ids=store.job_facts(j.id for j in store.jobs()))}
    assert names == {"build-ci-image"}
    assert report.logs_skipped > 0


def test_parse_since() -> None:
    assert parse_since("30d", now=NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_since("12h", now=NOW) == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert parse_since("all", now=NOW) is None
    assert parse_since("2026-05-01", now=NOW) == datetime(2026, 5, 1, tzinfo=UTC)
    with pytest.raises(Exception, match="--since"):
        parse_since("yesterday-ish", now=NOW)


def _checksum_rows(store: Store, pid: int) -> list[tuple[object, ...]]:
    return [(c.sha, c.path, c.blob_id, c.last_commit_id, c.content_sha256) for c in store.file_checksums(pid)]


def test_checksums_from_history_equal_one_head_per_file(small_sim: SimulatedGitLab, tmp_path: Path) -> None:
    from cidash.sim.faults import FaultPlan, FaultRule

    pid = small_sim.project_id
    with make_client(small_sim) as client, Store.open(tmp_path / "a.db") as fast:
        sync_project(client, fast, small_sim.project_path, options=options(fetch_logs=False), now=NOW)
        fast_heads = small_sim.stats.count("HEAD /projects/:id/repository/files")
        shas = len(fast.pipeline_shas(pid))
        # Without the commits listing (an instance that lacks it): one HEAD per file per SHA, same rows.
        small_sim.stats.reset()
        small_sim.set_faults(FaultPlan(rules=(FaultRule(endpoint="GET /projects/:id/repository/commits", status=404),)))
        with Store.open(tmp_path / "b.db") as slow:
            sync_project(client, slow, small_sim.project_path, options=options(fetch_logs=False), now=NOW)
            assert _checksum_rows(slow, pid) == _checksum_rows(fast, pid)
        slow_heads = small_sim.stats.count("HEAD /projects/:id/repository/files")
    files = len(options().critical_files)
    assert slow_heads == shas * files
    assert fast_heads < slow_heads / 2


def test_a_first_sync_asks_each_file_version_once_across_refs(small_sim: SimulatedGitLab, store: Store) -> None:
    """A branch's history shares its older commits with the main line: the refs' checksums ask each file version
    (the file at the last commit that changed it) once, the fewest HEADs that can tell every SHA's checksums."""
    pid = small_sim.project_id
    files = options().critical_files
    project = small_sim.world.projects[pid]
    pipelines = small_sim.world.all_pipelines(pid)
    assert len({p.ref for p in pipelines}) > 1
    versions = {
        (f, commit.last_change.get(f, commit.sha))
        for p in pipelines
        for commit in [project.commits[p.sha]]
        for f in files
        if f in commit.files
    }
    with make_client(small_sim) as client:
        sync_project(client, store, small_sim.project_path, options=options(fetch_logs=False), now=NOW)
    assert small_sim.stats.count("HEAD /projects/:id/repository/files") == len(versions)
    assert len(store.checksummed_shas(pid)) == len({p.sha for p in pipelines})


def test_incremental_checksums_come_from_compare(tmp_path: Path) -> None:
    """New pipelines after a first sync: one compare per new SHA from the previous SHA of its ref, and a HEAD only
    for critical files that changed; the rows are exactly GitLab's (blob ids as git computes them, last commits)."""
    from datetime import timedelta

    from cidash.sim import Scenario

    scenario = Scenario(days=6, pipelines_per_day=5, migration_day=3, with_docs_project=False)
    with SimulatedGitLab(scenario, clock_start=scenario.end - timedelta(days=2)) as sim:
        pid = sim.project_id
        with make_client(sim) as client, Store.open(tmp_path / "s.db") as store:
            sync_project(client, store, sim.project_path, options=options(fetch_logs=False), now=NOW)
            before = store.pipeline_shas(pid)
            sim.advance(14 * 3600)  # 00:00 -> 14:00: half a day of pipelines
            sim.stats.reset()
            sync_project(client, store, sim.project_path, options=options(fetch_logs=False), now=NOW)
            new = store.pipeline_shas(pid) - before
            assert new, "the clock moved past new commits"
            compares = sim.stats.count("GET /projects/:id/repository/compare")
            heads = sim.stats.count("HEAD /projects/:id/repository/files")
            assert 0 < compares <= len(new)
            assert sim.stats.count("GET /projects/:id/repository/commits") == 0
            files = options().critical_files
            assert heads < len(new) * len(files)
            project = sim.world.projects[pid]
            for sha in store.pipeline_shas(pid):
                rows = {c.path: c for c in store.file_checksums(pid, sha=sha)}
                assert set(rows) == set(files), sha
                commit = project.commits[sha]
                for path in files:
                    content = commit.files.get(path)
                    assert rows[path].blob_id == (git_blob_id(content) if content is not None else None)
                    if content is not None:
                        assert rows[path].last_commit_id == commit.last_change.get(path, commit.sha)


def test_compare_cut_short_falls_back_to_heads(small_sim: SimulatedGitLab, store: Store) -> None:
    """A compare GitLab could not finish (``compare_timeout``) or that is not one commit: a HEAD per file."""
    from cidash.remote.http import Comparison

    with make_client(small_sim) as client:
        sync_project(client, store, small_sim.project_path, options=options(fetch_logs=False), now=NOW)
        pid = small_sim.project_id
        main = [p.sha for p in store.pipelines(pid, ref="main")]
        prev, last = next((a, b) for a, b in itertools.pairwise(main) if a != b)
        rows = {(c.path, c.blob_id, c.last_commit_id, c.content_sha256) for c in store.file_checksums(pid, sha=last)}
        original = client.http.compare
        calls: list[tuple[str, str]] = []

        def cut_short(project_id: int, a: str, b: str) -> Comparison:
            calls.append((a, b))
            return Comparison(original(project_id, a, b).paths, (), False)

        client.http.compare = cut_short  # type: ignore[method-assign]
        small_sim.stats.reset()
        with ThreadPoolExecutor(2) as pool:
            ctx = _Ctx(client, store, store.project(pid), options(), pool, None, NOW)  # type: ignore[arg-type]
            got = _checksums_from_compare(ctx, "main", {last}, {prev}, options().critical_files)
    assert calls == [(prev, last)]
    assert got is not None
    assert {(c.path, c.blob_id, c.last_commit_id, c.content_sha256) for c in got} == rows
    assert small_sim.stats.count("HEAD /projects/:id/repository/files") == len(options().critical_files)


def test_compare_overflow_on_the_wire_falls_back_to_heads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The simulator cuts a compare's diff list as GitLab does (``compare_timeout`` true): every new SHA then costs a
    HEAD per critical file, with the same rows."""
    from datetime import timedelta

    import cidash.sim.api.repository as sim_server
    from cidash.sim import Scenario

    monkeypatch.setattr(sim_server, "COMPARE_MAX_FILES", 0)
    scenario = Scenario(days=6, pipelines_per_day=5, migration_day=3, with_docs_project=False)
    with SimulatedGitLab(scenario, clock_start=scenario.end - timedelta(days=2)) as sim:
        pid = sim.project_id
        with make_client(sim) as client, Store.open(tmp_path / "s.db") as store:
            sync_project(client, store, sim.project_path, options=options(fetch_logs=False), now=NOW)
            before = store.pipeline_shas(pid)
            sim.advance(14 * 3600)
            sim.stats.reset()
            sync_project(client, store, sim.project_path, options=options(fetch_logs=False), now=NOW)
            new = store.pipeline_shas(pid) - before
            with _api(sim) as api:
                shas = sorted(new)
                answer = api.get(f"/projects/{pid}/repository/compare", params={"from": shas[0], "to": shas[-1]})
            assert answer.status_code == 200 and answer.json()["compare_timeout"] is True
            files = options().critical_files
            assert sim.stats.count("GET /projects/:id/repository/compare") >= 1
            assert sim.stats.count("HEAD /projects/:id/repository/files") == len(new) * len(files)
            project = sim.world.projects[pid]
            for sha in new:
                rows = {c.path: c for c in store.file_checksums(pid, sha=sha)}
                for path in files:
                    content = project.commits[sha].files.get(path)
                    assert rows[path].blob_id == (git_blob_id(content) if content is not None else None)


def _parses_by_thread(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[int]]:
    """Record which thread parses each log received whole (its name), and the bytes held for the logs step minus
    those given back (:meth:`_Ctx.hold_log`, :meth:`_Ctx.release_log`)."""
    import threading

    import cidash.logparse

    threads: list[str] = []
    balance = [0]
    real_parse, real_hold, real_release = cidash.logparse.parse_bytes, _Ctx.hold_log, _Ctx.release_log

    def parse_bytes(data: bytes) -> Any:
        threads.append(threading.current_thread().name)
        return real_parse(data)

    def hold_log(self: _Ctx, size: int) -> bool:
        held = real_hold(self, size)
        balance[0] += size if held else 0
        return held

    def release_log(self: _Ctx, size: int) -> None:
        balance[0] -= size
        real_release(self, size)

    monkeypatch.setattr(cidash.logparse, "parse_bytes", parse_bytes)
    monkeypatch.setattr(_Ctx, "hold_log", hold_log)
    monkeypatch.setattr(_Ctx, "release_log", release_log)
    return threads, balance


def _log_rows(store: Store, project_id: int) -> dict[int, Any]:
    return dict(store.job_facts({j.id: j for j in store.jobs(project_id)}))


def test_logs_received_whole_are_parsed_by_the_logs_step(
    small_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small log is downloaded on a pool worker and parsed on the thread that runs the logs step (one log after
    another: cheaper than between the workers' socket calls), while the bytes so held stay under the budget; past
    it the worker parses, as a long log's worker always does. Either way the store ends with the same facts, and
    every byte held is given back."""
    import threading

    import cidash.sync.context as context

    threads, balance = _parses_by_thread(monkeypatch)
    with make_client(small_sim) as client, Store.open(tmp_path / "step.db") as step:
        report = sync_project(client, step, small_sim.project_path, options=options(), now=NOW)
        here = threading.current_thread().name
        assert report.logs > 0 and threads.count(here) == report.logs == len(threads)
        assert balance == [0] and context._HELD.bytes == 0  # the budget is the process's: all given back
        assert_matches_world(small_sim, step)
        by_step = _log_rows(step, small_sim.project_id)

    threads.clear()
    monkeypatch.setattr(context, "_HELD_LOG_BYTES", 0)  # nothing may wait: every worker parses its own log
    with make_client(small_sim) as client, Store.open(tmp_path / "workers.db") as workers:
        again = sync_project(client, workers, small_sim.project_path, options=options(), now=NOW)
        assert again.logs == report.logs and here not in threads and len(threads) == again.logs
        assert balance == [0] and context._HELD.bytes == 0
        assert _log_rows(workers, small_sim.project_id) == by_step


def test_a_log_sink_keeps_a_log_sent_whole_and_parses_a_streamed_one_as_it_comes() -> None:
    from cidash.logparse import parse_bytes
    from cidash.sync import _LogSink
    from paths import DATA

    data = (DATA / "logs" / "runner-19-timestamps.log").read_bytes()
    sink = _LogSink()
    sink()(data)  # one piece: a log received whole, left for the logs step
    assert sink.body == data and sink.parser is None and sink.bytes == len(data)
    whole = sink.facts()
    feed = sink()  # a retried download starts afresh
    assert sink.body is None and sink.bytes == 0
    for i in range(0, len(data), 1000):  # chunks: a long log, parsed as it streams in
        feed(data[i : i + 1000])
        assert sink.body is None or i == 0
    assert sink.parser is not None and sink.bytes == len(data)
    assert sink.facts() == whole == parse_bytes(data)
    assert whole.sections and whole.startup_seconds is not None


def test_logs_held_for_a_step_that_fails_are_given_back(
    small_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes held for the logs step count for the whole process (a group syncs several projects at once): a
    sync that fails while logs wait gives them back, or later syncs in the process (the dashboard's, serve's) would
    find the budget spent."""
    import cidash.sync.context as context
    import cidash.sync.logs as logs

    real = logs._parsed
    taken = [0]

    def fail_on_the_third(ctx: _Ctx, fetched: Any) -> Any:
        taken[0] += 1
        if taken[0] == 3:
            raise RuntimeError("a bug in the step")
        return real(ctx, fetched)

    monkeypatch.setattr(logs, "_parsed", fail_on_the_third)
    with (
        make_client(small_sim) as client,
        Store.open(tmp_path / "s.db") as store,
        pytest.raises(RuntimeError, match="a bug in the step"),
    ):
        sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert taken[0] == 3 and context._HELD.bytes == 0


class _PrefixProxy:
    """GitLab installed under a relative URL root (``https://host/gitlab``): requests under ``/gitlab`` go to the
    simulator without the prefix, and the ``Link`` headers it answers with name the prefix, as such a GitLab's do."""

    PREFIX = "/gitlab"

    def __init__(self, upstream: str) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        up = urlsplit(upstream)
        self.paths: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

            def forward(self) -> None:
                proxy.paths.append(self.path)
                if not self.path.startswith(proxy.PREFIX + "/"):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path[len(proxy.PREFIX) :], headers=headers)
                answer = conn.getresponse()
                body = answer.read()
                conn.close()
                self.send_response(answer.status)
                mine = proxy.url + "/"
                for name, value in answer.getheaders():
                    if name.lower() in ("content-length", "transfer-encoding", "connection"):
                        continue
                    if name.lower() == "link":
                        value = value.replace(f"{up.scheme}://{up.netloc}/", mine)
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}{self.PREFIX}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("trailing_slash", [False, True])
def test_a_gitlab_under_a_relative_url_root_syncs_whole(
    small_sim: SimulatedGitLab, tmp_path: Path, trailing_slash: bool
) -> None:
    """``[gitlab] url = "https://host/gitlab"``: every request, the keyset pages the jobs' ``Link`` headers name
    included, goes under ``/gitlab/api/v4``, and the store ends as a sync at the root leaves it."""
    proxy = _PrefixProxy(small_sim.url)
    try:
        url = proxy.url + ("/" if trailing_slash else "")
        connection = Connection(url=url, token=Secret(small_sim.token), max_rps=0, concurrency=6)
        with Store.open(str(tmp_path / "s.db")) as store, GitLabClient(connection) as client:
            report = sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
            assert report.first_sync and report.pipelines == small_sim.truth.pipelines
            assert_matches_world(small_sim, store)
    finally:
        proxy.close()
    assert proxy.paths and all(p.startswith("/gitlab/api/v4/") for p in proxy.paths)
    assert any("/jobs?" in p and "cursor=" in p for p in proxy.paths)  # a next page from a Link header


def test_a_log_past_the_cap_is_kept_truncated_with_a_warning(
    small_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_LOG_BYTES (here 1,500 bytes: most of the simulator's logs are longer) the sync stops reading a log,
    keeps the facts of what it read marked truncated, says so once per log, and neither fails nor defers it."""
    import dataclasses

    from cidash.logparse import parse_bytes
    from cidash.remote import policy

    with make_client(small_sim) as client:
        logs: dict[int, bytes] = {}
        for job in small_sim.world.all_jobs(small_sim.project_id):
            parts: list[bytes] = []
            if client.http.stream_trace(small_sim.project_id, job.id, lambda: parts.append):  # noqa: B023
                logs[job.id] = b"".join(parts)
    long_logs = {i for i, log in logs.items() if len(log) > 1500}
    assert long_logs and len(long_logs) < len(logs)

    monkeypatch.setattr(policy, "MAX_LOG_BYTES", 1500)
    with make_client(small_sim) as client, Store.open(tmp_path / "cut.db") as cut:
        report = sync_project(client, cut, small_sim.project_path, options=options(), now=NOW)
        rows = _log_rows(cut, small_sim.project_id)
    assert rows and report.logs == len(rows) and not report.deferred
    for job_id, facts in rows.items():
        if job_id in long_logs:
            assert facts == dataclasses.replace(parse_bytes(logs[job_id][:1500]), truncated=True)
        else:
            assert facts == parse_bytes(logs[job_id])
    cut_warnings = [w for w in report.warnings if "read only to 1.5 kB: its facts are marked truncated" in w]
    assert len(cut_warnings) == min(len(long_logs & set(rows)), len(report.warnings))
    assert report.warnings_total >= len(long_logs & set(rows))
