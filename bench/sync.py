"""Benchmark: `cidash sync` at its defaults vs python-gitlab scripts, through the same latency, in one run.

    .venv/bin/python bench/sync.py                       # 300 pipelines, 30 ms latency (the issue's setting)
    .venv/bin/python bench/sync.py --pipelines 40 --skip-sequential   # a quick run
    .venv/bin/python bench/sync.py --skip-sequential --rounds 5       # 5 pairs (b)/(c) alternating: ratios' median
    .venv/bin/python bench/sync.py --no-ratelimit-headers             # a server that sends no RateLimit headers
    .venv/bin/python bench/sync.py --no-ratelimit-headers --server-capacity 16   # ... whose 16 threads are busy
    .venv/bin/python bench/sync.py --pipelines 1000 --cidash-only     # scaling runs

The simulated GitLab (``--latency-ms`` added to every answer) and every client run in their own process, one
after another against the same server: the server's CPU is not taken from a client under one GIL, and each
client's peak RSS and CPU time are its own. Requests and bytes are counted by the server (``/__sim/stats``).

(a) the sequential script a user would write: list pipelines, get each, list its jobs, fetch and parse each
finished log (with cidash's parser, so every side ends with the same facts); (b) the same facts with 16 threads:
the project-level jobs listing, then each finished job's log in a thread pool; (c) `cidash sync` with no rate or
concurrency option (its defaults); (d) the same again with nothing changed (an idle refresh). Then the physical
bound of (c): its requests x the injected latency / the requests it may hold in flight, and its file-checksum
requests against the minimum (one HEAD per distinct version of a critical file).

Before timing, one untimed `cidash sync` warms the server and Python's bytecode cache (the children write .pyc
files under a temporary PYTHONPYCACHEPREFIX, as an installed package would have them), so no client pays for
compiling its imports or for the simulator's first generation of the logs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

NAIVE = r"""
import json, resource, sys, time
import gitlab
from cidash.logparse import TraceParser

url, token, project_path = sys.argv[1:4]
started = time.perf_counter()
gl = gitlab.Gitlab(url, private_token=token, per_page=100)
project = gl.projects.get(project_path)
facts = 0
jobs = 0
for item in project.pipelines.list(iterator=True):
    pipeline = project.pipelines.get(item.id)          # durations are only on the single-pipeline endpoint
    for job in pipeline.jobs.list(iterator=True, include_retried=True):
        jobs += 1
        if job.status not in ("success", "failed", "canceled") or not job.started_at:
            continue
        log = project.jobs.get(job.id, lazy=True).trace()
        parser = TraceParser()
        parser.feed(log)
        parser.finish()
        facts += 1
print(json.dumps({"seconds": time.perf_counter() - started, "jobs": jobs, "facts": facts,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

THREADED = r"""
import json, resource, sys, time
from concurrent.futures import ThreadPoolExecutor
import gitlab, requests, requests.adapters
from cidash.logparse import TraceParser

url, token, project_path, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
started = time.perf_counter()
session = requests.Session()                                       # a connection per thread, kept alive
session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=threads))
gl = gitlab.Gitlab(url, private_token=token, per_page=100, session=session)
project = gl.projects.get(project_path)
jobs = list(project.jobs.list(iterator=True))                      # project-level listing, 100 per page
finished = [j for j in jobs if j.status in ("success", "failed", "canceled") and j.started_at]

def parse(job_id):
    parser = TraceParser()
    parser.feed(project.jobs.get(job_id, lazy=True).trace())
    parser.finish()
    return 1

with ThreadPoolExecutor(threads) as pool:
    facts = sum(pool.map(parse, [j.id for j in finished]))
print(json.dumps({"seconds": time.perf_counter() - started, "jobs": len(jobs), "facts": facts,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

SERVER = r"""
import json, sys
from cidash.sim import Scenario, SimulatedGitLab

pipelines, latency_ms, advertised, capacity = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
scenario = Scenario(days=10, total_pipelines=pipelines, migration_day=6, with_docs_project=False)
sim = SimulatedGitLab(scenario, latency_ms=latency_ms, rate_limit_advertised=advertised or None,
                      capacity=capacity or None)
sim.start()
truth = sim.truth
# The fewest requests that can tell every pipeline SHA's critical-file checksums: one HEAD per distinct version
# (path, last commit that changed it) of a file that exists (absent files cost nothing once known absent).
project = sim.world.projects[sim.project_id]
files = ("go.mod", "go.sum", ".gitlab-ci.yml", "Dockerfile.ci", ".mise/config.toml", ".cache-key")
versions = {(f, c.last_change.get(f, c.sha)) for p in sim.world.all_pipelines(sim.project_id)
            for c in [project.commits[p.sha]] for f in files if f in c.files}
shas = {p.sha for p in sim.world.all_pipelines(sim.project_id)}
print(json.dumps({"url": sim.url, "token": sim.token, "project_path": sim.project_path,
                  "pipelines": truth.pipelines, "jobs": truth.jobs, "min_checksum_requests": len(versions),
                  "shas": len(shas)}), flush=True)
try:
    sim.serve_forever()
except KeyboardInterrupt:
    pass
"""

PEAK = r"""
import json, resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(proc.stdout)
sys.stderr.write(proc.stderr)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": proc.returncode, "peak_rss_mb": usage.ru_maxrss / 1024,
                  "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


class Server:
    """The simulated GitLab in a child process (``SERVER``); stats over HTTP, CPU time from /proc."""

    def __init__(
        self, pipelines: int, latency_ms: float, advertised: int, env: dict[str, str], capacity: int = 0
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(pipelines), str(latency_ms), str(advertised), str(capacity)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
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
        """User + system CPU of the server process so far (0 where /proc is missing)."""
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


def run_child(argv: list[str], env: dict[str, str], server: Server) -> tuple[float, dict[str, Any], str]:
    """Run argv under a small wrapper that reports the child's peak RSS; return (wall s, wrapper json, stdout)."""
    started = time.perf_counter()
    cpu_before = server.cpu_seconds()
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, *argv], capture_output=True, text=True, env=env, check=False, timeout=3600
    )
    wall = time.perf_counter() - started
    lines = proc.stdout.strip().splitlines()
    info = json.loads(lines[-1])
    info["server_cpu_s"] = server.cpu_seconds() - cpu_before
    if info["rc"] != 0:
        raise SystemExit(f"child failed ({info['rc']}): {' '.join(argv[:3])} ...\n{proc.stderr[-2000:]}")
    return wall, info, "\n".join(lines[:-1])


Row = tuple[str, int, int, float, float, float, str]


def _measure(
    args: argparse.Namespace, sim: Server, env: dict[str, str], tmp: str
) -> tuple[list[Row], list[float], dict[str, Any]]:
    """Warm up, then run every side against the same server, one after another; rows for the table."""
    info0 = sim.info
    print(
        f"scenario: {info0['pipelines']} pipelines, {info0['jobs']} jobs "
        f"({info0['jobs'] / info0['pipelines']:.1f} per pipeline), {args.latency_ms:g} ms latency per request, "
        f"{_server_mode(args)}; server and clients in separate processes"
    )
    rows: list[Row] = []
    server_cpu: list[float] = []
    extra: dict[str, Any] = {}

    def cmd(db: Path) -> list[str]:
        argv = [sys.executable, "-m", "cidash", "sync", "--url", sim.url, "--project", info0["project_path"]]
        argv += ["--db", str(db), "--since", "all"]
        if args.concurrency is not None:
            argv += ["--concurrency", str(args.concurrency)]
        if args.max_rps is not None:
            argv += ["--max-rps", str(args.max_rps)]
        return argv

    def script(name: str, code: str, *extra_args: str) -> None:
        sim.reset()
        wall, info, out = run_child(
            [sys.executable, "-c", code, sim.url, info0["token"], info0["project_path"], *extra_args], env, sim
        )
        result = json.loads(out.splitlines()[-1])
        server_cpu.append(info["server_cpu_s"])
        stats = sim.stats()
        rows.append(
            (
                name,
                stats["total_requests"],
                stats["bytes_out"],
                wall,
                info["cpu_s"],
                info["peak_rss_mb"],
                f"{result['facts']} logs parsed",
            )
        )

    # Warm-up (untimed): the simulator generates every log once, Python caches the bytecode of every client.
    warm = [sys.executable, "-c", "import gitlab, cidash.logparse, cidash.sync, cidash.remote.http"]
    subprocess.run(warm, env=env, check=True)
    run_child(cmd(Path(tmp) / "warmup.db"), env, sim)
    if not args.skip_sequential and not args.cidash_only:
        script("(a) python-gitlab, sequential", NAIVE)
    if not args.cidash_only:
        script(f"(b) python-gitlab, {args.threads} threads", THREADED, str(args.threads))
    db = Path(tmp) / "bench.db"
    sim.reset()
    wall, info, _ = run_child(cmd(db), env, sim)
    server_cpu.append(info["server_cpu_s"])
    stats = sim.stats()
    import sqlite3

    conn = sqlite3.connect(db)
    facts = conn.execute("SELECT count(*) FROM job_facts").fetchone()[0]
    checksums = conn.execute("SELECT count(*) FROM file_checksums").fetchone()[0]
    tags = conn.execute("SELECT count(*) FROM image_tags").fetchone()[0]
    conn.close()
    by = stats.get("by_endpoint", {})
    extra["checksum_requests"] = {
        k.split(" ", 1)[0] + " " + k.rsplit("/", 1)[-1]: v
        for k, v in by.items()
        if "/repository/commits" in k or "/repository/compare" in k or k.startswith("HEAD ")
    }
    extra["cidash_requests"] = stats["total_requests"]
    extra["by_endpoint"] = dict(sorted(by.items(), key=lambda kv: -kv[1]))
    rows.append(
        (
            "(c) cidash sync, defaults",
            stats["total_requests"],
            stats["bytes_out"],
            wall,
            info["cpu_s"],
            info["peak_rss_mb"],
            f"{facts} logs parsed + {checksums} file checksums, {tags} image tags",
        )
    )
    sim.reset()
    wall, info, _ = run_child(cmd(db), env, sim)
    server_cpu.append(info["server_cpu_s"])
    stats = sim.stats()
    rows.append(
        (
            "(d) cidash sync, idle refresh",
            stats["total_requests"],
            stats["bytes_out"],
            wall,
            info["cpu_s"],
            info["peak_rss_mb"],
            "",
        )
    )
    extra["facts"] = int(facts)
    # More rounds, alternating the threaded script and cidash's first sync (a fresh store each), so a ratio is read
    # from several pairs measured close together rather than from one pair on a machine whose speed moves.
    pairs: list[tuple[float, float]] = []
    if not args.cidash_only:
        first = {r[0][:3]: r[3] for r in rows}
        pairs.append((first["(b)"], first["(c)"]))
        for n in range(1, args.rounds):
            script_wall = run_child(
                [sys.executable, "-c", THREADED, sim.url, info0["token"], info0["project_path"], str(args.threads)],
                env,
                sim,
            )[0]
            cidash_wall = run_child(cmd(Path(tmp) / f"round-{n}.db"), env, sim)[0]
            pairs.append((script_wall, cidash_wall))
    extra["pairs"] = pairs
    return rows, server_cpu, extra


def _server_mode(args: argparse.Namespace) -> str:
    capacity = f"; at most {args.server_capacity} requests served at once" if args.server_capacity else ""
    if args.no_ratelimit_headers:
        return "no RateLimit headers (a self-managed GitLab with its throttles off)" + capacity
    if args.gitlab_com_limit:
        return "RateLimit headers advertising GitLab.com's 2,000 requests/min" + capacity
    return "RateLimit headers advertising a limit this sync does not reach" + capacity


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipelines", type=int, default=300, help="pipelines in the scenario (default 300)")
    ap.add_argument("--latency-ms", type=float, default=30.0, help="server latency per request (default 30)")
    ap.add_argument("--threads", type=int, default=16, help="threads of the threaded script (default 16)")
    ap.add_argument("--concurrency", type=int, default=None, help="cidash sync --concurrency (default: cidash's)")
    ap.add_argument("--max-rps", type=float, default=None, help="cidash sync --max-rps (default: cidash's)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="pairs of (b) and (c), alternating, each cidash on a fresh store; the ratios' median is printed too "
        "(default 1)",
    )
    ap.add_argument("--skip-sequential", action="store_true", help="do not run the (slow) sequential script")
    ap.add_argument("--cidash-only", action="store_true", help="only cidash (for scaling runs): no scripts")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--gitlab-com-limit", action="store_true", help="advertise GitLab.com's 2,000 requests/min")
    ap.add_argument(
        "--server-capacity",
        type=int,
        default=None,
        metavar="N",
        help="the simulator serves at most N requests at once (a GitLab of N Puma threads); default: no queue",
    )
    mode.add_argument(
        "--no-ratelimit-headers", action="store_true", help="send no RateLimit headers (self-managed default)"
    )
    args = ap.parse_args()

    advertised = 0 if args.no_ratelimit_headers else 2000 if args.gitlab_com_limit else 10**9
    with tempfile.TemporaryDirectory() as tmp:
        # Not CI=true: a user's `cidash sync` (piped, so plain progress lines) also leaves the dashboard's Health
        # cache warm after syncing, and that is part of what it costs.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "CI")}
        env.update({"HOME": tmp, "XDG_DATA_HOME": tmp, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pyc")})
        server = Server(args.pipelines, args.latency_ms, advertised, env, args.server_capacity or 0)
        try:
            rows, server_cpu, extra = _measure(args, server, {**env, "GITLAB_TOKEN": server.info["token"]}, tmp)
        finally:
            server.stop()
    info0 = server.info
    print()
    print(f"{'':34} {'requests':>9} {'bytes':>12} {'wall s':>8} {'CPU s':>7} {'peak MB':>8}  facts")
    for name, req, nbytes, wall, cpu, rss, note in rows:
        print(f"{name:34} {req:>9} {nbytes:>12,} {wall:>8.2f} {cpu:>7.2f} {rss:>8.1f}  {note}")
    print(
        "(CPU s: the client process; the simulated server's CPU while each ran: "
        + ", ".join(f"{c:.1f}s" for c in server_cpu)
        + ")"
    )
    by = {r[0][:3]: r for r in rows}
    cidash, idle = by["(c)"], by["(d)"]
    from cidash.config import GitLabSettings

    ceiling = args.concurrency or GitLabSettings().concurrency
    # The most in flight that can shorten the sync: cidash's ceiling (without RateLimit headers the default grows
    # to it from 16 while answers keep their pace), and no more than the server serves at once.
    in_flight = min(ceiling, args.server_capacity) if args.server_capacity else ceiling
    bound = cidash[1] * args.latency_ms / 1000 / in_flight
    print()
    if "(b)" in by:
        threaded = by["(b)"]
        print(
            f"cidash vs {args.threads}-thread script: {threaded[3] / cidash[3]:.2f}x (target >= 2x); "
            f"requests {cidash[1]} vs {threaded[1]}"
        )
    pairs = extra["pairs"]
    if len(pairs) > 1:
        import statistics

        ratios = [script / mine for script, mine in pairs]
        bounds = [mine / bound for _, mine in pairs] if bound > 0 else []
        print(
            f"{len(pairs)} rounds, alternating (script s / cidash s): "
            + ", ".join(f"{script:.2f}/{mine:.2f}" for script, mine in pairs)
        )
        print(
            f"  vs script: median {statistics.median(ratios):.2f}x (min {min(ratios):.2f}x, max {max(ratios):.2f}x); "
            + (
                f"vs bound: median {statistics.median(bounds):.2f}x (min {min(bounds):.2f}x, max {max(bounds):.2f}x)"
                if bounds
                else ""
            )
        )
    if "(a)" in by:
        print(f"cidash vs sequential script: {by['(a)'][3] / cidash[3]:.1f}x")
    if bound > 0:
        print(
            f"physical bound {cidash[1]} requests x {args.latency_ms:g} ms / {in_flight} in flight = {bound:.2f} s; "
            f"cidash {cidash[3]:.2f} s = {cidash[3] / bound:.2f}x the bound (target <= 1.2x)"
        )
    checks = extra["checksum_requests"]
    print(
        f"file checksums of {info0['shas']} SHAs: {sum(checks.values())} requests ({checks}); minimum "
        f"{info0['min_checksum_requests']} (one HEAD per distinct file version)"
    )
    print(f"idle refresh: {idle[1]} requests (target <= 1 per project)")
    print("cidash requests by endpoint: " + ", ".join(f"{k} {v}" for k, v in extra["by_endpoint"].items()))
    load = os.getloadavg()[0]
    print(f"(load average {load:.1f} on {os.cpu_count()} CPUs: CPU-bound numbers suffer on a busy machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
