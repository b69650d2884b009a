"""Benchmark: a plain python-gitlab script vs `cidash sync`, against the simulated GitLab with per-request latency.

    .venv/bin/python bench/sync.py                       # 200 pipelines, 30 ms latency (the issue's setting)
    .venv/bin/python bench/sync.py --pipelines 40 --latency-ms 30   # a quick run

The simulated GitLab and both clients each run in their own process: the server's CPU is not taken from the
client under one GIL, and each client's peak RSS and CPU time are its own. Requests and bytes are counted by the
server (``/__sim/stats``). (a) is what a user would write: list pipelines, get each, list its jobs, fetch each log
and parse it with cidash's own parser (so both end with the same facts). (b) is `cidash sync` into a fresh store;
(c) is `cidash sync` again with nothing changed (an idle refresh).

Before timing, one untimed `cidash sync` warms the server and Python's bytecode cache (the children write .pyc
files under a temporary PYTHONPYCACHEPREFIX, as an installed package would have them), so neither client pays
for compiling its imports or for the simulator's first generation of the logs.
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

SERVER = r"""
import json, sys
from cidash.sim import Scenario, SimulatedGitLab

pipelines, latency_ms, advertised = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
scenario = Scenario(days=10, total_pipelines=pipelines, migration_day=6, with_docs_project=False)
sim = SimulatedGitLab(scenario, latency_ms=latency_ms, rate_limit_advertised=advertised)
sim.start()
truth = sim.truth
print(json.dumps({"url": sim.url, "token": sim.token, "project_path": sim.project_path,
                  "pipelines": truth.pipelines, "jobs": truth.jobs}), flush=True)
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

    def __init__(self, pipelines: int, latency_ms: float, advertised: int, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(pipelines), str(latency_ms), str(advertised)],
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


def _measure(
    args: argparse.Namespace, sim: Server, env: dict[str, str], tmp: str
) -> tuple[list[tuple[str, int, int, float, float, float, str]], list[float], dict[str, Any] | None, int]:
    """Warm up, then run (a), (b) and (c) against the server; rows for the table."""
    info0 = sim.info
    print(
        f"scenario: {info0['pipelines']} pipelines, {info0['jobs']} jobs "
        f"({info0['jobs'] / info0['pipelines']:.1f} per pipeline), {args.latency_ms:g} ms latency per request, "
        f"{'2,000 requests/min advertised' if args.gitlab_com_limit else 'no rate limit advertised'}; "
        "server and clients in separate processes"
    )
    rows: list[tuple[str, int, int, float, float, float, str]] = []
    server_cpu: list[float] = []
    naive: dict[str, Any] | None = None

    def cmd(db: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "cidash",
            "sync",
            "--url",
            sim.url,
            "--project",
            info0["project_path"],
            "--db",
            str(db),
            "--since",
            "all",
            "--concurrency",
            str(args.concurrency),
            "--max-rps",
            str(args.max_rps),
        ]

    # Warm-up (untimed): the simulator generates every log once, Python caches the bytecode of both clients.
    warm = [sys.executable, "-c", "import gitlab, cidash.logparse, cidash.sync, cidash.remote.http, cidash.remote.rest"]
    subprocess.run(warm, env=env, check=True)
    run_child(cmd(Path(tmp) / "warmup.db"), env, sim)
    if not args.skip_naive:
        sim.reset()
        wall, info, out = run_child(
            [sys.executable, "-c", NAIVE, sim.url, info0["token"], info0["project_path"]], env, sim
        )
        naive = json.loads(out.splitlines()[-1])
        server_cpu.append(info["server_cpu_s"])
        stats = sim.stats()
        rows.append(
            (
                "(a) python-gitlab script",
                stats["total_requests"],
                stats["bytes_out"],
                wall,
                info["cpu_s"],
                info["peak_rss_mb"],
                f"{naive['facts']} logs parsed",
            )
        )
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
    rows.append(
        (
            "(b) cidash sync",
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
            "(c) cidash sync, idle refresh",
            stats["total_requests"],
            stats["bytes_out"],
            wall,
            info["cpu_s"],
            info["peak_rss_mb"],
            "",
        )
    )
    return rows, server_cpu, naive, int(facts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipelines", type=int, default=200, help="pipelines in the scenario (default 200)")
    ap.add_argument("--latency-ms", type=float, default=30.0, help="server latency per request (default 30)")
    ap.add_argument("--concurrency", type=int, default=16, help="cidash sync --concurrency (default 16)")
    ap.add_argument("--max-rps", type=float, default=0, help="cidash sync --max-rps (default 0: no ceiling)")
    ap.add_argument("--skip-naive", action="store_true", help="only run cidash sync")
    ap.add_argument(
        "--gitlab-com-limit",
        action="store_true",
        help="advertise GitLab.com's 2,000 requests/min (cidash then paces itself to it); default: no limit, "
        "like a self-managed instance",
    )
    args = ap.parse_args()

    advertised = 2000 if args.gitlab_com_limit else 10**9
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update({"CI": "true", "HOME": tmp, "XDG_DATA_HOME": tmp, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pyc")})
        server = Server(args.pipelines, args.latency_ms, advertised, env)
        try:
            rows, server_cpu, naive, facts = _measure(args, server, {**env, "GITLAB_TOKEN": server.info["token"]}, tmp)
        finally:
            server.stop()
    print()
    print(f"{'':32} {'requests':>9} {'bytes':>12} {'wall s':>8} {'CPU s':>7} {'peak MB':>8}  facts")
    for name, req, nbytes, wall, cpu, rss, note in rows:
        print(f"{name:32} {req:>9} {nbytes:>12,} {wall:>8.2f} {cpu:>7.2f} {rss:>8.1f}  {note}")
    print(
        "(CPU s: the client process; the simulated server's CPU while each ran: "
        + ", ".join(f"{c:.1f}s" for c in server_cpu)
        + ")"
    )
    if naive is not None:
        a, b, c = rows[0], rows[1], rows[2]
        print()
        print(
            f"cidash vs script: {a[3] / b[3]:.1f}x faster wall time, {a[1] / max(b[1], 1):.2f}x the requests "
            f"({b[1]} vs {a[1]}), {a[2] / max(b[2], 1):.2f}x the bytes"
        )
        ok_speed = a[3] / b[3] >= 10
        ok_facts = facts >= naive["facts"]
        speed, enough = "OK" if ok_speed else "MISSED", "OK" if ok_facts else "MISSED"
        print(
            f"targets: >= 10x faster {speed}; no fewer facts {enough}; "
            f"idle refresh {c[1]} requests {'OK' if c[1] <= 2 else 'MISSED'} (<= 2); "
            f"peak {b[5]:.0f} MB {'OK' if b[5] < 150 else 'MISSED'} (< 150)"
        )
    load = os.getloadavg()[0]
    print(f"(load average {load:.1f} on {os.cpu_count()} CPUs: CPU-bound numbers suffer on a busy machine)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
