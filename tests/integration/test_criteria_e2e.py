"""Criteria end to end: the simulator's scenario, synced over real HTTP, judged against its ground truth."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Any

import pytest

from cidash.cli import main
from cidash.config import Config, CriteriaSettings
from cidash.criteria import CRITERIA_IDS, evaluate
from cidash.dataset import load_dataset
from cidash.metrics import Dataset, image_build_reliability, overlapping_writers
from cidash.store import Store
from metrics_factories import SyncedWorld, synced_world

__all__ = ["synced_world"]

MB = 1_000_000


def dataset(world: SyncedWorld) -> Dataset:
    with Store.open(world.db, readonly=True) as store:
        project = store.project(world.truth.project_path)  # type: ignore[attr-defined]
        assert project is not None and project.default_branch == "main"
        return load_dataset(store, project)


def main_job_ids_after(ds: Dataset, world: SyncedWorld, *, after: bool) -> set[int]:
    mig = world.truth.migration_at  # type: ignore[attr-defined]
    pipelines = {p.id for p in ds.pipelines if p.ref == "main" and (p.created_at >= mig) == after}
    return {j.id for j in ds.jobs if j.pipeline_id in pipelines}


def test_check_after_the_migration_matches_the_truth(synced_world: SyncedWorld) -> None:
    truth: Any = synced_world.truth
    ds = dataset(synced_world)
    config = Config()
    report = evaluate(ds, config, synced_world.now)
    r = {c.id: c for c in report.criteria}

    size = truth.image_tags[truth.candidate_image_tag].total_size / MB
    assert r["image_size"].value == pytest.approx(size, abs=0.05)
    assert r["image_size"].status == ("pass" if size <= config.criteria.image_size_mb else "fail")

    expected_improvement = truth.startup_improvement * 100
    s = r["startup_improvement"]
    assert s.value == pytest.approx(expected_improvement, abs=2.5)
    assert s.status == ("pass" if expected_improvement >= config.criteria.startup_improvement_pct else "fail")
    assert s.details["ci_low_pct"] <= -expected_improvement <= s.details["ci_high_pct"]
    assert truth.migration_at.date().isoformat() in s.evidence

    ran, ok = truth.image_builds_candidate
    rel = r["image_build_reliability"]
    assert rel.n == ran
    if ran < config.criteria.min_n:  # a handful of manual builds cannot show > 99 %
        assert rel.status == "no_data" and "not enough data" in rel.evidence
    else:
        assert rel.status == ("pass" if ok / ran * 100 > 99 else "fail")

    after = main_job_ids_after(ds, synced_world, after=True)
    stale_after = after & (truth.stale_cache_jobs | truth.default_key_jobs)
    assert r["stale_caches"].status == ("pass" if not stale_after else "fail")
    assert r["cache_writers"].status == ("pass" if truth.overlapping_writers_candidate == 0 else "fail")
    failed_verify = {j.id for j in ds.jobs if j.id in after and j.name == "verify-ci-image" and j.status == "failed"}
    assert r["tools_verified"].status == ("fail" if failed_verify else "pass")
    assert r["cache_key_files"].status != "no_data"
    assert report.ok() == all(c.status != "fail" for c in report.criteria)


def test_before_the_migration_the_problems_show(synced_world: SyncedWorld) -> None:
    truth: Any = synced_world.truth
    ds = dataset(synced_world).between(None, truth.migration_at)
    # The whole pre-migration history on main is the candidate: judge it as it was.
    config = Config(criteria=CriteriaSettings(baseline="ref:main", candidate="ref:main"))
    report = evaluate(ds, config, truth.migration_at)
    r = {c.id: c for c in report.criteria}

    old_size = truth.image_tags[truth.baseline_image_tag].total_size / MB
    assert r["image_size"].value == pytest.approx(old_size, abs=0.05)
    assert r["image_size"].status == "fail"

    ran, ok = truth.image_builds_baseline
    main_only = ds.on_ref("main")
    metric = image_build_reliability(main_only, config.image.build_job)
    assert (metric.n, metric.first_attempt_successes) == (ran, ok)
    assert r["image_build_reliability"].status == ("pass" if ok / ran * 100 > 99 else "fail")

    before = main_job_ids_after(dataset(synced_world), synced_world, after=False)
    defaults_before = before & truth.default_key_jobs
    assert defaults_before, "the scenario puts default keys on main before the migration"
    stale = r["stale_caches"]
    assert stale.status == "fail" and stale.value is not None and stale.value >= len(defaults_before)
    assert "0_-default-protected" in stale.evidence  # GitLab 18.6, no prefix: "0_" + stem of .cache-key
    assert r["startup_improvement"].status != "pass"  # same data on both sides: no improvement
    assert len(overlapping_writers(main_only)) == truth.overlapping_writers_baseline
    assert r["cache_writers"].details["observed_overlaps"] == truth.overlapping_writers_baseline
    assert not report.ok()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_check_json_contract(synced_world: SyncedWorld, capsys: pytest.CaptureFixture[str]) -> None:
    now = synced_world.now.isoformat()
    code, out, err = run_cli(
        capsys, "check", "--db", synced_world.db, "--config", synced_world.config_file, "--format", "json", "--now", now
    )
    doc = json.loads(out)
    assert set(doc) == {"schema_version", "ok", "criteria", "project", "generated_at"}
    assert [c["id"] for c in doc["criteria"]] == list(CRITERIA_IDS)
    for c in doc["criteria"]:
        assert {"id", "status", "value", "target", "unit", "n", "evidence"} <= set(c)
        assert c["status"] in ("pass", "fail", "no_data")
        if c["status"] == "no_data":
            assert c["value"] is None
    fails = any(c["status"] == "fail" for c in doc["criteria"])
    assert code == (1 if fails else 0) and doc["ok"] is (not fails)
    assert err == ""


def test_cli_check_junit_table_markdown(synced_world: SyncedWorld, capsys: pytest.CaptureFixture[str]) -> None:
    base = [
        "check",
        "--db",
        synced_world.db,
        "--config",
        synced_world.config_file,
        "--now",
        synced_world.now.isoformat(),
    ]
    _, out, _ = run_cli(capsys, *base, "--format", "junit")
    root = ET.fromstring(out)
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == list(CRITERIA_IDS)
    suite = root.find("testsuite")
    assert suite is not None
    assert int(suite.get("failures", "-1")) == sum(c.find("failure") is not None for c in cases)
    _, out, _ = run_cli(capsys, *base)
    assert "startup_improvement" in out and "MB = 10^6 bytes" in out
    _, out, _ = run_cli(capsys, *base, "--format", "markdown", "--criterion", "image_size")
    assert out.count("| CI image size") == 1 and "startup" not in out.split("\n", 4)[-1].split("_Period")[0]


def test_cli_check_errors_exit_2(synced_world: SyncedWorld, capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    code, out, err = run_cli(
        capsys, "check", "--db", str(tmp_path / "missing.db"), "--config", synced_world.config_file
    )
    assert code == 2 and out == "" and "does not exist" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "check", "--db", synced_world.db, "--criterion", "nope")
    assert code == 2 and "unknown criterion" in err
    code, _, err = run_cli(capsys, "check", "--db", synced_world.db, "--now", "yesterday")
    assert code == 2 and "--now" in err
    bad = tmp_path / "bad.toml"
    bad.write_text('[criteria]\nbaseline = "nonsense"\ncandidate = "ref:main"\n', encoding="utf-8")
    code, _, err = run_cli(capsys, "check", "--db", synced_world.db, "--config", str(bad))
    assert code == 2 and "SPEC" in err


def test_strict_turns_no_data_into_exit_1(synced_world: SyncedWorld, capsys: pytest.CaptureFixture[str]) -> None:
    # Long before the first pipeline nothing can be judged: every criterion lacks data in its window.
    ds = dataset(synced_world)
    early = replace(ds, pipelines=(), jobs=(), image_tags=(), ci_config_known=False, ci_caches=())
    report = evaluate(early, Config(), synced_world.now)
    assert {c.status for c in report.criteria} == {"no_data"}
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 1


def test_check_sync_refreshes_the_store_first(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from cidash.sim import Scenario, SimulatedGitLab

    scenario = Scenario(days=4, pipelines_per_day=3, migration_day=3, with_docs_project=False)
    config = tmp_path / "cidash.toml"
    config.write_text('[gitlab]\nmax_rps = 10000.0\n\n[sync]\nsince = "all"\n', encoding="utf-8")
    token = tmp_path / "token"
    db = tmp_path / "store.db"
    with SimulatedGitLab(scenario=scenario) as sim:
        token.write_text(sim.token + "\n", encoding="utf-8")
        argv = ["check", "--sync", "--db", str(db), "--config", str(config), "--url", sim.url]
        argv += ["--token-file", str(token), "--project", sim.project_path, "--format", "json"]
        argv += ["--now", scenario.end.isoformat()]
        code = main(argv)
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert f"synced {sim.project_path}" in err and sim.token not in err + out
    assert code == (1 if any(c["status"] == "fail" for c in doc["criteria"]) else 0)
    with Store.open(db, readonly=True) as store:
        assert len(store.pipelines()) == sim.truth.pipelines  # type: ignore[attr-defined]
    size = {c["id"]: c for c in doc["criteria"]}["image_size"]
    assert size["status"] != "no_data"
