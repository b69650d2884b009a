"""Benchmark: memory of a `cidash serve` process after a first sync and a burst of traffic.

    .venv/bin/python bench/serve_memory.py                 # the default 30-day scenario (~360 pipelines)
    .venv/bin/python bench/serve_memory.py --scrapes 200 --webhooks 200

`cidash serve` runs as its own process (python -m cidash serve) against the simulated GitLab (group `platform`)
in this process. After /readyz, the script scrapes /metrics `--scrapes` times (OpenMetrics and Prometheus text
alternately) and posts `--webhooks` pipeline events (each a debounced sync), then waits for the syncs to settle and
reads the serve process' VmRSS and VmHWM (peak) from /proc. Linux only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cidash.sim import Scenario, SimulatedGitLab


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scrapes", type=int, default=300)
    parser.add_argument("--webhooks", type=int, default=300)
    args = parser.parse_args()
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    scenario = Scenario(days=args.days, start=midnight - timedelta(days=args.days))
    with SimulatedGitLab(scenario) as sim, tempfile.TemporaryDirectory() as tmp:
        token = Path(tmp) / "token"
        token.write_text(sim.token + "\n")
        secret = Path(tmp) / "secret"
        secret.write_text("bench-secret\n")
        config = Path(tmp) / "cidash.toml"
        config.write_text(
            f'[gitlab]\nurl = "{sim.url}"\ntoken_file = "{token}"\nmax_rps = 0\n'
            f'[store]\npath = "{Path(tmp) / "serve.db"}"\n[sync]\nsince = "all"\n'
        )
        log_path = Path(tmp) / "serve.log"
        log = log_path.open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cidash", "serve", "--config", str(config), "--group", "platform",
             "--listen", "127.0.0.1:0", "--log-format", "json", "--webhook-secret-file", str(secret),
             "--debounce", "0.2"],
            stderr=log,
        )  # fmt: skip
        while not log_path.read_text().strip():
            time.sleep(0.1)
        first_line = log_path.read_text().splitlines()[0]
        url = "http://127.0.0.1:" + json.loads(first_line)["address"].rsplit(":", 1)[1]
        started = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(url + "/readyz") as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.2)
        first = time.monotonic() - started
        rss = status_kb(proc.pid, "VmRSS") / 1024
        print(f"first sync of {len(sim.world.all_pipelines())} pipelines: {first:.1f}s, RSS {rss:.0f} MB")
        body = json.dumps({"object_kind": "pipeline", "project": {"id": sim.project_id}}).encode()
        for i in range(max(args.scrapes, args.webhooks)):
            if i < args.scrapes:
                accept = "application/openmetrics-text" if i % 2 else "text/plain"
                with urllib.request.urlopen(urllib.request.Request(url + "/metrics", headers={"Accept": accept})) as r:
                    size = len(r.read())
            if i < args.webhooks:
                req = urllib.request.Request(
                    url + "/webhook",
                    data=body,
                    headers={"X-Gitlab-Token": "bench-secret", "X-Gitlab-Event": "Pipeline Hook"},
                )
                urllib.request.urlopen(req).read()
                time.sleep(0.05)
        time.sleep(2)
        rss, peak = status_kb(proc.pid, "VmRSS") / 1024, status_kb(proc.pid, "VmHWM") / 1024
        print(f"after {args.scrapes} scrapes ({size / 1000:.0f} kB each) and {args.webhooks} webhooks: ", end="")
        print(f"RSS {rss:.0f} MB, peak {peak:.0f} MB")
        proc.terminate()
        proc.wait(30)
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
