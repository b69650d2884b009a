"""A group of N small projects (``cidash simulate --group-projects N``, ``bench/group.py``).

``build_group_world(500)`` is the group ``platform`` (id 7) with subgroups ``platform/team-1`` ..
``platform/team-<subgroups>`` (ids 8, 9, ...) and ``projects`` projects spread over the group and its subgroups:
project ``i`` (0-based) is ``svc-<i>`` with id ``100 + i``, in ``platform`` when ``i % (subgroups + 1) == 0``,
else in ``platform/team-<i % (subgroups + 1)>``. Each one is the migration story of :mod:`cidash.sim.scenario`
told small (``days`` days of ``pipelines_per_day`` pipelines, its own seed), ending when the group's clock starts.

Cheap: listing the group needs only each project's name, path and dates, so a project's history is generated
the first time something asks for the project itself (:meth:`World.ensure`), under the world's lock. Ids are
deterministic whatever the order projects are first asked for: project ``i`` numbers its pipelines and jobs from
its own block. ``last_activity_at`` is the group's end for every project (GitLab updates it at most hourly
anyway). The group world has no :class:`Truth` (``sim.truth`` is the migration story's).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from cidash.sim.model import Scenario
from cidash.sim.planner import Planner
from cidash.sim.scenario import tell_story
from cidash.sim.world import SimJob, SimPipeline, SimProject, World

#: Where the stories of the default scenario end (the demo world's clock start): group worlds end there too.
DEFAULT_END = Scenario().end
FIRST_PROJECT_ID = 100
FIRST_PIPELINE_ID = 1_000_000
FIRST_JOB_ID = 10_000_000


@dataclass
class _Planners:
    """The world's mutator for a group: each project has its own planner (caches and resource groups are per
    project in GitLab)."""

    world: World
    by_project: dict[int, Planner] = field(default_factory=dict)

    def _of(self, project: SimProject) -> Planner:
        return self.by_project[self.world.ensure(project).id]

    def retry(self, world: World, project: SimProject, job: SimJob, now: float, user: str) -> SimJob:
        return self._of(project).retry(world, project, job, now, user)

    def play(self, world: World, project: SimProject, job: SimJob, now: float, user: str) -> SimJob:
        return self._of(project).play(world, project, job, now, user)

    def create_pipeline(  # noqa: PLR0917
        self,
        world: World,
        project: SimProject,
        ref: str,
        variables: list[dict[str, str]],
        now: float,
        user: str,
        source: str,
    ) -> SimPipeline:
        return self._of(project).create_pipeline(world, project, ref, variables, now, user, source)


def build_group_world(
    projects: int = 500,
    *,
    seed: int = 7,
    days: int = 3,
    pipelines_per_day: int = 3,
    subgroups: int = 4,
    end: datetime = DEFAULT_END,
    time_scale: float = 0.0,
) -> World:
    """The group world: stubs for ``projects`` projects, each generated on first use (see the module doc)."""
    if projects < 1 or days < 1 or pipelines_per_day < 1 or subgroups < 0:
        raise ValueError("a group needs at least one project, one day and one pipeline a day")
    start = end - timedelta(days=days)
    base = Scenario(
        seed=seed,
        days=days,
        pipelines_per_day=pipelines_per_day,
        start=start,
        migration_day=days // 2 + 1,
        project_path="platform/svc-000",
        project_id=FIRST_PROJECT_ID,
        with_docs_project=False,
    )
    world = World(base, time_scale=time_scale)
    for k in range(1, subgroups + 1):
        world.subgroups[f"{world.group_path}/team-{k}"] = world.group_id + k
    # id blocks: generous for the story's pipelines (one a day more for the migration) and their retried jobs
    pipeline_block = 2 * (days * pipelines_per_day + days + 10)
    job_block = 40 * pipeline_block
    world.next_pipeline_id = FIRST_PIPELINE_ID + projects * pipeline_block
    world.next_job_id = FIRST_JOB_ID + projects * job_block
    planners = _Planners(world)
    world.planner = planners
    scenarios: dict[int, tuple[int, Scenario]] = {}
    t_end = end.timestamp()
    for i in range(projects):
        slot = i % (subgroups + 1)
        namespace = world.group_path if slot == 0 else f"{world.group_path}/team-{slot}"
        pid = FIRST_PROJECT_ID + i
        path = f"{namespace}/svc-{i:03d}"
        sc = replace(base, seed=seed * 1_000_003 + i, project_id=pid, project_path=path)
        scenarios[pid] = (i, sc)
        world.projects[pid] = SimProject(
            id=pid,
            path=path,
            name=f"svc-{i:03d}",
            description=f"Service {i} of the platform group (simulated).",
            created_at=start.timestamp() - 400 * 86400 + i * 3600,
            last_activity_at=t_end,
            namespace=namespace,
            registry_repo_id=pid,
            registry_created_at=start.timestamp() - 300 * 86400,
            pending=True,
        )

    def materialize(stub: SimProject) -> SimProject:
        i, sc = scenarios[stub.id]
        saved = world.next_pipeline_id, world.next_job_id
        world.next_pipeline_id = FIRST_PIPELINE_ID + i * pipeline_block
        world.next_job_id = FIRST_JOB_ID + i * job_block
        try:
            planner = Planner(sc)
            story = tell_story(world, sc, planner, random.Random(sc.seed), description=stub.description)
            if world.next_pipeline_id > FIRST_PIPELINE_ID + (i + 1) * pipeline_block or (
                world.next_job_id > FIRST_JOB_ID + (i + 1) * job_block
            ):
                raise AssertionError(f"{stub.path}: its story outgrew its id block")
        finally:
            world.next_pipeline_id, world.next_job_id = saved
        project = story.project
        project.name, project.namespace = stub.name, stub.namespace
        project.created_at, project.last_activity_at = stub.created_at, stub.last_activity_at
        project.registry_repo_id, project.registry_created_at = stub.registry_repo_id, stub.registry_created_at
        planners.by_project[project.id] = planner
        return project

    world.materialize = materialize
    return world
