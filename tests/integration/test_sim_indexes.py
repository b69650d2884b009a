"""The simulator's indexes and stores (jobs by id, whole logs) answer exactly what a scan of its world gives."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cidash.sim import Scenario, SimulatedGitLab, build_world
from cidash.sim.tracegen import TraceStore, render_trace
from cidash.sim.world import SimJob


@pytest.fixture
def small() -> Iterator[SimulatedGitLab]:
    with SimulatedGitLab(Scenario(days=4, pipelines_per_day=5, migration_day=3)) as server:
        yield server


def _keyset_ids(client: httpx.Client, params: dict[str, Any]) -> list[int]:
    """Every id of a keyset listing, page after page (the next page's URL from ``Link``)."""
    ids: list[int] = []
    response = client.get("/projects/42/jobs", params={"pagination": "keyset", "order_by": "id", **params})
    for _ in range(1000):
        assert response.status_code == 200
        ids.extend(j["id"] for j in response.json())
        link = response.headers.get("link", "")
        if 'rel="next"' not in link:
            return ids
        response = client.get(link[link.index("<") + 1 : link.index(">")])
    raise AssertionError("the listing did not end")


def _scan(jobs: list[SimJob], now: float, scopes: set[str] | None, before: int | None = None) -> list[int]:
    """The listing by brute force: newest first, created by now, in the scopes, below the cursor."""
    return [
        j.id
        for j in sorted(jobs, key=lambda j: -j.id)
        if j.created_at <= now and (scopes is None or j.status_at(now) in scopes) and (before is None or j.id < before)
    ]


def test_keyset_pages_equal_a_scan_at_any_depth_and_see_new_jobs(small: SimulatedGitLab) -> None:
    world = small.world
    jobs = list(world.main.jobs.values())
    now = world.now()
    with httpx.Client(base_url=small.url + "/api/v4", headers={"PRIVATE-TOKEN": small.token}, timeout=10) as client:
        for per_page in (1, 7, 100):
            assert _keyset_ids(client, {"per_page": per_page}) == _scan(jobs, now, None)
        scoped = {"per_page": 9, "scope[]": ["success", "manual"]}
        assert _keyset_ids(client, scoped) == _scan(jobs, now, {"success", "manual"})
        middle = sorted(j.id for j in jobs)[len(jobs) // 2]
        for before in (middle, middle + 1, 0, 10**9):
            page = client.get(
                "/projects/42/jobs", params={"pagination": "keyset", "per_page": 100, "id_before": before}
            )
            assert [j["id"] for j in page.json()] == _scan(jobs, now, None, before)[:100]
        # a retry adds a job: the index is rebuilt, the new job leads the listing
        old = next(j for j in jobs if j.name == "lint" and j.final_status == "success" and not j.retried)
        retry = client.post(f"/projects/42/jobs/{old.id}/retry")
        assert retry.status_code == 201
        new_id = retry.json()["id"]
        listed = _keyset_ids(client, {"per_page": 50})
        assert listed[0] == new_id and listed == _scan(list(world.main.jobs.values()), world.now(), None)


def test_trace_store_gives_the_rendered_bytes_and_keeps_only_whole_logs() -> None:
    world = build_world(Scenario(days=2, pipelines_per_day=3, migration_day=2))
    main = world.main
    now = world.now()
    store = TraceStore()
    jobs = [j for j in main.jobs.values() if j.facts is not None]
    assert jobs
    for _ in range(2):  # rendered, then served from the store
        for job in jobs:
            assert store.trace(job, main.path, main.id, now) == render_trace(job, main.path, main.id, now)
    assert store.used > 0
    # a log still being written is served as far as it goes and not kept
    job = next(j for j in jobs if j.started_at is not None and j.finished_at is not None)
    assert job.started_at is not None and job.finished_at is not None
    middle = (job.started_at + job.finished_at) / 2
    fresh = TraceStore()
    partial = fresh.trace(job, main.path, main.id, middle)
    assert partial == render_trace(job, main.path, main.id, middle) and fresh.used == 0
    # a changed plan (the job's facts now say it failed) is rendered afresh, not taken from the store
    before = store.trace(job, main.path, main.id, now)
    assert job.facts is not None
    job.facts = dataclasses.replace(job.facts, success=not job.facts.success)
    after = store.trace(job, main.path, main.id, now)
    assert after != before and after == render_trace(job, main.path, main.id, now)
    # no budget: nothing is kept, every answer is still right
    none = TraceStore(budget_bytes=0)
    assert none.trace(jobs[0], main.path, main.id, now) == render_trace(jobs[0], main.path, main.id, now)
    assert none.used == 0


def test_pipeline_listing_pages_share_one_listing_rebuilt_after_a_mutation(small: SimulatedGitLab) -> None:
    world = small.world
    params = {"status": "success", "order_by": "updated_at", "sort": "asc", "per_page": 5}

    def listed(client: httpx.Client) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        for page in range(1, 100):
            body = client.get("/projects/42/pipelines", params={**params, "page": page}).json()
            if not body:
                return out
            out.extend((p["id"], p["status"]) for p in body)
        raise AssertionError("the listing did not end")

    with httpx.Client(base_url=small.url + "/api/v4", headers={"PRIVATE-TOKEN": small.token}, timeout=10) as client:
        first = listed(client)
        assert len(first) > 5 and {s for _, s in first} == {"success"} and world.listings
        # a retry makes a successful pipeline run again: it leaves the listing at once, at the same clock
        pipeline = world.main.pipelines[first[0][0]]
        job = next(world.main.jobs[j] for j in pipeline.job_ids if world.main.jobs[j].name == "lint")
        assert client.post(f"/projects/42/jobs/{job.id}/retry").status_code == 201
        after = listed(client)
        assert after == first[1:]
        world.listings.clear()  # built from scratch: the same answer
        assert listed(client) == after


def test_changes_of_a_path_equal_the_filtered_history_from_any_commit() -> None:
    world = build_world(Scenario(days=4, pipelines_per_day=6, migration_day=3))
    main = world.main
    paths = sorted({p for c in main.commits.values() for p in c.changed})
    assert len(paths) > 3
    starts = [main.commits[sha] for sha in main.heads.values()] + list(main.commits.values())[::7]
    for _ in range(2):  # the second round answers from what the first remembered
        for start in starts:
            history: list[Any] = []
            commit = start
            while commit is not None:
                history.append(commit)
                commit = main.commits.get(commit.parent) if commit.parent else None
            for path in paths:
                expected = [c.sha for c in history if path in c.changed]
                assert [c.sha for c in world.changes_of(main, start, path)] == expected, (start.sha, path)
