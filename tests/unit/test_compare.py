"""Before/after comparison: small hand-made data and the simulator's scenario."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from cidash.cli import main
from cidash.compare import compare
from cidash.config import Config, CriteriaSettings
from cidash.dataset import load_dataset
from cidash.report import render_comparison
from cidash.specs import parse_spec
from cidash.store import Store
from metrics_factories import SyncedWorld, migration_story, synced_world

__all__ = ["synced_world"]


def rows(result: Any) -> dict[str, Any]:
    return {r.id: r for r in result.rows}


def test_compare_hand_made_story() -> None:
    ds = migration_story().dataset()
    result = compare(
        ds, parse_spec("2026-11-01..2026-11-10"), parse_spec("2026-11-11.."), Config(), resamples=500, seed=3
    )
    r = rows(result)
    s = r["startup"]
    assert s.baseline.median == pytest.approx(60.0) and s.candidate.median == pytest.approx(30.0)
    assert s.n_baseline == 70 and s.n_candidate == 70
    assert s.change_pct == pytest.approx(-50.0)
    assert s.ci_low_pct <= -50.0 <= s.ci_high_pct
    assert s.verdict == "PASS"
    assert s.headline().startswith("start-up -50 % [") and s.headline().endswith("n=70/70: PASS")
    assert r["image_size"].baseline_value == pytest.approx(807.0) and r["image_size"].candidate_value == 215.0
    assert r["image_size"].verdict == "PASS"
    assert r["stale_caches"].baseline_value == 60 and r["stale_caches"].candidate_value == 0
    assert r["stale_caches"].verdict == "PASS"
    assert r["image_build_first_attempt"].baseline_value == pytest.approx(90.0)
    assert r["image_build_first_attempt"].verdict == "PASS"
    assert not result.any_fail
    # Seeded: the same inputs give the same report, byte for byte.
    again = compare(
        ds, parse_spec("2026-11-01..2026-11-10"), parse_spec("2026-11-11.."), Config(), resamples=500, seed=3
    )
    assert render_comparison(again, "json") == render_comparison(result, "json")


def test_not_enough_data_and_fail() -> None:
    ds = migration_story(old_startup=40.0, new_startup=38.0).dataset()
    config = Config(criteria=CriteriaSettings(min_n=100))
    r = rows(compare(ds, parse_spec("..2026-11-10"), parse_spec("2026-11-11.."), config, resamples=200))
    assert r["startup"].verdict == "not enough data" and r["startup"].ci_low_pct is None
    r = rows(compare(ds, parse_spec("..2026-11-10"), parse_spec("2026-11-11.."), Config(), resamples=200))
    assert r["startup"].verdict == "FAIL"
    assert r["startup_prepare"].verdict is None


def test_markdown_is_fit_for_a_merge_request() -> None:
    ds = migration_story().dataset()
    result = compare(ds, parse_spec("#101..#130"), parse_spec("#131..#160"), Config(), resamples=200)
    md = render_comparison(result, "markdown")
    assert md.startswith("### cidash compare: platform/app")
    assert "- **start-up -50 % [" in md
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in table}) == 1  # every row has the same number of cells
    assert "type 7" in md and "seed 0" in md and "10^6 bytes" in md
    text = render_comparison(result, "table", width=160)
    assert "start-up" in text and "PASS" in text


def test_compare_scenario_matches_the_truth(synced_world: SyncedWorld) -> None:
    truth: Any = synced_world.truth
    mig = truth.migration_at.date()
    baseline = parse_spec(f"..{mig - timedelta(days=1)}")
    candidate = parse_spec(f"{mig}..")
    with Store.open(synced_world.db, readonly=True) as store:
        project = store.project(truth.project_path)
        assert project is not None
        ds = load_dataset(store, project).on_ref("main")
    result = compare(ds, baseline, candidate, Config(), resamples=500)
    r = rows(result)
    expected = -truth.startup_improvement * 100
    assert r["startup"].change_pct == pytest.approx(expected, abs=2.5)
    assert r["startup"].verdict == ("PASS" if -expected >= 30 else "FAIL")
    assert r["image_size"].baseline_value == pytest.approx(truth.image_tags[truth.baseline_image_tag].total_size / 1e6)
    assert r["image_size"].verdict == "PASS"
    # By image digest instead of dates: the same story.
    old = truth.image_tags[truth.baseline_image_tag].digest
    new = truth.image_tags[truth.candidate_image_tag].digest
    by_image = rows(compare(ds, parse_spec(f"image:{old}"), parse_spec(f"image:{new}"), Config(), resamples=300))
    assert by_image["startup"].change_pct is not None and by_image["startup"].change_pct < -25


def test_cli_compare(synced_world: SyncedWorld, capsys: pytest.CaptureFixture[str]) -> None:
    truth: Any = synced_world.truth
    mig = truth.migration_at.date()
    argv = ["compare", "--db", synced_world.db, "--config", synced_world.config_file, "--resamples", "300"]
    argv += ["--baseline", f"..{mig - timedelta(days=1)}", "--candidate", f"{mig}.."]
    code = main([*argv, "--format", "json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert code == (0 if doc["ok"] else 1) and err == ""
    assert doc["methods"]["seed"] == 0 and doc["metrics"][0]["id"] == "startup"
    code = main([*argv, "--format", "markdown"])
    out, _ = capsys.readouterr()
    assert "### cidash compare" in out
    assert main(["compare", "--db", synced_world.db, "--baseline", "bogus", "--candidate", "ref:main"]) == 2
    assert "cannot understand SPEC" in capsys.readouterr().err


def test_rate_rows_change_in_points_other_rows_in_percent() -> None:
    from cidash.compare import ComparisonRow

    rate_row = ComparisonRow(
        id="r",
        title="hit rate",
        unit="%",
        kind="value",
        n_baseline=10,
        n_candidate=10,
        baseline_value=95.7,
        candidate_value=100.0,
        change_pct=4.49,
    )
    assert rate_row.change_pts == pytest.approx(4.3)
    assert rate_row.change_text() == "+4.3 pts"
    assert rate_row.as_dict()["change_pts"] == pytest.approx(4.3)
    size_row = ComparisonRow(
        id="s",
        title="size",
        unit="MB",
        kind="value",
        n_baseline=1,
        n_candidate=1,
        baseline_value=807.0,
        candidate_value=215.0,
        change_pct=-73.36,
    )
    assert size_row.change_pts is None and size_row.change_text() == "-73.4 %"
