"""``cidash serve`` as a process: SIGTERM stops it cleanly (exit 0, no sync left running, no traceback), the
log is one JSON object a line and never holds a secret."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cidash.sim import SimulatedGitLab
from cidash.store import Store
from serve_support import SECRET, recent_scenario, request, wait_for, write_config


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM is POSIX")
def test_sigterm_stops_cleanly_mid_sync(tmp_path: Path) -> None:
    # Slow responses so SIGTERM lands while the first sync is still downloading.
    with SimulatedGitLab(recent_scenario(), latency_ms=20) as sim:
        config = write_config(tmp_path, sim)
        secret = tmp_path / "webhook-secret"
        secret.write_text(SECRET + "\n", encoding="utf-8")
        port_file = tmp_path / "port"
        env = {**os.environ, "CIDASH_DEBUG": ""}
        env.pop("GITLAB_TOKEN", None)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cidash",
                "serve",
                "--config",
                str(config),
                "--group",
                "platform",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--webhook-secret-file",
                str(secret),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            first = proc.stderr.readline() if proc.stderr else ""
            event = json.loads(first)
            assert event["event"] == "listening", first
            port_file.write_text(event["address"].rsplit(":", 1)[1])
            url = f"http://127.0.0.1:{port_file.read_text()}"
            assert request(url + "/healthz")[0] == 200
            wait_for(lambda: sim.stats.total_requests > 20, 60, "the first sync to be under way")
            proc.send_signal(signal.SIGTERM)
            _, rest = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, rest
    lines = [json.loads(line) for line in rest.splitlines() if line.strip()]
    events = [line["event"] for line in lines]
    assert "signal" in events and events[-1] == "stopped" and lines[-1]["clean"] is True
    assert "Traceback" not in rest and SECRET not in rest and sim.token not in rest
    with Store.open(tmp_path / "serve.db") as store:
        runs = store.sync_runs(limit=100)
        assert runs and not [r for r in runs if r.status == "running"]
        # A sync cut short by the stop says so; nothing else failed.
        assert all(r.status == "ok" or "serve is stopping" in (r.error or "") for r in runs)
        assert store.sync_lease(sim.project_id) is None
