"""Benchmark: a plain python-gitlab script vs `cidash sync`, against the simulated GitLab with per-request latency.

    .venv/bin/python bench/sync.py                       # 200 pipelines, 30 ms latency (the issue's setting)
    .venv/bin/python bench/sync.py --pipelines 40 --latency-ms 30   # a quick run

Both clients run as child processes (so their peak RSS is their own) against one simulated GitLab in this
process; requests and bytes are counted by the server. (a) is what a user would write: list pipelines, get each,
list its jobs, fetch each log and parse it with cidash's own parser (so both end with the same facts). (b) is
`cidash sync` into a fresh store; (c) is `cidash sync` again with nothing changed (an idle refresh).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
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

PEAK = r"""
import json, resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(proc.stdout)
sys.stderr.write(proc.stderr)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": proc.returncode, "peak_rss_mb": usage.ru_maxrss / 1024,
                  "cpu_s": usage.ru_utime + usage.ru_stime}))
"""


def run_child(argv: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any], str]:
    """Run argv under a small wrapper that reports the child's peak RSS; return (wall s, wrapper json, stdout)."""
    started = time.perf_counter()
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    proc = subprocess.run(
        [sys.executable, "-c", PEAK, *argv], capture_output=True, text=True, env=env, check=False, timeout=3600
    )
    wall = time.perf_counter() - started
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    lines = proc.stdout.strip().splitlines()
    info = json.loads(lines[-1])
    info["server_cpu_s"] = (self_after.ru_utime + self_after.ru_stime) - (self_before.ru_utime + self_before.ru_stime)
    if info["rc"] != 0:
        raise SystemExit(f"child failed ({info['rc']}): {' '.join(argv[:3])} ...\n{proc.stderr[-2000:]}")
    return wall, info, "\n".join(lines[:-1])


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

    from cidash.sim import Scenario, SimulatedGitLab

    scenario = Scenario(days=10, total_pipelines=args.pipelines, migration_day=6, with_docs_project=False)
    advertised = 2000 if args.gitlab_com_limit else 10**9
    with (
        SimulatedGitLab(scenario, latency_ms=args.latency_ms, rate_limit_advertised=advertised) as sim,
        tempfile.TemporaryDirectory() as tmp,
    ):
        env = {**os.environ, "GITLAB_TOKEN": sim.token, "CI": "true", "HOME": tmp, "XDG_DATA_HOME": tmp}
        truth = sim.truth
        print(
            f"scenario: {truth.pipelines} pipelines, {truth.jobs} jobs "
            f"({truth.jobs / truth.pipelines:.1f} per pipeline), {args.latency_ms:g} ms latency per request, "
            f"{'2,000 requests/min advertised' if args.gitlab_com_limit else 'no rate limit advertised'}"
        )
        rows: list[tuple[str, int, int, float, float, float, str]] = []
        server_cpu: list[float] = []
        naive: dict[str, Any] | None = None
        if not args.skip_naive:
            sim.stats.reset()
            wall, info, out = run_child([sys.executable, "-c", NAIVE, sim.url, sim.token, sim.project_path], env)
            naive = json.loads(out.splitlines()[-1])
            server_cpu.append(info["server_cpu_s"])
            rows.append(
                (
                    "(a) python-gitlab script",
                    sim.stats.total_requests,
                    sim.stats.bytes_out,
                    wall,
                    info["cpu_s"],
                    info["peak_rss_mb"],
                    f"{naive['facts']} logs parsed",
                )
            )
        db = Path(tmp) / "bench.db"
        cmd = [
            sys.executable,
            "-m",
            "cidash",
            "sync",
            "--url",
            sim.url,
            "--project",
            sim.project_path,
            "--db",
            str(db),
            "--since",
            "all",
            "--concurrency",
            str(args.concurrency),
            "--max-rps",
            str(args.max_rps),
        ]
        sim.stats.reset()
        wall, info, _ = run_child(cmd, env)
        server_cpu.append(info["server_cpu_s"])
        import sqlite3

        conn = sqlite3.connect(db)
        facts = conn.execute("SELECT count(*) FROM job_facts").fetchone()[0]
        checksums = conn.execute("SELECT count(*) FROM file_checksums").fetchone()[0]
        tags = conn.execute("SELECT count(*) FROM image_tags").fetchone()[0]
        conn.close()
        rows.append(
            (
                "(b) cidash sync",
                sim.stats.total_requests,
                sim.stats.bytes_out,
                wall,
                info["cpu_s"],
                info["peak_rss_mb"],
                f"{facts} logs parsed + {checksums} file checksums, {tags} image tags",
            )
        )
        sim.stats.reset()
        wall, info, _ = run_child(cmd, env)
        server_cpu.append(info["server_cpu_s"])
        rows.append(
            (
                "(c) cidash sync, idle refresh",
                sim.stats.total_requests,
                sim.stats.bytes_out,
                wall,
                info["cpu_s"],
                info["peak_rss_mb"],
                "",
            )
        )
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
