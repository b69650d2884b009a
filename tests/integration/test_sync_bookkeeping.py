"""Sync bookkeeping: hostile numbers, deferred items, the per-project lease, interrupted runs."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cidash.cli import main
from cidash.models import MAX_DURATION_SECONDS, MAX_IMAGE_BYTES
from cidash.remote import RetryPolicy
from cidash.remote import projects as remote_projects
from cidash.sim import Scenario, SimulatedGitLab
from cidash.sim.faults import FaultPlan, FaultRule
from cidash.sim.hostile_numbers import HostileNumbers
from cidash.store import Store, SyncLease
from cidash.sync import SyncProgress, sync_project
from test_sync import NOW, make_client, options
from test_sync_process import env_for, sync_cmd

TRACE = "GET /projects/:id/jobs/:job_id/trace"
PIPELINE = "GET /projects/:id/pipelines/:pipeline_id"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db") as s:
        yield s


@pytest.fixture
def hostile_sim() -> Iterator[SimulatedGitLab]:
    """Every 5th job, every pipeline and every registry tag carries a number (or field) GitLab should never send."""
    hostile = HostileNumbers(every=5, pipeline_every=1)
    with SimulatedGitLab(Scenario(days=2, pipelines_per_day=4, migration_day=2), hostile_numbers=hostile) as sim:
        yield sim


# -- hostile numbers ---------------------------------------------------------------------------------------------


def test_hostile_numbers_sync_completes_warns_by_record_and_stores_no_bad_value(
    hostile_sim: SimulatedGitLab, store: Store
) -> None:
    sim, pid = hostile_sim, hostile_sim.project_id
    hostile = sim.hostile_numbers
    assert hostile is not None
    with make_client(sim) as client:
        report = sync_project(client, store, sim.project_path, options=options(), now=NOW)
    text = "\n".join(report.warnings)
    assert report.warnings_total == len(report.warnings)  # all kept: far below the cap
    # Every corrupted job and pipeline is named in a warning (the one without a usable id as such).
    expected_rejected: set[tuple[str, int]] = set()
    for kind, records in (("job", sim.world.all_jobs(pid)), ("pipeline", sim.world.all_pipelines(pid))):
        for record in records:
            chosen = hostile.corruption(kind, record.id)
            if chosen is None:
                continue
            key, _value, whole = chosen
            if key == "id":
                assert "a job without a usable id rejected: id 'abc' is not an integer id; skipped" in text
                continue
            assert f"{kind} {record.id}" in text, (kind, record.id, key)
            if whole:
                expected_rejected.add((kind, record.id))
    assert expected_rejected, "the scenario exercises no record-level rejection"
    deferred = {(d.kind, d.item_id) for d in store.deferred(pid)}
    assert deferred == expected_rejected
    assert len(report.deferred) == len(expected_rejected)
    # Nothing out of range reached the store.
    conn = store.connection
    for table, column in (
        ("jobs", "duration"),
        ("jobs", "queued_duration"),
        ("pipelines", "duration"),
        ("pipelines", "queued_duration"),
    ):
        for (value,) in conn.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"):
            assert math.isfinite(value) and 0 <= value <= MAX_DURATION_SECONDS, (table, column, value)
    sizes = [r[0] for r in conn.execute("SELECT total_size FROM image_tags")]
    assert sizes and all(s is None or 0 < s <= MAX_IMAGE_BYTES for s in sizes)
    assert all(s is None for s in sizes)  # the simulator broke every tag's size
    # The usable records are all there: every job that was not rejected.
    stored_jobs = {j.id for j in store.jobs(pid)}
    rejected_jobs = {i for kind, i in expected_rejected if kind == "job"}
    no_id = {j.id for j in sim.world.all_jobs(pid) if (hostile.corruption("job", j.id) or ("",))[0] == "id"}
    placed = {j.id for j in sim.world.all_jobs(pid) if store.pipeline(j.pipeline_id) is not None}
    assert stored_jobs == placed - rejected_jobs - no_id
    assert store.sync_runs(pid)[0].status == "ok" and store.sync_runs(pid)[0].deferred == len(expected_rejected)


def test_hostile_numbers_criteria_and_every_export(
    hostile_sim: SimulatedGitLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "hostile.db"
    with make_client(hostile_sim) as client, Store.open(db) as store:
        sync_project(client, store, hostile_sim.project_path, options=options(), now=NOW)
    argv = ["--db", str(db), "--now", NOW.isoformat(), "--project", hostile_sim.project_path]
    code = main(["check", *argv, "--format", "json"])
    checked = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    image_size = next(c for c in checked["criteria"] if c["id"] == "image_size")
    assert image_size["status"] == "no_data" and image_size["value"] is None  # never a PASS on a bad size
    for fmt in ("json", "csv", "markdown", "openmetrics"):
        target = tmp_path / f"export.{fmt}"
        assert main(["export", *argv, "--format", fmt, "--output", str(target)]) == 0, capsys.readouterr().err
        text = target.read_text(encoding="utf-8")
        assert "NaN" not in text and "Infinity" not in text and "1e+308" not in text
        if fmt == "json":
            doc = json.loads(text)
            assert doc["metrics"]["image_sizes"] == []


def test_deferred_records_are_fetched_again_and_stored_once_usable(hostile_sim: SimulatedGitLab, store: Store) -> None:
    pid = hostile_sim.project_id
    with make_client(hostile_sim) as client:
        sync_project(client, store, hostile_sim.project_path, options=options(), now=NOW)
        deferred = store.deferred(pid)
        assert deferred
        # Still broken: fetched again by id (one request each), deferred again with the attempt counted.
        hostile_sim.stats.reset()
        again = sync_project(client, store, hostile_sim.project_path, options=options(), now=NOW)
        assert {(d.kind, d.item_id) for d in store.deferred(pid)} == {(d.kind, d.item_id) for d in deferred}
        assert all(d.attempts == 2 for d in store.deferred(pid))
        assert again.deferred_total == len(deferred)
        refetches = hostile_sim.stats.count("GET /projects/:id/jobs/:job_id") + hostile_sim.stats.count(PIPELINE)
        assert refetches == len(deferred)
        # GitLab serves them properly now: stored, no longer deferred, their logs fetched.
        hostile_sim.hostile_numbers = None
        fixed = sync_project(client, store, hostile_sim.project_path, options=options(), now=NOW)
    assert store.deferred(pid) == [] and fixed.deferred_total == 0
    stored = {j.id for j in store.jobs(pid)}
    facts = store.job_facts(stored)
    for d in deferred:
        if d.kind == "job":
            assert d.item_id in stored
            job = store.jobs(pid, ids=[d.item_id])[0]
            if job.status in ("success", "failed") and job.started_at is not None:
                assert d.item_id in facts, d


def test_cli_sync_of_hostile_numbers_exits_0_and_lists_warnings_and_deferred(
    hostile_sim: SimulatedGitLab, tmp_path: Path
) -> None:
    proc = subprocess.run(
        sync_cmd(hostile_sim, tmp_path / "cli.db"),
        env=env_for(hostile_sim),
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "cidash sync: warning: pipeline " in proc.stderr
    assert "more warnings (--verbose shows them)" in proc.stderr
    assert "item(s) deferred to the next sync:" in proc.stderr and "  deferred: job " in proc.stderr


# -- deferred logs ------------------------------------------------------------------------------------------------


@pytest.fixture
def small_sim() -> Iterator[SimulatedGitLab]:
    with SimulatedGitLab(Scenario(days=2, pipelines_per_day=4, migration_day=2)) as server:
        yield server


def test_a_log_that_fails_after_retries_is_deferred_not_marked_done(small_sim: SimulatedGitLab, store: Store) -> None:
    pid = small_sim.project_id
    small_sim.set_faults(FaultPlan(rules=(FaultRule(endpoint=TRACE, reset=True, every=3),)))
    with make_client(small_sim, retry=RetryPolicy(attempts=1, base_delay=0.01)) as client:
        report = sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert report.logs > 0 and report.logs_failed > 0
    deferred_logs = [d for d in report.deferred if d.startswith("log of job ")]
    assert len(deferred_logs) == report.logs_failed
    # Their jobs keep log_state NULL: the next sync fetches exactly them.
    pending = store.jobs_needing_logs(pid)
    assert {f"log of job {j.id} " for j in pending} == {d.split("'")[0] for d in deferred_logs}
    small_sim.set_faults(None)
    small_sim.stats.reset()
    with make_client(small_sim) as client:
        again = sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert again.logs == report.logs_failed and again.deferred == ()
    assert small_sim.stats.count("/trace") == report.logs_failed
    assert store.jobs_needing_logs(pid) == []


def test_a_pipeline_whose_details_fail_is_stored_from_the_listing_and_completed_next_sync(
    small_sim: SimulatedGitLab, store: Store
) -> None:
    pid = small_sim.project_id
    # GraphQL failing too (the details' first way, see test_pipeline_details.py): every detail is asked over REST
    graphql = FaultRule(endpoint="POST /api/graphql", status=500)
    small_sim.set_faults(FaultPlan(rules=(graphql, FaultRule(endpoint=PIPELINE, status=500, every=3))))
    with make_client(small_sim, retry=RetryPolicy(attempts=1, base_delay=0.01)) as client:
        report = sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert len(store.pipelines(pid)) == small_sim.truth.pipelines  # none lost
    deferred = store.deferred(pid, "pipeline")
    assert deferred and all("500" in d.reason for d in deferred)
    assert any(w.startswith(f"pipeline {deferred[0].item_id}: details deferred") for w in report.warnings)
    assert all(store.pipeline(d.item_id).duration is None for d in deferred)  # type: ignore[union-attr]
    small_sim.set_faults(None)
    with make_client(small_sim) as client:
        sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    assert store.deferred(pid) == []
    finished = [store.pipeline(d.item_id) for d in deferred]
    assert all(p is not None and (p.status not in ("success", "failed") or p.duration is not None) for p in finished)


# -- the lease: one sync per project at a time ---------------------------------------------------------------------


def test_lease_store_rules(store: Store) -> None:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    ttl = timedelta(seconds=90)
    assert store.acquire_sync_lease(42, "a", pid=1, host="h", now=t0, ttl=ttl) is None
    assert store.acquire_sync_lease(42, "a", pid=1, host="h", now=t0, ttl=ttl) is None  # re-entrant for its owner
    holder = store.acquire_sync_lease(42, "b", pid=2, host="h", now=t0 + timedelta(seconds=30), ttl=ttl)
    assert isinstance(holder, SyncLease) and holder.owner == "a"
    assert store.acquire_sync_lease(43, "b", pid=2, host="h", now=t0, ttl=ttl) is None  # another project
    assert store.renew_sync_lease(42, "a", now=t0 + timedelta(seconds=60), ttl=ttl)
    assert not store.renew_sync_lease(42, "b", now=t0 + timedelta(seconds=60), ttl=ttl)
    # Still held at t0 + 120 s thanks to the renewal; expired at t0 + 151 s.
    assert store.acquire_sync_lease(42, "b", pid=2, host="h", now=t0 + timedelta(seconds=120), ttl=ttl) is not None
    assert store.acquire_sync_lease(42, "b", pid=2, host="h", now=t0 + timedelta(seconds=151), ttl=ttl) is None
    # A holder known to be dead is taken over at once.
    assert (
        store.acquire_sync_lease(
            42, "c", pid=3, host="h", now=t0 + timedelta(seconds=152), ttl=ttl, is_dead=lambda _: True
        )
        is None
    )
    assert store.sync_lease(42).owner == "c"  # type: ignore[union-attr]
    store.release_sync_lease(42, "b")  # not the holder: nothing happens
    assert store.sync_lease(42) is not None
    store.release_sync_lease(42, "c")
    assert store.sync_lease(42) is None


def test_a_second_sync_waits_for_the_first_and_downloads_no_log_twice(
    small_sim: SimulatedGitLab, tmp_path: Path
) -> None:
    db = tmp_path / "shared.db"
    second_waiting = threading.Event()
    first_report: list[object] = []
    errors: list[BaseException] = []

    def first_progress(p: SyncProgress) -> None:
        if p.phase == "jobs":  # hold the first sync mid-way until the second one is seen waiting
            second_waiting.wait(timeout=60)

    def first() -> None:
        try:
            with make_client(small_sim) as client, Store.open(db) as store:
                first_report.append(
                    sync_project(
                        client, store, small_sim.project_path, options=options(), progress=first_progress, now=NOW
                    )
                )
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        while not first_report and not errors:
            with Store.open(db) as probe:
                if probe.project(small_sim.project_path) and probe.sync_lease(small_sim.project_id):
                    break
            time.sleep(0.01)
        seen: list[SyncProgress] = []

        def second_progress(p: SyncProgress) -> None:
            seen.append(p)
            if p.phase == "waiting":
                second_waiting.set()

        with make_client(small_sim) as client, Store.open(db) as store:
            second = sync_project(
                client, store, small_sim.project_path, options=options(), progress=second_progress, now=NOW
            )
    finally:
        second_waiting.set()
        thread.join(timeout=120)
    assert not errors, errors
    assert seen[0].phase == "waiting" and "another sync (pid" in (seen[0].message or "")
    assert second.lease_wait > 0 and second.logs == 0 and second.pipelines == 0
    assert any("waited" in w for w in second.warnings)
    logs = first_report[0].logs + first_report[0].logs_unavailable  # type: ignore[attr-defined]
    assert small_sim.stats.count("/trace") == logs  # each log downloaded once, not once per sync
    with Store.open(db) as store:
        assert store.sync_lease(small_sim.project_id) is None
        assert [r.status for r in store.sync_runs(small_sim.project_id)] == ["ok", "ok"]


# -- a sync killed with -9 ----------------------------------------------------------------------------------------


def test_killed_sync_is_marked_interrupted_and_does_not_hold_the_project(tmp_path: Path) -> None:
    db = tmp_path / "killed.db"
    # Logs after the third answer slowly, so the sync is still running when the test (on a loaded machine) looks.
    slow_logs = FaultPlan(rules=(FaultRule(endpoint="*/trace", latency_ms=400, skip=3),))
    with SimulatedGitLab(Scenario(days=3, pipelines_per_day=4, migration_day=2), latency_ms=4, faults=slow_logs) as sim:
        proc = subprocess.Popen(sync_cmd(sim, db), env=env_for(sim), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while sim.stats.count("/trace") < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert proc.poll() is None, "the sync finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
        conn = sqlite3.connect(db)
        runs = conn.execute("SELECT status FROM sync_runs").fetchall()
        leases = conn.execute("SELECT pid FROM sync_leases").fetchall()
        conn.close()
        assert runs == [("running",)] and leases == [(proc.pid,)]  # what a kill -9 leaves behind
        final = subprocess.run(
            sync_cmd(sim, db), env=env_for(sim), check=False, capture_output=True, text=True, timeout=120
        )
    assert final.returncode == 0, final.stderr
    assert "waiting" not in final.stderr  # the dead holder's lease was free at once, not after its expiry
    assert "was killed before it finished; its run is marked interrupted" in final.stderr
    with Store.open(db) as store:
        runs = store.sync_runs()
        assert [r.status for r in runs] == ["ok", "interrupted"]
        assert runs[1].error is not None and "without finishing" in runs[1].error
        assert store.sync_lease(runs[0].project_id) is None


# -- several projects ---------------------------------------------------------------------------------------------


def test_group_sync_goes_on_past_a_project_that_cannot_be_synced(
    small_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITLAB_TOKEN", small_sim.token)

    def sync(db: str) -> int:
        argv = ["sync", "--url", small_sim.url, "--group", "platform", "--db", str(tmp_path / db)]
        return main([*argv, "--since", "all", "--max-rps", "0", "--progress", "none"])

    small_sim.set_faults(FaultPlan(rules=(FaultRule(endpoint="GET /api/v4/projects/43/pipelines*", status=403),)))
    assert sync("one-fails.db") == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("platform/app: ") and "platform/docs" not in captured.out
    assert "cidash sync: warning: platform/docs: not synced: " in captured.err and "403" in captured.err
    with Store.open(tmp_path / "one-fails.db") as store:
        assert len(store.pipelines(small_sim.project_id)) == small_sim.truth.pipelines
    # Nothing useful could be done: exit 2, one line.
    small_sim.set_faults(FaultPlan(rules=(FaultRule(endpoint="GET /api/v4/projects/*/pipelines*", status=403),)))
    assert sync("all-fail.db") == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("cidash: error:") and "Traceback" not in err


def test_the_dashboards_background_sync_goes_through_the_lease(small_sim: SimulatedGitLab, store: Store) -> None:
    from cidash.config import Config
    from cidash.sync import _HOST, LEASE_TTL
    from cidash.tui.adapters import sync_refresher

    with make_client(small_sim) as client:
        project = remote_projects.project(client.http, small_sim.project_path)
    store.upsert_project(project)
    # Another live sync (this very process, another owner) holds the project.
    now = datetime.now(UTC)
    assert store.acquire_sync_lease(project.id, "cli-sync", pid=os.getpid(), host=_HOST, now=now, ttl=LEASE_TTL) is None
    refresh = sync_refresher(lambda: make_client(small_sim), store, Config(), small_sim.now)
    messages: list[str] = []
    waiting = threading.Event()

    def progress(message: str) -> None:
        messages.append(message)
        if message == "sync waiting":
            waiting.set()

    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(refresh(project, progress)))
    thread.start()
    assert waiting.wait(timeout=60)
    assert small_sim.stats.count("/trace") == 0  # nothing downloaded while the other sync holds the project
    store.release_sync_lease(project.id, "cli-sync")
    thread.join(timeout=120)
    assert results and messages[0] == "sync waiting"
    assert small_sim.stats.count("/trace") > 0


def test_a_sync_that_may_not_wait_skips_a_project_another_process_holds(
    small_sim: SimulatedGitLab, store: Store
) -> None:
    """``cidash serve`` processes sharing a store split the projects: the one that finds a project leased skips it
    (ProjectBusy) before downloading anything, and takes it once the lease is free."""
    from dataclasses import replace

    from cidash.errors import ProjectBusy
    from cidash.sync import _HOST, LEASE_TTL

    with make_client(small_sim) as client:
        project = remote_projects.project(client.http, small_sim.project_path)
        store.upsert_project(project)
        now = datetime.now(UTC)
        assert (
            store.acquire_sync_lease(project.id, "serve-1", pid=os.getpid(), host=_HOST, now=now, ttl=LEASE_TTL) is None
        )
        skip = replace(options(), wait_for_lease=False)
        with pytest.raises(ProjectBusy, match="another process"):
            sync_project(client, store, small_sim.project_path, options=skip, now=NOW)
        assert small_sim.stats.count("/trace") == 0 and not store.pipelines(project.id)
        store.release_sync_lease(project.id, "serve-1")
        report = sync_project(client, store, small_sim.project_path, options=skip, now=NOW)
    assert report.pipelines == small_sim.truth.pipelines


@pytest.mark.parametrize("stop_at", ["project", "pipelines"])
def test_a_sync_stopped_at_its_first_progress_event_finishes_its_run(
    small_sim: SimulatedGitLab, store: Store, stop_at: str
) -> None:
    """A group sync stops the projects in flight by raising from their progress callback; one told to stop at its
    very first event (Ctrl-C just as it started) must still finish its run, not leave it "running"."""

    class Stop(Exception):
        pass

    def progress(update: SyncProgress) -> None:
        if update.phase == stop_at:
            raise Stop

    with make_client(small_sim) as client, pytest.raises(Stop):
        sync_project(client, store, small_sim.project_path, options=options(), now=NOW, progress=progress)
    assert [r.status for r in store.sync_runs(small_sim.project_id)] == ["error"]


# -- text no store can hold ----------------------------------------------------------------------------------------


def test_text_no_store_can_hold_is_stored_with_a_replacement_character(store_target: str) -> None:
    """A NUL (PostgreSQL's text refuses it) or a lone surrogate (UTF-8 has none: SQLite and PostgreSQL both refuse
    it) in a string from GitLab, a CI file or a log used to stop the sync at the store. GitLab's own database holds
    neither in a name, so only a proxy or a hostile server sends them there; a CI file is bytes anyone who can push
    writes, and a log is whatever the job printed. Each such character is stored as U+FFFD."""
    import dataclasses

    with SimulatedGitLab(Scenario(days=2, pipelines_per_day=3, migration_day=2)) as sim:
        project = sim.world.projects[sim.project_id]
        job = next(j for j in project.jobs.values() if j.facts is not None)
        job.name = "te\x00st\ud800"
        job.facts = dataclasses.replace(job.facts, image="alpine\x00:3.20")
        for commit in project.commits.values():
            if ".gitlab-ci.yml" in commit.files:
                commit.files[".gitlab-ci.yml"] += b"\n# a NUL: \x00\n"
        with Store.open(store_target) as store, make_client(sim) as client:
            report = sync_project(client, store, sim.project_path, options=options(), now=NOW)
            assert report.logs > 0 and report.ci_configs > 0
            stored = {j.id: j for j in store.jobs(sim.project_id)}
            assert stored[job.id].name == "te\ufffdst\ufffd"
            facts = store.job_facts([job.id])
            image = facts[job.id].image
            assert image is not None and image.name == "alpine\ufffd:3.20"
            config = store.latest_ci_config(sim.project_id)
            assert config is not None and config.content is not None and "a NUL: \ufffd" in config.content
