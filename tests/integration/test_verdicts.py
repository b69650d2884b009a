"""Verdicts that do not move: the migration split after rebuilds and registry cleanups, and ``--now`` as of."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cidash.config import Config, CriteriaSettings, config_from_dict
from cidash.criteria import CriteriaReport, choose_periods, classify_change, evaluate, migration_change
from cidash.dataset import load_dataset
from cidash.errors import ConfigError
from cidash.metrics import Dataset, DigestChange
from cidash.store import Store
from metrics_factories import IMAGE, NEW, OLD, T0, migration_story, tag

NOW = T0 + timedelta(days=20, hours=12)
REBUILT = "sha256:" + "c" * 64
MB = 1_000_000


# ---------------------------------------------------------------------------------------------------------------
# Choosing the migration among digest changes
# ---------------------------------------------------------------------------------------------------------------


def change(old: str, new: str, old_tag: str | None, new_tag: str | None, day: int) -> DigestChange:
    return DigestChange(T0 + timedelta(days=day), day, day, old, new, old_tag, new_tag)


def test_a_change_of_unknown_size_never_beats_a_known_size_change() -> None:
    exact = {OLD: 900 * MB, NEW: 214 * MB}  # the rebuilt digest is not in the tag history
    changes = [
        classify_change(change(OLD, NEW, "debian-1", "alpine-2", 1), exact, {}),
        classify_change(change(NEW, REBUILT, "alpine-2", "alpine-2", 5), exact, {}),
    ]
    assert [c.kind for c in changes] == ["migration", "same_tag"]
    chosen, later = migration_change(changes)
    assert chosen.change.new == NEW and later == 1


def test_an_overwritten_tag_lends_its_size_to_the_digest_it_replaced() -> None:
    # Fresh store: alpine-2 now points to REBUILT; NEW (the first alpine-2 push) is no longer in the registry.
    exact = {OLD: 900 * MB, REBUILT: 214 * MB}
    c = classify_change(change(OLD, NEW, "debian-1", "alpine-2", 1), exact, {"alpine-2": 214 * MB})
    assert c.kind == "migration"
    assert c.old_size is not None and c.old_size.exact
    assert c.new_size is not None and not c.new_size.exact and c.new_size.via_tag == "alpine-2"
    # ... but never across a change that kept the tag: that estimate would call every push a rebuild
    same = classify_change(change(NEW, REBUILT, "alpine-2", "alpine-2", 5), exact, {"alpine-2": 214 * MB})
    assert same.kind == "same_tag" and same.old_size is None


def test_after_a_cleanup_a_new_tag_beats_a_new_push_of_one_tag() -> None:
    exact = {REBUILT: 214 * MB}  # debian-1 deleted, alpine-2 overwritten
    changes = [
        classify_change(change(OLD, NEW, "debian-1", "alpine-2", 1), exact, {"alpine-2": 214 * MB}),
        classify_change(change(NEW, REBUILT, "alpine-2", "alpine-2", 5), exact, {"alpine-2": 214 * MB}),
    ]
    assert [c.kind for c in changes] == ["unknown", "same_tag"]
    assert migration_change(changes)[0].change.new == NEW


def test_all_rebuilds_take_the_most_recent() -> None:
    exact = {OLD: 214 * MB, NEW: 215 * MB, REBUILT: 216 * MB}
    changes = [
        classify_change(change(OLD, NEW, "a", "a", 1), exact, {}),
        classify_change(change(NEW, REBUILT, "a", "a", 2), exact, {}),
    ]
    assert [c.kind for c in changes] == ["rebuild", "rebuild"]
    assert migration_change(changes) == (changes[-1], 0)


def story_with_a_rebuild(*, forget_old_sizes: bool) -> Dataset:
    """The migration story, then a forced rebuild of the Alpine image on day 15 (a new digest, same tag)."""
    b = migration_story()
    for j in b.jobs:
        f = b.facts.get(j.id)
        if f is None or f.image is None or f.image.digest is None:
            continue
        rebuilt = j.started_at is not None and j.started_at >= T0 + timedelta(days=15)
        digest = REBUILT if rebuilt else f.image.digest.rsplit("@", 1)[1]
        name = "alpine-2" if digest in (NEW, REBUILT) else "debian-1"
        b.facts[j.id] = replace(f, image=replace(f.image, name=f"{IMAGE}:{name}", digest=f"{IMAGE}@{digest}"))
    b.tags = [
        tag("debian-1", OLD, 807 * MB, T0 - timedelta(days=1)),
        tag("alpine-2", NEW, 215 * MB, T0 + timedelta(days=10) - timedelta(hours=2)),
        tag("alpine-2", REBUILT, 215 * MB + 1000, T0 + timedelta(days=15) - timedelta(hours=2)),
    ]
    if forget_old_sizes:  # a store synced after the overwrite and a cleanup never saw the first two
        b.tags = b.tags[2:]
    return b.dataset()


@pytest.mark.parametrize("forget", [False, True])
def test_the_split_stays_on_the_migration_after_a_rebuild(forget: bool) -> None:
    ds = story_with_a_rebuild(forget_old_sizes=forget)
    periods = choose_periods(ds, Config(), NOW)
    assert periods.split_at is not None and periods.split_at.date().isoformat() == "2026-11-11"
    assert "of 2 digest changes, the most recent" in periods.description
    assert "; the 1 later change stays in the candidate as a rebuild" in periods.description
    assert periods.split_rule == ("unknown" if forget else "migration")
    (s,) = evaluate(ds, Config(), NOW, only=("startup_improvement",)).criteria
    assert s.status == "pass" and s.value == pytest.approx(50.0)
    assert periods.description in s.evidence


# ---------------------------------------------------------------------------------------------------------------
# [criteria] migration
# ---------------------------------------------------------------------------------------------------------------


def test_configured_migration_date_and_digest() -> None:
    ds = story_with_a_rebuild(forget_old_sizes=True)
    by_date = Config(criteria=CriteriaSettings(migration="2026-11-16"))
    p = choose_periods(ds, by_date, NOW)
    assert p.mode == "configured" and p.split_at == datetime(2026, 11, 16, tzinfo=UTC)
    assert "configured [criteria] migration = 2026-11-16" in p.description
    by_digest = Config(criteria=CriteriaSettings(migration=NEW[:15]))
    p = choose_periods(ds, by_digest, NOW)
    assert p.mode == "configured" and p.split_at is not None and p.split_at.date().isoformat() == "2026-11-11"
    never = Config(criteria=CriteriaSettings(migration="sha256:dddddddd"))
    p = choose_periods(ds, never, NOW)
    assert p.baseline is None and "no job on main ran" in p.description
    (s,) = evaluate(ds, never, NOW, only=("startup_improvement",)).criteria
    assert s.status == "no_data"


@pytest.mark.parametrize("value", ["2026-11-11", "2026-11-11T09:30:00Z", "sha256:abcdef", "2026-11-11T09:30"])
def test_migration_key_accepts(value: str) -> None:
    assert config_from_dict({"criteria": {"migration": value}}).criteria.migration == value


@pytest.mark.parametrize("value", ["yesterday", "sha256:xyz", "2026-13-01", "sha256:abc"])
def test_migration_key_refuses(value: str) -> None:
    with pytest.raises(ConfigError, match=r"\[criteria\] migration"):
        config_from_dict({"criteria": {"migration": value}})


# ---------------------------------------------------------------------------------------------------------------
# --now is "as of"
# ---------------------------------------------------------------------------------------------------------------


def test_as_of_drops_what_came_later() -> None:
    ds = story_with_a_rebuild(forget_old_sizes=False)
    t = T0 + timedelta(days=5)
    past = ds.as_of(t)
    assert past.pipelines and all(p.created_at <= t for p in past.pipelines)
    assert all(j.created_at <= t for j in past.jobs)
    assert {tg.name for tg in past.image_tags} == {"debian-1"}
    assert past.as_of(t + timedelta(days=1)) is past  # nothing left to drop
    assert ds.as_of(NOW + timedelta(days=30)) is ds  # nothing happened after: the same dataset, its memo kept
    # a job retried only after t was not retried at t; one that finished after t was still running
    first = next(j for j in ds.jobs if j.retried)
    retry = next(j for j in ds.jobs if j.pipeline_id == first.pipeline_id and j.name == first.name and j.id > first.id)
    before_retry = ds.as_of(retry.created_at - timedelta(milliseconds=1))
    assert retry.id not in {j.id for j in before_retry.jobs}
    assert not next(j for j in before_retry.jobs if j.id == first.id).retried
    job = next(j for j in ds.jobs if j.id in ds.facts and j.started_at is not None and j.finished_at is not None)
    assert job.started_at is not None and job.finished_at is not None
    running = ds.as_of(job.started_at + (job.finished_at - job.started_at) / 2)
    j = next(j for j in running.jobs if j.id == job.id)
    assert j.status == "running" and j.finished_at is None and j.id not in running.facts
    assert next(p for p in running.pipelines if p.id == job.pipeline_id).status == "running"


def test_check_as_of_a_past_day_ignores_the_future() -> None:
    ds = story_with_a_rebuild(forget_old_sizes=False)
    t = T0 + timedelta(days=5)
    report = evaluate(ds, Config(), t)
    r = {c.id: c for c in report.criteria}
    assert r["image_size"].status == "fail" and r["image_size"].value == pytest.approx(807.0)
    assert r["startup_improvement"].status == "no_data"
    assert "no CI-image digest change" in report.period
    assert report == evaluate(ds.as_of(t), Config(), t)


# ---------------------------------------------------------------------------------------------------------------
# End to end: one GitLab synced into two stores, before and after a forced rebuild and a registry cleanup
# ---------------------------------------------------------------------------------------------------------------


def sync_into(sim: object, db: Path, now: datetime) -> None:
    from cidash.connection import Connection, Secret
    from cidash.remote import GitLabClient
    from cidash.sync import SyncOptions, sync_project

    conn = Connection(url=sim.url, token=Secret(sim.token), projects=(sim.project_path,), max_rps=10_000.0)  # type: ignore[attr-defined]
    with Store.open(db) as store, GitLabClient(conn) as client:
        sync_project(
            client,
            store,
            sim.project_path,  # type: ignore[attr-defined]
            options=SyncOptions.from_config(Config(), since="all", now=now),
            now=now,
        )


def verdicts(db: Path, path: str, now: datetime) -> tuple[CriteriaReport, dict[str, tuple[str, float | None]]]:
    with Store.open(db, readonly=True) as store:
        project = store.project(path)
        assert project is not None
        ds = load_dataset(store, project, as_of=now)
    report = evaluate(ds, Config(), now)
    return report, {c.id: (c.status, None if c.value is None else round(c.value, 6)) for c in report.criteria}


def test_two_stores_synced_before_and_after_a_registry_cleanup_agree(tmp_path: Path) -> None:
    from cidash.sim import Scenario, SimulatedGitLab

    scenario = Scenario(days=12, pipelines_per_day=5, migration_day=6, with_docs_project=False)
    old_db, fresh_db = tmp_path / "old.db", tmp_path / "fresh.db"
    with SimulatedGitLab(scenario=scenario) as sim:
        world = sim.world
        project = world.main
        truth = sim.truth
        first_sync = datetime.fromtimestamp(world.now(), UTC)
        sync_into(sim, old_db, first_sync)
        # a forced rebuild of the Alpine tag, then a few ordinary pipelines running the rebuilt digest
        force = [{"key": "FORCE_CI_IMAGE_REBUILD", "value": "true", "variable_type": "env_var"}]
        world.create_pipeline(project, "main", force, "demo")
        for _ in range(4):
            world.advance(3 * 3600)
            world.create_pipeline(project, "main", [], "demo")
        world.advance(3 * 3600)
        rebuilt = project.tags[truth.candidate_image_tag]
        assert rebuilt.rebuilds, "the forced pipeline pushed a new digest of the candidate tag"
        now = datetime.fromtimestamp(world.now(), UTC)
        sync_into(sim, old_db, now)
        del project.tags[truth.baseline_image_tag]  # the registry cleanup: the Debian tag is gone
        sync_into(sim, fresh_db, now)
    with Store.open(fresh_db, readonly=True) as store:
        digests = {t.tag.digest for t in store.image_tags()}
    with Store.open(old_db, readonly=True) as store:
        forgotten = {t.tag.digest for t in store.image_tags()} - digests
    assert len(forgotten) == 2, "the fresh store knows neither the Debian image nor the first push of the tag"
    old_report, old = verdicts(old_db, truth.project_path, now)
    fresh_report, fresh = verdicts(fresh_db, truth.project_path, now)
    assert old == fresh
    assert old["startup_improvement"][0] == "pass"
    split_day = truth.migration_at.date().isoformat()
    assert f"on {split_day}" in old_report.period and f"on {split_day}" in fresh_report.period
    assert "later changes stay in the candidate" in fresh_report.period


# ---------------------------------------------------------------------------------------------------------------
# Cache keys that never hit
# ---------------------------------------------------------------------------------------------------------------


def test_a_key_restored_ten_times_without_a_hit_is_a_warning() -> None:
    from cidash.metrics import cache_restore_rates, never_hit_keys
    from metrics_factories import Builder, facts, pipeline, restore

    b = Builder()
    for i in range(12):
        p = b.add_pipeline(pipeline(100 + i, T0 + timedelta(hours=i)))
        b.add_job(p, "never", facts(cache=[restore(f"sha-{i % 1}", "miss")]))
        b.add_job(p, "nine", facts(cache=[restore("few", "miss" if i < 9 else "unknown")]))
        b.add_job(p, "fallback", facts(cache=[restore("main-key", "miss"), restore("fb", "hit", "fallback")]))
    ds = b.dataset()
    rates = {r.group: r for r in cache_restore_rates(ds)}
    assert rates["main-key"].hit_rate == 100.0 and rates["main-key"].fallback_hits == 12
    assert [r.group for r in never_hit_keys(ds)] == ["sha-0"]
    report = evaluate(ds, Config(), T0 + timedelta(days=1))
    (warning,) = report.warnings
    assert warning.startswith("cache key `sha-0` was restored 12 times") and "12 misses" in warning
    assert "0 % hit rate" in warning
    assert {c.status for c in report.criteria} <= {"pass", "fail", "no_data"}  # a warning is not a criterion


# ---------------------------------------------------------------------------------------------------------------
# Evidence in words
# ---------------------------------------------------------------------------------------------------------------


def test_details_read_as_labelled_words() -> None:
    from cidash.criteria import detail_rows

    ds = migration_story().dataset()
    (s,) = evaluate(ds, Config(), NOW, only=("startup_improvement",)).criteria
    rows = dict(detail_rows(s.details))
    assert rows["Baseline median start-up"] == "60.0 s" and rows["Candidate median start-up"] == "30.0 s"
    assert rows["Change of the median"] == "-50.0 %"
    assert rows["95 % interval of the change"].endswith(" %") and " to " in rows["95 % interval of the change"]
    assert not any("=" in label or "_" in label for label in rows)
    (size,) = evaluate(ds, Config(), NOW, only=("image_size",)).criteria
    assert dict(detail_rows(size.details))["Image digest"] == "sha256:" + "b" * 12


def test_evidence_lists_only_the_runs_the_sentence_counts() -> None:
    from cidash.criteria import REGISTRY, EvalContext, choose_periods
    from metrics_factories import pipeline

    b = migration_story(days_before=0, days_after=3)
    for i in range(5):  # manual builds nobody played: not runs
        b.add_job(b.add_pipeline(pipeline(900 + i, T0 + timedelta(days=2))), "build-ci-image", status="manual")
    ds = b.dataset()
    now = T0 + timedelta(days=3)
    (rel,) = evaluate(ds, Config(), now, only=("image_build_reliability",)).criteria
    ctx = EvalContext(ds.as_of(now), Config(), choose_periods(ds.as_of(now), Config(), now))
    columns, rows = REGISTRY["image_build_reliability"].evidence(ctx)
    status = list(columns).index("status")
    assert rel.n == 3 and "only 3 pipelines ran" in rel.evidence
    assert len(rows) == rel.n and all(row[status] != "manual" for row in rows)


def test_images_last_seen_is_the_last_job_that_ran_the_image() -> None:
    from cidash.metrics import image_last_used

    ds = story_with_a_rebuild(forget_old_sizes=False)
    used = image_last_used(ds)
    assert used[OLD] < T0 + timedelta(days=10) <= used[NEW] < T0 + timedelta(days=15) <= used[REBUILT]


# ---------------------------------------------------------------------------------------------------------------
# --now through the CLI
# ---------------------------------------------------------------------------------------------------------------

from metrics_factories import SyncedWorld, synced_world  # noqa: E402

__all__ = ["synced_world"]


def test_export_and_check_at_now_use_only_what_existed(
    synced_world: SyncedWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from cidash.cli import main

    truth = synced_world.truth
    mid = truth.migration_at - timedelta(days=1)  # type: ignore[attr-defined]
    with Store.open(synced_world.db, readonly=True) as store:
        project = store.project(truth.project_path)  # type: ignore[attr-defined]
        assert project is not None
        every = store.pipelines(project.id)
    existed = sum(p.created_at <= mid for p in every)
    assert 0 < existed < len(every)
    out = tmp_path / "export.json"
    common = ["--db", synced_world.db, "--config", synced_world.config_file, "--format", "json"]
    assert main(["export", *common, "--now", mid.isoformat(), "--since", "all", "--output", str(out)]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["counts"]["pipelines"] == existed
    capsys.readouterr()
    assert main(["check", *common, "--now", mid.isoformat()]) == 1
    check = {c["id"]: c for c in json.loads(capsys.readouterr().out)["criteria"]}
    old_size = truth.image_tags[truth.baseline_image_tag].total_size / MB  # type: ignore[attr-defined]
    assert check["image_size"]["status"] == "fail" and check["image_size"]["value"] == pytest.approx(old_size, abs=0.05)
    compare = ["compare", *common, "--now", mid.isoformat(), "--baseline", "ref:main", "--candidate", "ref:main"]
    assert main(compare) in (0, 1)
    on_main = sum(1 for p in every if p.created_at <= mid and p.ref == "main")
    assert json.loads(capsys.readouterr().out)["candidate"]["pipelines"] == on_main
