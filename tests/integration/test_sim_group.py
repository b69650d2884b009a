"""The simulated group (cidash.sim.group): GitLab's group APIs over it, lazy generation, and cidash syncing it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cidash.config import Config
from cidash.connection import Connection, Secret
from cidash.remote import GitLabClient
from cidash.sim import SimulatedGitLab
from cidash.sim.group import build_group_world
from cidash.store import Store
from cidash.sync import SyncOptions, sync_projects

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def group_sim() -> Iterator[SimulatedGitLab]:
    """7 projects: svc-000, svc-003, svc-006 in platform; the others in platform/team-1 and platform/team-2."""
    with SimulatedGitLab(world=build_group_world(7, subgroups=2, days=2, pipelines_per_day=2)) as sim:
        yield sim


def _get(sim: SimulatedGitLab, path: str, **params: str) -> httpx.Response:
    with httpx.Client(base_url=sim.url + "/api/v4", headers={"PRIVATE-TOKEN": sim.token}, timeout=10) as client:
        return client.get(path, params=params)


def _all_pages(sim: SimulatedGitLab, path: str, **params: str) -> tuple[list[dict[str, object]], int]:
    items: list[dict[str, object]] = []
    page, pages = "1", 0
    while page:
        r = _get(sim, path, **params, page=page)
        assert r.status_code == 200
        items += r.json()
        pages += 1
        page = r.headers["x-next-page"]
    return items, pages


def test_group_projects_with_and_without_subgroups_paginated(group_sim: SimulatedGitLab) -> None:
    direct, _ = _all_pages(group_sim, "/groups/platform/projects", per_page="100")
    assert [p["path_with_namespace"] for p in direct] == ["platform/svc-006", "platform/svc-003", "platform/svc-000"]
    every, pages = _all_pages(group_sim, "/groups/7/projects", include_subgroups="true", per_page="3")
    assert pages == 3
    ids = [p["id"] for p in every]
    assert ids == list(range(106, 99, -1))  # default order: created_at desc (svc-006 is the newest)
    namespaces = {p["path_with_namespace"]: p["namespace"] for p in every}
    sub = namespaces["platform/team-1/svc-001"]
    assert sub == {**sub, "id": 8, "full_path": "platform/team-1", "parent_id": 7, "kind": "group"}
    assert namespaces["platform/svc-000"]["parent_id"] is None
    ascending, _ = _all_pages(group_sim, "/groups/7/projects", include_subgroups="true", order_by="id", sort="asc")
    assert [p["id"] for p in ascending] == sorted(ids)


def test_subgroups_resolve_by_path_and_id(group_sim: SimulatedGitLab) -> None:
    by_path = _get(group_sim, "/groups/platform%2Fteam-2").json()
    assert by_path == _get(group_sim, "/groups/9").json()
    assert (by_path["full_path"], by_path["parent_id"], by_path["full_name"]) == (
        "platform/team-2",
        7,
        "Platform / Team-2",
    )
    own, _ = _all_pages(group_sim, "/groups/platform%2Fteam-2/projects")
    assert sorted(p["path_with_namespace"] for p in own) == ["platform/team-2/svc-002", "platform/team-2/svc-005"]
    assert _get(group_sim, "/groups/platform%2Fteam-9").status_code == 404
    assert _get(group_sim, "/groups/7/projects", order_by="stars").status_code == 400
    assert _get(group_sim, "/groups/7/projects", archived="true").json() == []


def test_projects_are_generated_on_first_use_with_ids_independent_of_the_order() -> None:
    first, second = build_group_world(6, days=2, pipelines_per_day=2), build_group_world(6, days=2, pipelines_per_day=2)
    assert all(p.pending for p in first.projects.values())
    order = sorted(first.projects)
    for pid in order:
        first.project(str(pid))
    for pid in reversed(order):
        second.project(str(pid))
    assert not any(p.pending for p in first.projects.values())
    for pid in order:
        a, b = first.projects[pid], second.projects[pid]
        assert a.pipelines and sorted(a.pipelines) == sorted(b.pipelines)
        assert sorted(a.jobs) == sorted(b.jobs) and sorted(a.commits) == sorted(b.commits)
    every_pipeline = [i for p in first.projects.values() for i in p.pipelines]
    assert len(every_pipeline) == len(set(every_pipeline))  # instance-wide ids, as GitLab's
    shas = [set(p.commits) for p in first.projects.values()]
    assert not set.intersection(*shas)  # each project has its own history


def test_cidash_syncs_the_whole_group(group_sim: SimulatedGitLab, tmp_path: Path) -> None:
    conn = Connection(url=group_sim.url, token=Secret(group_sim.token), max_rps=0, concurrency=6)
    base = SyncOptions.from_config(Config(), since="all", now=NOW)
    with GitLabClient(conn) as client, Store.open(str(tmp_path / "group.db")) as store:
        reports = sync_projects(client, store, group="platform", options=base, now=NOW)
        world = group_sim.world
        assert sorted(r.project.path for r in reports) == sorted(p.path for p in world.projects.values())
        for project in world.projects.values():
            assert {p.id for p in store.pipelines(project.id)} == set(project.pipelines)
            assert len(store.jobs(project.id)) == len(project.jobs)


def test_idle_refresh_of_the_group_lists_each_project_once(group_sim: SimulatedGitLab, tmp_path: Path) -> None:
    """Issue #15: with nothing changed, a refresh costs the group listing plus at most one request per project."""
    conn = Connection(url=group_sim.url, token=Secret(group_sim.token), max_rps=0, concurrency=6)
    base = SyncOptions.from_config(Config(), since="all", now=NOW)
    with GitLabClient(conn) as client, Store.open(str(tmp_path / "group.db")) as store:
        sync_projects(client, store, group="platform", options=base, now=NOW)
        group_sim.stats.reset()
        sync_projects(client, store, group="platform", options=base, now=NOW)
    projects = len(group_sim.world.projects)
    assert group_sim.stats.count("GET /groups/:gid/projects") == 1
    assert group_sim.stats.total_requests - 1 <= projects
