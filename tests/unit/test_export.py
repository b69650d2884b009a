"""Exports: JSON, CSV, Markdown and OpenMetrics (validated with prometheus-client's parser)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from cidash.cli import main
from cidash.config import Config
from cidash.criteria import evaluate
from cidash.export import ExportInput, render_export, to_openmetrics
from metrics_factories import T0, Builder, SyncedWorld, facts, migration_story, pipeline, restore, synced_world

__all__ = ["synced_world"]

NOW = T0 + timedelta(days=20, hours=12)


def export_input(ds: Any, report: Any = None) -> ExportInput:
    return ExportInput(
        ds=ds,
        report=report,
        generated_at=NOW,
        since=None,
        build_job="build-ci-image",
        critical_files=("go.sum", "go.mod"),
    )


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_openmetrics_parses_and_counts() -> None:
    ds = migration_story().dataset()
    report = evaluate(ds, Config(), NOW)
    text = to_openmetrics(export_input(ds, report))
    assert text.endswith("# EOF\n")
    fam = families(text)
    assert fam["cidash_job_startup_seconds"].type == "histogram"
    assert fam["cidash_pipeline_duration_seconds"].type == "histogram"
    assert fam["cidash_cache_restores"].type == "counter"
    assert fam["cidash_image_builds"].type == "counter"
    assert fam["cidash_image_size_bytes"].type == "gauge"
    assert fam["cidash_criterion_pass"].type == "gauge"
    startup = fam["cidash_job_startup_seconds"].samples
    counts: dict[str, float] = {}
    for s in startup:
        if s.name.endswith("_count"):
            counts[s.labels["job_name"]] = counts.get(s.labels["job_name"], 0) + s.value
    assert counts == {"test": 60, "lint": 60, "verify-ci-image": 20}
    inf = [
        s for s in startup if s.name.endswith("_bucket") and s.labels["le"] == "+Inf" and s.labels["job_name"] == "test"
    ]
    assert sum(s.value for s in inf) == 60 and inf[0].labels["project"] == "platform/app"
    builds: dict[tuple[str, str], float] = {}
    for s in fam["cidash_image_builds"].samples:
        if s.name.endswith("_total"):
            key = (s.labels["attempt"], s.labels["result"])
            builds[key] = builds.get(key, 0) + s.value
    assert builds == {("first", "success"): 19, ("first", "failed"): 1, ("retry", "success"): 1}
    restores = sum(s.value for s in fam["cidash_cache_restores"].samples if s.name.endswith("_total"))
    assert restores == 120
    window = sum(s.value for s in fam["cidash_cache_restores_window"].samples)
    assert window == 120
    sizes = {s.labels["tag"]: s.value for s in fam["cidash_image_size_bytes"].samples}
    assert sizes == {"debian": 807_000_000, "alpine": 215_000_000}
    passes = {s.labels["criterion"]: s.value for s in fam["cidash_criterion_pass"].samples}
    assert passes["image_size"] == 1 and len(passes) == 7
    states = fam["cidash_criterion_status"]
    assert states.type == "stateset"
    on = {s.labels["criterion"]: s.labels["cidash_criterion_status"] for s in states.samples if s.value == 1}
    assert on["image_size"] == "pass" and len(on) == 7
    # No label Prometheus would rename on scrape.
    assert not any({"job", "instance"} & set(s.labels) for f in fam.values() for s in f.samples)


def test_prometheus_text_has_the_same_series() -> None:
    from prometheus_client.parser import text_string_to_metric_families as prom_families

    ds = migration_story().dataset()
    inp = export_input(ds, evaluate(ds, Config(), NOW))

    def series(families: Any) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
        return {(s.name, tuple(sorted(s.labels.items())), s.value) for f in families for s in f.samples}

    om = series(text_string_to_metric_families(render_export(inp, "openmetrics")))
    prom_text = render_export(inp, "prometheus")
    assert "# EOF" not in prom_text and "# TYPE cidash_cache_restores_total counter" in prom_text
    assert series(prom_families(prom_text)) == om


def test_openmetrics_escapes_labels() -> None:
    b = Builder()
    p = b.add_pipeline(pipeline(1, T0, ref='we"ird\\ref'))
    b.add_job(p, "job\nname", facts(12.0, cache=[restore("k")]))
    fam = families(to_openmetrics(export_input(b.dataset())))
    sample = next(s for s in fam["cidash_cache_restores"].samples if s.name.endswith("_total"))
    assert sample.labels["ref"] == 'we"ird\\ref' and sample.labels["job_name"] == "job\nname"


def test_json_csv_markdown() -> None:
    ds = migration_story().dataset()
    inp = export_input(ds, evaluate(ds, Config(), NOW))
    doc = json.loads(render_export(inp, "json"))
    m = doc["metrics"]
    assert m["pipeline_duration"]["n"] == 60 and m["pipeline_duration"]["median"] == 300.0
    assert m["job_startup"]["n"] == 140
    assert m["image_build"]["first_attempt_success_pct"] == pytest.approx(95.0)
    assert m["image_build"]["failures"]["script"] == 1
    assert m["stale_cache_events"]["default_key"] == 60
    assert len(doc["criteria"]) == 7
    rows = list(csv.DictReader(io.StringIO(render_export(inp, "csv"))))
    assert rows and set(rows[0]) == {"project", "metric", "scope", "statistic", "value", "n"}
    med = next(r for r in rows if r["metric"] == "pipeline_duration" and r["statistic"] == "median")
    assert float(med["value"]) == 300.0 and med["n"] == "60"
    md = render_export(inp, "markdown")
    assert md.startswith("### cidash metrics: platform/app") and "`0-default-protected`" in md
    with pytest.raises(ValueError):
        render_export(inp, "xml")


def test_cli_export_openmetrics_file(
    synced_world: SyncedWorld, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    target = tmp_path / "cidash.prom"
    argv = [
        "export",
        "--db",
        synced_world.db,
        "--config",
        synced_world.config_file,
        "--now",
        synced_world.now.isoformat(),
    ]
    assert main([*argv, "--format", "openmetrics", "--since", "30d", "--output", str(target)]) == 0
    fam = families(target.read_text(encoding="utf-8"))
    truth: Any = synced_world.truth
    sizes = {s.labels["digest"]: s.value for s in fam["cidash_image_size_bytes"].samples}
    assert (
        sizes[truth.image_tags[truth.candidate_image_tag].digest]
        == truth.image_tags[truth.candidate_image_tag].total_size
    )
    refs = {s.labels["ref"] for s in fam["cidash_pipeline_duration_seconds"].samples}
    assert "main" in refs
    assert main([*argv, "--format", "csv", "--ref", "main"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("project,metric,scope,statistic,value,n")
    assert main([*argv, "--since", "last week"]) == 2
    assert "--since" in capsys.readouterr().err
