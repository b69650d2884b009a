"""The Grafana dashboards and the compose file in docs/: every PromQL expression names metrics (and labels) that
``cidash serve`` really serves, and the compose file wires cidash serve, Prometheus and Grafana together."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cidash.cli import build_parser
from cidash.sim import SimulatedGitLab
from paths import REPO_ROOT
from serve_support import SECRET, pipeline_hook, recent_scenario, request, serving, wait_for

DOCS = REPO_ROOT / "docs"
DASHBOARDS = sorted((DOCS / "grafana").glob("*.json"))
METRIC = re.compile(r"\b(cidash_[a-zA-Z0-9_]+)\b")
SELECTOR = re.compile(r"\b(cidash_[a-zA-Z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def expressions(dashboard: dict[str, Any]) -> list[str]:
    out = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", []) if t.get("expr")]
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        if var.get("type") == "query":
            out.append(query["query"] if isinstance(query, dict) else query)
    return out


@pytest.fixture(scope="module")
def served() -> Iterator[dict[str, set[str]]]:
    """Sample name -> label names, from /metrics of cidash serve after a sync of the simulated group, one sync
    that fails (a project that does not exist) and one webhook delivery."""
    import tempfile

    with (
        SimulatedGitLab(recent_scenario()) as sim,
        tempfile.TemporaryDirectory() as tmp,
        serving(sim, Path(tmp), projects=("platform/does-not-exist",)) as running,
    ):
        states = running.app.scheduler.states
        app = running.app
        # synced, and the metrics of every synced project computed (serve does that just after each sync)
        wait_for(lambda: all(s.syncs for s in states), 90, "a sync of every project")
        wait_for(lambda: all(s.project.id in app._cache for s in states if s.project), 30, "their metrics")
        headers = {"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": SECRET}
        request(running.url + "/webhook", data=pipeline_hook(sim.project_id, sim.project_path), headers=headers)
        text = request(running.url + "/metrics")[2].decode()
    out: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, set()).update(s.labels)
    yield out


def test_there_are_dashboards_for_each_topic() -> None:
    titles = [p["title"] for d in DASHBOARDS for p in json.loads(d.read_text(encoding="utf-8"))["panels"]]
    text = " ".join(titles).lower()
    topics = ("criteria", "start-up p50 / p90 by job and image", "cache hit rate by key", "215 mb", "image-build")
    for topic in (*topics, "sync"):
        assert topic in text, topic


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_every_expression_names_served_metrics_and_labels(path: Path, served: dict[str, set[str]]) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    exprs = expressions(dashboard)
    assert exprs
    for expr in exprs:
        names = set(METRIC.findall(expr))
        assert names, f"{path.name}: {expr!r} names no cidash metric"
        missing = {n for n in names if n not in served}
        assert not missing, f"{path.name}: {expr!r} names {missing}, which /metrics does not serve"
        for name, matchers in SELECTOR.findall(expr):
            used = set(MATCHER.findall(matchers))
            assert used <= served[name], f"{path.name}: {name} has no label {used - served[name]}"
        known = set().union(*(served[n] for n in names)) | {"le"}
        for group in GROUPING.findall(expr):
            labels = {g.strip() for g in group.split(",") if g.strip()}
            assert labels <= known, f"{path.name}: {expr!r} groups by unknown {labels - known}"
    # Every panel uses the Prometheus data-source variable.
    ds = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert ds and ds[0]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_the_window_gauges_are_not_counters(served: dict[str, set[str]]) -> None:
    assert not [n for n in served if n.endswith("_window_total")]
    assert not [n for n in served if "job" in served[n] or "instance" in served[n]]


def test_compose_file_wires_serve_prometheus_and_grafana() -> None:
    compose = yaml.safe_load((DOCS / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) >= {"cidash", "prometheus", "grafana"}
    # The cidash command is a valid 'cidash serve' command line, listening where Prometheus scrapes.
    script = services["cidash"]["command"][-1]
    serve_cmd = script.split("exec ", 1)[1].replace("$$", "$")
    argv = shlex.split(serve_cmd)
    assert argv[:2] == ["cidash", "serve"]
    args = build_parser().parse_args(argv[1:])
    assert args.listen == "0.0.0.0:9717" and args.webhook_secret_file and args.db
    port = args.listen.rsplit(":", 1)[1]
    assert f"{port}:{port}" in services["cidash"]["ports"]
    prom_config = yaml.safe_load(compose["configs"]["prometheus-config"]["content"])
    targets = [t for job in prom_config["scrape_configs"] for s in job["static_configs"] for t in s["targets"]]
    assert targets == [f"cidash:{port}"]
    assert all(job["job_name"] for job in prom_config["scrape_configs"])
    # Grafana gets the Prometheus data source and this directory's dashboards.
    datasource = yaml.safe_load(compose["configs"]["grafana-datasource"]["content"])["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    providers = yaml.safe_load(compose["configs"]["grafana-dashboards"]["content"])["providers"]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"] if v.startswith("./"))
    assert mounts["./grafana"] == providers[0]["options"]["path"]
    assert (DOCS / "grafana").is_dir() and DASHBOARDS
    # Secrets come from files, never from the compose file itself.
    assert set(compose["secrets"]) == {"gitlab-token", "webhook-secret"}
    assert "GITLAB_TOKEN" not in json.dumps(services["cidash"].get("environment", {}))
