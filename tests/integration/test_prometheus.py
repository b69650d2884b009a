"""A real Prometheus (Debian's ``prometheus`` package) scrapes ``cidash serve`` against the simulator.

Asserts, through Prometheus' HTTP API, that the series exist, that no counter is ever seen to fall (``resets()``
is 0 and ``rate()`` >= 0) across a ``cidash prune``, and that nothing was renamed ``exported_*``. Skipped (with
the reason) when the ``prometheus`` binary is missing; with ``CI=true`` that is a failure (``.ci/run`` installs
it).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cidash.cli import main
from cidash.export import family_of
from cidash.sim import SimulatedGitLab
from serve_support import SECRET, pipeline_hook, recent_scenario, request, serving, wait_for, wait_ready


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path:
        return path
    reason = "the prometheus binary is not installed (Debian: apt-get install prometheus; .ci/run installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; with CI=true a skipped Prometheus test is a failure")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, binary: str, tmp: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: cidash\n"
            f"    static_configs:\n      - targets: ['{target}']\n",
            encoding="utf-8",
        )
        self.log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def api(self, path: str, **params: str) -> Any:
        code, _, body = request(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        assert code == 200, body[:300]
        doc = json.loads(body)
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        data = self.api("query", query=promql)
        return list(data["result"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def prometheus_bin() -> str:
    return prometheus_binary()


@pytest.fixture
def group_sim() -> Iterator[SimulatedGitLab]:
    with SimulatedGitLab(recent_scenario()) as sim:
        yield sim


def _scrapes(prom: Prometheus) -> int:
    result = prom.query('count_over_time(up{job="cidash"}[10m])')
    return int(float(result[0]["value"][1])) if result else 0


def _up(prom: Prometheus) -> bool:
    try:
        return any(r["value"][1] == "1" for r in prom.query('up{job="cidash"}'))
    except (AssertionError, OSError):
        return False


def test_prometheus_scrapes_serve_and_counters_survive_prune(
    prometheus_bin: str, group_sim: SimulatedGitLab, tmp_path: Path
) -> None:
    with serving(group_sim, tmp_path, interval=0.5, max_interval=1.0) as running:
        wait_ready(running.url)
        prom = Prometheus(prometheus_bin, tmp_path, f"127.0.0.1:{running.app.port}")
        try:
            wait_for(lambda: _up(prom), 60, "Prometheus to scrape cidash serve")
            wait_for(lambda: _scrapes(prom) >= 3, 60, "three scrapes before the prune")
            before = prom.query('sum by (__name__) ({__name__=~"cidash_.+_total"})')
            assert before, "no counters scraped"
            # Prune every pipeline while serve keeps syncing and Prometheus keeps scraping.
            config = str(tmp_path / "cidash.toml")
            assert main(["prune", "--db", str(running.db), "--config", config, "--before", "0d"]) == 0
            headers = {"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": SECRET}
            body = pipeline_hook(group_sim.project_id, group_sim.project_path)
            assert request(running.url + "/webhook", data=body, headers=headers)[0] == 202
            at_prune = _scrapes(prom)
            wait_for(lambda: _scrapes(prom) >= at_prune + 4, 60, "four scrapes after the prune")

            names = set(prom.api("label/__name__/values"))
            served = {n for n in names if n.startswith("cidash_")}
            for family in ("cidash_cache_restores", "cidash_image_builds", "cidash_syncs", "cidash_gitlab_requests"):
                assert f"{family}_total" in served, family
            for family in ("cidash_job_startup_seconds", "cidash_pipeline_duration_seconds"):
                assert {f"{family}_bucket", f"{family}_count", f"{family}_sum"} <= served, family
            for name in ("cidash_build_info", "cidash_criterion_status", "cidash_cache_hit_ratio_window",
                         "cidash_last_sync_success_timestamp_seconds", "cidash_image_size_bytes"):  # fmt: skip
                assert name in served, name
            unknown = {n for n in served if family_of(n) is None}
            assert not unknown, f"series that no family in cidash.export.FAMILIES names: {unknown}"

            counters = sorted(n for n in served if n.endswith(("_total", "_bucket", "_count", "_sum")))
            for name in counters:
                resets = prom.query(f"resets({name}[10m]) > 0")
                assert resets == [], f"{name} was seen to fall: {resets[:3]}"
                negative = prom.query(f"rate({name}[5s]) < 0")
                assert negative == [], f"rate({name}) < 0: {negative[:3]}"
            series = prom.api("series", **{"match[]": '{__name__=~"cidash_.+"}'})
            assert series
            renamed = {k for s in series for k in s if k.startswith("exported_")}
            assert not renamed, renamed
            assert {s["job"] for s in series} == {"cidash"}  # Prometheus' own job label, untouched
        finally:
            prom.stop()
