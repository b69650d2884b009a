"""A simulated GitLab: GitLab's REST API over real HTTP on 127.0.0.1, telling the CI-image migration story.

It is the world of ``cidash demo`` and the ground for tests and benchmarks. Public API:

- :class:`Scenario` (frozen config: ``seed=7, days=30, pipelines_per_day=12, start=2026-10-28 UTC,
  migration_day=16, project_path="platform/app", project_id=42, total_pipelines=None``) and
  :func:`build_world` ``(scenario) -> World`` (``world.truth`` is a :class:`Truth`).
- :class:`SimulatedGitLab` ``(scenario=..., token="demo-token", readonly_token="demo-readonly-token",
  latency_ms=0, jitter_ms=0, faults=FaultPlan(...), rate_limit=None, time_scale=0.0)``: a context manager that
  serves the world on ``127.0.0.1`` (ephemeral port); ``.url``, ``.token``, ``.project_path``, ``.project_id``,
  ``.stats``, ``.world``, ``.truth``, ``.set_faults()``, ``.advance(seconds)``.
- :func:`build_group_world` ``(projects=500, *, days=3, pipelines_per_day=3, subgroups=4) -> World``: group
  ``platform`` of N small projects, each generated on first use; serve it with ``SimulatedGitLab(world=...)``.
- :class:`FaultPlan` / :class:`FaultRule`: deterministic fault injection per endpoint.
- :func:`demo_environment` ``(scenario=None, *, live=False, time_scale=1.0, latency_ms=0, keep=False)``: a
  context manager yielding a :class:`DemoEnvironment` (``.sim``, ``.config_path``, ``.store_path``,
  ``.token_file``, ``.env``, ``.now``, ``.argv(command, *extra)``): a running simulator plus a throwaway store
  and the ``cidash.toml`` cidash needs; shared by ``cidash demo`` and the dashboard.

The model behind every number is documented in ``src/cidash/sim/README.md``.
"""

from cidash.sim.demo import DemoEnvironment, demo_environment
from cidash.sim.faults import FaultPlan, FaultRule
from cidash.sim.group import build_group_world
from cidash.sim.http import SimulatedGitLab, Stats
from cidash.sim.scenario import Scenario, TagTruth, Truth, build_world
from cidash.sim.world import World

__all__ = [
    "DemoEnvironment",
    "FaultPlan",
    "FaultRule",
    "Scenario",
    "SimulatedGitLab",
    "Stats",
    "TagTruth",
    "Truth",
    "World",
    "build_group_world",
    "build_world",
    "demo_environment",
]
