"""Benchmark: the first `cidash sync` of a group of 500 projects, and its idle refresh (issues #15/#17).

    .venv/bin/python bench/group.py                          # 500 projects, 30 ms latency
    .venv/bin/python bench/group.py --projects 20            # a quick run
    .venv/bin/python bench/group.py --project-concurrency 1 4 8 16   # more sides
    .venv/bin/python bench/group.py --projects 100 --internals       # store connection / worker pool designs

The simulated GitLab (``cidash.sim.group``: group ``platform`` with 4 subgroups, each project 3 days of 3
pipelines) runs in its own process with ``--latency-ms`` added to every answer, as in bench/sync.py. It generates
every project before the clock starts (reported apart), so the timed sync pays only for serving. Then, one after
another against the same server: (1) ``cidash sync --group platform --since all`` at cidash's defaults (the way a
user syncs a group), (2) the same again with nothing changed (the idle refresh: target <= 1 request per
project). The physical bound of (1) is its requests x the latency / the requests cidash may hold in flight.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sync import run_child  # bench/sync.py: the child runner that reports peak RSS and CPU

SERVER = r"""
import json, resource, sys, time
from cidash.sim import SimulatedGitLab
from cidash.sim.group import build_group_world

projects, latency_ms, days, per_day = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
started = time.perf_counter()
world = build_group_world(projects, days=days, pipelines_per_day=per_day)
listed = time.perf_counter() - started
for project in list(world.projects.values()):
    world.ensure(project)
generated = time.perf_counter() - started
sim = SimulatedGitLab(world=world, latency_ms=latency_ms, rate_limit_advertised=10**9)
sim.start()
print(json.dumps({"url": sim.url, "token": sim.token, "group": world.group_path, "projects": len(world.projects),
                  "pipelines": sum(len(p.pipelines) for p in world.projects.values()),
                  "jobs": sum(len(p.jobs) for p in world.projects.values()),
                  "stub_s": listed, "generate_s": generated,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
try:
    sim.serve_forever()
except KeyboardInterrupt:
    pass
"""


#: ``--internals``: one in-process group sync (first, then idle) with one of the designs the pool was chosen
#: against: "shared" (what cidash does: one store connection, one worker pool), "own-store" (a store connection per
#: project worker), "pool-per-project" (each project's sync with its own ``concurrency`` worker threads).
INTERNALS = r"""
import sys, threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from cidash.config import Config
from cidash.connection import Connection, Secret
from cidash.remote import GitLabClient
from cidash.store import Store
from cidash.sync import SyncOptions, sync_projects
from cidash.sync import engine
url, token, group, db, design, projects_at_once = sys.argv[1:7]
if design == "own-store":
    local = threading.local()
    def own(self):
        if getattr(local, "store", None) is None:
            local.store = Store.open(db)
        return local.store
    engine._ProjectPool.store = property(own, lambda self, value: None)
elif design == "pool-per-project":
    engine._ProjectExecutor = lambda shared: ThreadPoolExecutor(max_workers=32, thread_name_prefix="cidash-sync")
now = datetime.now(UTC)
options = SyncOptions.from_config(Config(), since="all", now=now)
options = SyncOptions(**{**options.__dict__, "project_concurrency": int(projects_at_once), "concurrency": 32})
connection = Connection(url=url, token=Secret(token), max_rps=0, concurrency=32)
for _ in ("first", "idle"):
    with GitLabClient(connection) as client, Store.open(db) as store:
        reports = sync_projects(client, store, group=group, options=options, now=now)
    assert all(r.error is None for r in reports)
"""


def internals(args: argparse.Namespace, server: GroupServer, env: dict[str, str], tmp: str) -> None:
    """The designs side by side, alternating, ``--rounds`` times (first sync and idle refresh in one child)."""
    designs = ("shared", "own-store", "pool-per-project")
    print(f"{'design':18} {'round':>5} {'wall s':>8} {'CPU s':>7} {'server CPU s':>13}")
    for round_ in range(args.rounds):
        for design in designs:
            server.reset()
            db = str(Path(tmp) / f"internals-{design}-{round_}.db")
            cmd = [sys.executable, "-c", INTERNALS, server.url, server.info["token"], server.info["group"], db]
            wall, info, _ = run_child([*cmd, design, str(args.project_concurrency[-1])], env, server)  # type: ignore[arg-type]
            print(
                f"{design:18} {round_:>5} {wall:>8.2f} {info['cpu_s']:>7.2f} {info['server_cpu_s']:>13.1f}", flush=True
            )


class GroupServer:
    """The group simulator in a child process; stats over HTTP, CPU time from /proc (as bench/sync.py's)."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str]) -> None:
        argv = [str(args.projects), str(args.latency_ms), str(args.days), str(args.pipelines_per_day)]
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, *argv], stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the simulated GitLab did not start")
        self.info: dict[str, Any] = json.loads(line)
        self.url: str = self.info["url"]

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/__sim/stats", timeout=30) as response:
            result: dict[str, Any] = json.load(response)
            return result

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/__sim/stats/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main() -> int:
    from cidash.config import GitLabSettings, SyncSettings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--projects", type=int, default=500, help="projects in the group (default 500)")
    ap.add_argument("--days", type=int, default=3, help="days of history per project (default 3)")
    ap.add_argument("--pipelines-per-day", type=int, default=3, help="pipelines a day per project (default 3)")
    ap.add_argument("--latency-ms", type=float, default=30.0, help="server latency per request (default 30)")
    default_p = SyncSettings().project_concurrency
    ap.add_argument(
        "--project-concurrency",
        type=int,
        nargs="+",
        default=[1, default_p],
        metavar="N",
        help=f"the sides compared, each with its own store (default: 1 = one project after another, and {default_p}, "
        "the default)",
    )
    ap.add_argument("--idle-rounds", type=int, default=2, help="idle refreshes per side, alternating (default 2)")
    ap.add_argument(
        "--internals",
        action="store_true",
        help="instead: the designs the project pool was chosen against (one store connection or one per worker; one "
        "worker pool or one per project), in-process, first sync + idle refresh, the last --project-concurrency",
    )
    ap.add_argument("--rounds", type=int, default=3, help="--internals: rounds, designs alternating (default 3)")
    args = ap.parse_args()

    sides: list[int] = list(dict.fromkeys(args.project_concurrency))
    started, load_at_start = time.strftime("%H:%M UTC", time.gmtime()), os.getloadavg()[0]
    rows: list[tuple[str, int, int, float, float, float, float, dict[str, int]]] = []
    stored: dict[int, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update({"CI": "true", "HOME": tmp, "XDG_DATA_HOME": tmp, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pyc")})
        server = GroupServer(args, env)
        info0 = server.info
        env["GITLAB_TOKEN"] = info0["token"]
        print(
            f"group {info0['group']}: {info0['projects']} projects, {info0['pipelines']} pipelines, {info0['jobs']} "
            f"jobs; {args.latency_ms:g} ms latency per request; simulator: stubs {info0['stub_s']:.2f} s, every "
            f"project generated {info0['generate_s']:.1f} s, {info0['rss_mb']:.0f} MB"
        )

        def argv(side: int) -> list[str]:
            cmd = [sys.executable, "-m", "cidash", "sync", "--url", server.url, "--group", info0["group"]]
            db = str(Path(tmp) / f"group-p{side}.db")
            return [*cmd, "--db", db, "--since", "all", "--project-concurrency", str(side)]

        warm = [sys.executable, "-c", "import gitlab, cidash.logparse, cidash.sync, cidash.remote.http, cidash.cli"]
        if args.internals:
            try:
                subprocess.run(warm, env=env, check=True)
                internals(args, server, env, tmp)
            finally:
                server.stop()
            print(f"(load average {os.getloadavg()[0]:.1f} at the end; started {started})")
            return 0
        # first syncs one side after the other (each into its own store), then the idle refreshes alternating
        plan = [("first sync", side) for side in sides] + [
            ("idle refresh", side) for _ in range(args.idle_rounds) for side in sides
        ]
        try:
            subprocess.run(warm, env=env, check=True)
            for name, side in plan:
                server.reset()
                wall, info, _ = run_child(argv(side), env, server)  # type: ignore[arg-type]
                stats = server.stats()
                by: dict[str, int] = {}
                for key, n in stats["by_endpoint"].items():
                    short = key.split(" ", 1)[0] + " " + key.rsplit("/", 1)[-1]
                    by[short] = by.get(short, 0) + n
                row = (name, side, stats["total_requests"], wall, info["cpu_s"], info["peak_rss_mb"])
                rows.append((*row, info["server_cpu_s"], by))
                print(f"  {name}, --project-concurrency {side}: {row[2]} requests, {wall:.1f} s", flush=True)
            for side in sides:
                conn = sqlite3.connect(Path(tmp) / f"group-p{side}.db")
                stored[side] = conn.execute("SELECT count(*) FROM pipelines").fetchone()[0]
                conn.close()
        finally:
            server.stop()

    in_flight = GitLabSettings().concurrency
    header = f"{'':22} {'projects at once':>16} {'requests':>9} {'wall s':>8} {'CPU s':>7} {'peak MB':>8}"
    print(header + f" {'server CPU s':>13} {'bound s':>8} {'x bound':>8}")
    for name, side, req, wall, cpu, rss, server_cpu, _ in rows:
        # the bound: requests x latency / what may be in flight (an idle refresh holds one request per project)
        width = in_flight if name == "first sync" else min(in_flight, side)
        bound = req * args.latency_ms / 1000 / width
        print(
            f"{name:22} {side:>16} {req:>9} {wall:>8.2f} {cpu:>7.2f} {rss:>8.1f} {server_cpu:>13.1f} {bound:>8.1f} "
            f"{wall / bound:>8.2f}"
        )
    for side in sides:
        print(f"stored {stored[side]} of {info0['pipelines']} pipelines (--project-concurrency {side})")
    firsts = {side: wall for name, side, _, wall, *_ in rows if name == "first sync"}
    idles: dict[int, list[float]] = {}
    for name, side, _, wall, *_ in rows:
        if name == "idle refresh":
            idles.setdefault(side, []).append(wall)
    base = sides[0]
    for side in sides[1:]:
        print(
            f"--project-concurrency {side} against {base}: first sync {firsts[base] / firsts[side]:.2f}x faster, "
            f"idle refresh {min(idles[base]) / min(idles[side]):.2f}x faster (best of {args.idle_rounds})"
        )
    idle_requests = [req for name, _, req, *_ in rows if name == "idle refresh"]
    print(
        f"idle refresh: {max(idle_requests)} requests at most = {max(idle_requests) / info0['projects']:.2f} per "
        "project (target <= 1)"
    )
    seen: set[tuple[str, int]] = set()
    for name, side, *_, by in rows:
        if (name, side) in seen:
            continue
        seen.add((name, side))
        top = sorted(by.items(), key=lambda kv: -kv[1])[:8]
        print(f"  {name} (--project-concurrency {side}): " + ", ".join(f"{k} {v}" for k, v in top))
    load = os.getloadavg()
    print(
        f"(load average {load_at_start:.1f} at the start, {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) "
        f"at the end, on {os.cpu_count()} CPUs; started {started}, ended {time.strftime('%H:%M UTC', time.gmtime())})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
