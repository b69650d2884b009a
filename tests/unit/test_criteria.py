"""The criteria engine over small in-memory datasets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cidash.config import Config, CriteriaSettings, config_from_dict
from cidash.criteria import CRITERIA_IDS, REGISTRY, choose_periods, criterion_daily_series, evaluate
from cidash.metrics import JobCacheConfig
from cidash.tui.links import web_url
from metrics_factories import T0, Builder, migration_story

NOW = T0 + timedelta(days=20, hours=12)


def by_id(report: object) -> dict[str, object]:
    return {c.id: c for c in report.criteria}  # type: ignore[attr-defined]


def test_migration_story_verdicts() -> None:
    ds = migration_story().dataset()
    report = evaluate(ds, Config(), NOW)
    assert [c.id for c in report.criteria] == list(CRITERIA_IDS)
    r = {c.id: c for c in report.criteria}
    assert r["image_size"].status == "pass" and r["image_size"].value == pytest.approx(215.0)
    assert "10^6 bytes" in r["image_size"].evidence
    s = r["startup_improvement"]
    assert s.status == "pass"
    assert s.value == pytest.approx(50.0)  # 60 s -> 30 s
    assert "split at the CI-image digest change on main on 2026-11-11" in s.evidence
    assert s.details["n_baseline"] == 70 and s.details["n_candidate"] == 70
    assert s.details["ci_low_pct"] <= -50.0 <= s.details["ci_high_pct"]
    # After the split: one build per day, all first-attempt successes; stale keys are gone.
    assert r["image_build_reliability"].status == "pass" and r["image_build_reliability"].n == 10
    assert r["stale_caches"].status == "pass" and r["stale_caches"].value == 0
    assert r["cache_key_files"].status == "pass" and r["cache_key_files"].value == 1
    assert r["cache_writers"].status == "pass"
    assert r["tools_verified"].status == "pass" and r["tools_verified"].n == 10
    assert report.ok() and report.exit_code() == 0
    for c in report.criteria:
        assert c.evidence.endswith(".") and "\n" not in c.evidence


def test_results_take_their_title_and_gitlab_page_from_the_registry() -> None:
    """The evaluations sit below the registry and do not name titles: evaluating through the registry titles each
    result. The GitLab page the dashboard opens for a criterion (``o``) is the registry's too, never an id match."""
    report = evaluate(migration_story().dataset(), Config(), NOW)
    assert [(c.id, c.title) for c in report.criteria] == [(cid, REGISTRY[cid].title) for cid in CRITERIA_IDS]
    assert all(c.title for c in report.criteria)
    pages = {cid: crit.gitlab_page for cid, crit in REGISTRY.items()}
    assert pages == {cid: "registry" if cid == "image_size" else "pipelines" for cid in CRITERIA_IDS}
    for page in pages.values():
        assert web_url("https://gitlab.example.com", "g/app", page) is not None


def test_before_the_migration_fails_with_evidence() -> None:
    b = migration_story(days_after=0, build_failures_before=2)
    ds = b.dataset()
    config = config_from_dict({"criteria": {"window_days": 30}})
    report = evaluate(ds, config, T0 + timedelta(days=10))
    r = by_id(report)
    assert r["startup_improvement"].status == "no_data"  # type: ignore[attr-defined]
    stale = r["stale_caches"]
    assert stale.status == "fail"  # type: ignore[attr-defined]
    assert stale.value == 60  # type: ignore[attr-defined]  # 10 days x 3 pipelines x 2 jobs on the default key
    assert "key `0-default-protected` used by 60 jobs since 2026-11-01" in stale.evidence  # type: ignore[attr-defined]
    rel = r["image_build_reliability"]
    assert rel.status == "fail" and rel.value == pytest.approx(80.0)  # type: ignore[attr-defined]
    assert "2 script" in rel.evidence  # type: ignore[attr-defined]
    assert r["image_size"].status == "fail"  # type: ignore[attr-defined]  # newest jobs still run the 807 MB image
    assert r["image_size"].value == pytest.approx(807.0)  # type: ignore[attr-defined]
    assert not report.ok() and report.exit_code() == 1


def test_no_data_never_passes() -> None:
    report = evaluate(Builder().dataset(), Config(), NOW)
    assert {c.status for c in report.criteria} == {"no_data"}
    assert report.ok() and not report.ok(strict=True)
    assert report.exit_code(strict=True) == 1
    doc = report.as_dict()
    assert doc["ok"] is True and len(doc["criteria"]) == 7
    assert set(doc["criteria"][0]) >= {"id", "status", "value", "target", "unit", "n", "evidence"}


def test_min_n_gives_not_enough_data() -> None:
    ds = migration_story(days_before=2, days_after=2, per_day=1).dataset()
    report = evaluate(ds, Config(), T0 + timedelta(days=4), only=("startup_improvement",))
    (c,) = report.criteria
    assert c.status == "no_data" and "not enough data: 6 baseline and 6 candidate" in c.evidence


def test_configured_specs_and_a_small_improvement_fails() -> None:
    ds = migration_story(old_startup=40.0, new_startup=36.0).dataset()
    config = Config(criteria=CriteriaSettings(baseline="2026-11-01..2026-11-10", candidate="2026-11-11.."))
    periods = choose_periods(ds, config, NOW)
    assert periods.mode == "specs"
    (c,) = evaluate(ds, config, NOW, only=("startup_improvement",)).criteria
    assert c.status == "fail" and c.value == pytest.approx(10.0)
    assert "configured baseline `2026-11-01..2026-11-10`" in c.evidence


def test_cache_key_files_and_config_writers_fail() -> None:
    b = migration_story()
    b.caches = [
        JobCacheConfig("test", 0, "0-{files: a, b, c}", 3, "pull-push", None, line=12),
        JobCacheConfig("build", 0, "0-{files: a, b, c}", 3, "pull-push", None, line=30),
    ]
    r = by_id(evaluate(b.dataset(), Config(), NOW))
    kf = r["cache_key_files"]
    assert kf.status == "fail" and kf.value == 3 and "(line " in kf.evidence  # type: ignore[attr-defined]
    w = r["cache_writers"]
    assert w.status == "fail" and w.value == 2 and "build, test" in w.evidence  # type: ignore[attr-defined]
    b.config_known = False
    b.caches = []
    assert by_id(evaluate(b.dataset(), Config(), NOW))["cache_key_files"].status == "no_data"  # type: ignore[attr-defined]


def test_tools_verified_fails_on_a_failed_run() -> None:
    b = migration_story(days_before=1, days_after=3)
    p = b.pipelines[-1]
    b.add_job(p, "verify-ci-image", status="failed", start=500.0)
    (c,) = evaluate(b.dataset(), Config(), NOW, only=("tools_verified",)).criteria
    assert c.status == "fail" and "passed 3 of 4 runs" in c.evidence


def test_daily_series() -> None:
    ds = migration_story().dataset()
    series = criterion_daily_series(ds, Config(), "startup_improvement", days=30, now=NOW)
    assert len(series) == 30 and series[-1].day == NOW.date()
    with_data = [p for p in series if p.value is not None]
    assert len(with_data) == 20
    assert with_data[0].value == pytest.approx(60.0) and with_data[-1].value == pytest.approx(30.0)
    sizes = criterion_daily_series(ds, Config(), "image_size", days=30, now=NOW)
    assert sizes[-1].value == pytest.approx(215.0)
    stale = criterion_daily_series(ds, Config(), "stale_caches", days=30, now=NOW)
    assert [p.value for p in stale if p.value][:1] == [6.0]
    for cid in CRITERIA_IDS:
        assert len(criterion_daily_series(ds, Config(), cid, days=7, now=NOW)) == 7
    with pytest.raises(ValueError):
        criterion_daily_series(ds, Config(), "nope", now=NOW)


def test_each_target_is_met_as_its_comparator_says() -> None:
    """One place says how a value meets a criterion's target (the evaluations and compare's verdicts use it):
    at the target itself, <= and >= pass, > (image-build reliability) does not."""
    from cidash.config import Config
    from cidash.criteria import TARGETS, meets

    config = Config()
    assert set(TARGETS) <= set(CRITERIA_IDS)
    for cid, target in TARGETS.items():
        at = target.of(config)
        assert meets(cid, at, config) is (target.comparator != ">"), cid
        better = at + 1 if target.comparator in (">=", ">") else at - 1
        worse = at - 1 if target.comparator in (">=", ">") else at + 1
        assert meets(cid, better, config) and not meets(cid, worse, config), cid


def test_no_module_reads_a_criterion_target_but_the_targets() -> None:
    """A target read elsewhere is a second verdict rule waiting to disagree (compare once had its own four)."""
    import re

    from paths import REPO_ROOT

    fields = re.compile(
        r"\.(image_size_mb|startup_improvement_pct|image_build_reliability_pct|stale_caches_max|cache_key_files_max"
        r"|cache_writers_max)\b"
    )
    src = REPO_ROOT / "src" / "cidash"
    allowed = {src / "config.py", src / "criteria" / "targets.py"}
    readers = [
        f"{p.relative_to(src)}:{n}"
        for p in sorted(src.rglob("*.py"))
        if p not in allowed
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if fields.search(line)
    ]
    assert readers == []
