"""Benchmark: GitLab requests per day of `cidash serve` for a simulated group, polling vs webhooks.

    .venv/bin/python bench/serve_requests.py                  # 24 pipelines on the busy project over 8 hours
    .venv/bin/python bench/serve_requests.py --pipelines 6 --hours 24     # a quieter day

A simulated day on a virtual clock: the real scheduler of `cidash serve` (cidash.serve.scheduler) drives real
syncs (cidash.sync) over real HTTP against the simulated GitLab (group `platform`: `platform/app`, busy, and
`platform/docs`, idle), whose clock advances with the virtual one. During working hours the busy project gets
`--pipelines` new pipelines (POST /projects/:id/pipeline), which then run their jobs in simulated time. The
simulator counts every request. Three set-ups:

  fixed-60s        every project synced every 60 s (a cron-style poller; what serve does with --max-interval 60)
  adaptive         serve's defaults: 60 s while a project changes, doubling to 900 s while idle
  webhooks         webhooks trigger the syncs (a Pipeline Hook / Job Hook at every pipeline or job status change,
                   debounced 5 s); polling is only a safety net every 3600 s

The first (full) sync of each set-up is not counted: the numbers are the steady state.
Optionally (--memory) the peak RSS of this process after the three simulated days is printed.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cidash.config import Config
from cidash.connection import Connection, Secret
from cidash.remote import GitLabClient
from cidash.remote.projects import group_projects
from cidash.serve.app import options_for
from cidash.serve.scheduler import ProjectState, Scheduler
from cidash.sim import Scenario, SimulatedGitLab
from cidash.store import Store
from cidash.sync import SyncOptions, SyncProgress, SyncReport, sync_project

STEP = 5.0  # virtual seconds per tick


class VirtualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def run_day(
    mode: str, *, pipelines: int, hours: float, seed: int, debounce: float, endpoints: dict[str, int] | None = None
) -> dict[str, float]:
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    scenario = Scenario(days=4, pipelines_per_day=5, migration_day=3, start=midnight - timedelta(days=4))
    with SimulatedGitLab(scenario) as sim, tempfile.TemporaryDirectory() as tmp:
        client = GitLabClient(Connection(url=sim.url, token=Secret(sim.token), max_rps=0, concurrency=4))
        store = Store.open(Path(tmp) / "bench.db")
        options = SyncOptions.from_config(Config(), since="all", now=datetime.now(UTC))

        def sync(state: ProjectState, progress: Callable[[SyncProgress], None]) -> SyncReport:
            now = sim.now()  # the simulated clock: registry refresh and build times follow the simulated day
            opts = options_for(store, state.project, options, "build-ci-image", now) if state.project else options
            return sync_project(client, store, state.project or state.target, options=opts, now=now)

        clock = VirtualClock()
        settings = {
            "fixed-60s": {"interval": 60.0, "max_interval": 60.0},
            "adaptive": {"interval": 60.0, "max_interval": 900.0},
            "webhooks": {"interval": 3600.0, "max_interval": 3600.0},
        }[mode]
        sched = Scheduler(sync, jitter=0.1, debounce=debounce, clock=clock, rng=random.Random(seed), **settings)
        sched._pool = ThreadPoolExecutor(max_workers=1)  # driven tick by tick below, no scheduler thread
        for p in group_projects(client.http, "platform"):
            sched.add(p)

        def settle() -> None:
            sched.run_due()
            while any(s.running for s in sched.states):
                time.sleep(0.001)

        settle()  # the first full sync: not counted
        sim.stats.reset()
        busy = next(s for s in sched.states if s.project is not None and s.project.id == sim.project_id)
        app = sim.world.projects[sim.project_id]
        rng = random.Random(seed)
        work_start = 9 * 3600.0
        times = sorted(work_start + rng.uniform(0, hours * 3600) for _ in range(pipelines))
        created: list[int] = []
        last_seen: tuple[str, ...] = ()
        deliveries = 0
        syncs_before = sum(s.syncs for s in sched.states)
        for _ in range(int(86400 / STEP)):
            clock.t += STEP
            sim.advance(STEP)
            while times and times[0] <= clock.t:
                times.pop(0)
                req = urllib.request.Request(
                    f"{sim.url}/api/v4/projects/{sim.project_id}/pipeline",
                    data=json.dumps({"ref": "main"}).encode(),
                    headers={"PRIVATE-TOKEN": sim.token, "Content-Type": "application/json"},
                    method="POST",
                )
                with urllib.request.urlopen(req) as resp:
                    created.append(json.loads(resp.read())["id"])
            if mode == "webhooks" and created:
                now = sim.world.now()
                wanted = set(created)
                statuses = tuple(
                    [sim.world.pipeline_status(app, p, now) for p in sim.world.all_pipelines(sim.project_id)
                     if p.id in wanted]
                    + [j.status_at(now) for j in sim.world.all_jobs(sim.project_id) if j.pipeline_id in wanted]
                )  # fmt: skip
                if statuses != last_seen:
                    # GitLab sends one delivery per status change; they all arrive inside one debounce window here.
                    deliveries += sum(a != b for a, b in zip(statuses, last_seen, strict=False)) + abs(
                        len(statuses) - len(last_seen)
                    )
                    last_seen = statuses
                    sched.trigger(busy)
            settle()
        per_project = {sim.project_id: 0, 43: 0}
        for _method, path, _status in sim.stats.log:
            for pid in per_project:
                if f"/projects/{pid}/" in path or path.endswith(f"/projects/{pid}"):
                    per_project[pid] += 1
        if endpoints is not None:
            endpoints.update(sim.stats.by_endpoint)
        result = {
            "requests": float(sim.stats.total_requests),
            "busy": float(per_project[sim.project_id]),
            "idle": float(per_project[43]),
            "syncs": float(sum(s.syncs for s in sched.states) - syncs_before),
            "deliveries": float(deliveries),
            "pipelines_stored": float(len(store.pipelines(sim.project_id))),
        }
        sched._pool.shutdown()
        store.close()
        client.close()
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", type=int, default=24, help="new pipelines on the busy project (default 24)")
    parser.add_argument("--hours", type=float, default=8.0, help="spread over this many hours from 09:00")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--debounce", type=float, default=5.0, help="webhook debounce in seconds (default 5)")
    parser.add_argument("--memory", action="store_true", help="print this process' peak RSS at the end")
    parser.add_argument("--endpoints", action="store_true", help="print the most requested endpoints per set-up")
    parser.add_argument(
        "--modes", default="fixed-60s,adaptive,webhooks", help="comma-separated set-ups to run (default: all three)"
    )
    args = parser.parse_args()
    print(f"simulated day: group platform (2 projects), {args.pipelines} new pipelines on platform/app")
    print(f"webhook debounce {args.debounce:.0f}s; requests per simulated day (steady state):")
    print(f"{'set-up':<11} {'all':>6} {'busy':>6} {'idle':>6} {'syncs':>6} {'deliveries':>10}  pipelines stored")
    for mode in args.modes.split(","):
        started = time.monotonic()
        counts: dict[str, int] = {}
        r = run_day(
            mode, pipelines=args.pipelines, hours=args.hours, seed=args.seed, debounce=args.debounce, endpoints=counts
        )
        print(
            f"{mode:<11} {r['requests']:>6.0f} {r['busy']:>6.0f} {r['idle']:>6.0f} {r['syncs']:>6.0f} "
            f"{r['deliveries']:>10.0f}  {r['pipelines_stored']:.0f} ({time.monotonic() - started:.0f}s)",
            flush=True,
        )
        if args.endpoints:
            for endpoint, n in sorted(counts.items(), key=lambda kv: -kv[1])[:6]:
                print(f"    {n:>6}  {endpoint}")
    if args.memory:
        print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
