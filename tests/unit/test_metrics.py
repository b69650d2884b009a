"""Metric functions on small hand-computed cases."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from cidash.metrics import (
    DEFAULT_KEY,
    JobCacheConfig,
    cache_restore_rates,
    failure_kind,
    image_build_reliability,
    image_digest_changes,
    image_repository_of,
    image_size_history,
    job_outcomes,
    job_startups,
    normalize_digest,
    overlapping_writers,
    pipeline_durations,
    pipeline_queue_times,
    restore_outcome_totals,
    stale_cache_events,
    startup_sample,
    time_to_first_script,
    unserialised_config_writers,
)
from cidash.models import Section
from metrics_factories import NEW, OLD, T0, Builder, archive, checksums, facts, migration_story, pipeline, restore, tag


def test_pipeline_durations_and_queue() -> None:
    b = Builder()
    b.add_pipeline(pipeline(1, T0, duration=100.0, queued=1.0))
    b.add_pipeline(pipeline(2, T0, duration=300.0, queued=3.0))
    b.add_pipeline(pipeline(3, T0, duration=None, queued=None, status="running"))
    b.add_pipeline(pipeline(4, T0, duration=50.0, status="canceled"))
    ds = b.dataset()
    d = pipeline_durations(ds)
    assert d.n == 2 and d.summary().median == 200.0
    q = pipeline_queue_times(ds)
    assert sorted(q.values) == [1.0, 3.0, 5.0]


def test_startups_exclude_retried_and_manual_unless_asked() -> None:
    b = Builder()
    p = b.add_pipeline(pipeline(1, T0))
    phases = {"prepare_executor": 8.0, "prepare_script": 1.0, "get_sources": 2.0, "restore_cache": 3.0}
    b.add_job(p, "test", facts(14.0, phases={**phases, "step_script": 30.0}))
    b.add_job(p, "test", facts(40.0), retried=True)
    b.add_job(p, "deploy", facts(5.0), status="manual")
    b.add_job(p, "lint", facts(None))  # log without a start-up
    ds = b.dataset()
    s = job_startups(ds)
    assert [x.seconds for x in s] == [14.0]
    assert s[0].phases == {"prepare": 9.0, "sources": 2.0, "cache": 3.0}
    assert startup_sample(ds, include_retried=True).n == 2
    assert startup_sample(ds, phase="prepare").values == (9.0,)
    assert startup_sample(ds, phase="artifacts").n == 0


def test_time_to_first_script() -> None:
    b = Builder()
    p = b.add_pipeline(pipeline(1, T0))
    b.add_job(p, "a", facts(20.0), start=30.0)  # first script at +50
    b.add_job(p, "b", facts(5.0), start=40.0)  # first script at +45
    b.add_job(b.add_pipeline(pipeline(2, T0)), "c", None)
    out = time_to_first_script(b.dataset())
    assert [(f.pipeline_id, f.seconds) for f in out] == [(1, 45.0)]


def test_cache_restore_rates_by_key_job_ref() -> None:
    b = Builder()
    p1 = b.add_pipeline(pipeline(1, T0))
    p2 = b.add_pipeline(pipeline(2, T0, ref="feature"))
    b.add_job(p1, "test", facts(cache=[restore("k1", "hit"), archive("k1")]))
    b.add_job(p1, "lint", facts(cache=[restore("k1", "miss"), restore("k0", "hit", "fallback")]))
    b.add_job(p2, "test", facts(cache=[restore("k2", "unknown"), restore("k3", "empty")]))
    ds = b.dataset()
    by_key = {r.group: r for r in cache_restore_rates(ds, "key")}
    # lint's miss on k1 then its hit on the fallback key k0 is ONE restore of k1 that hit via a fallback key
    assert by_key["k1"].n == 2 and by_key["k1"].hit_rate == 100.0 and by_key["k1"].fallback_hits == 1
    assert "k0" not in by_key
    assert by_key["k3"].outcomes == {"unknown": 1}
    assert by_key["k2"].hit_rate is None  # unknown outcomes are never counted as misses
    by_job = {r.group: r for r in cache_restore_rates(ds, "job")}
    assert by_job["lint"].outcomes == {"hit": 1}
    by_ref = {r.group: r.n for r in cache_restore_rates(ds, "ref")}
    assert by_ref == {"main": 2, "feature": 2}
    assert restore_outcome_totals(ds) == {"hit": 2, "unknown": 2}


@pytest.mark.parametrize(
    ("key", "default"),
    [
        ("0-default", True),
        ("0-default-protected", True),
        ("0-default-non_protected", True),
        ("deps-default-2-protected", True),
        ("default", True),
        ("0-3f2a9c-protected", False),
        ("0-defaults", False),
        ("mydefault-protected", False),
    ],
)
def test_default_key_pattern(key: str, default: bool) -> None:
    assert bool(DEFAULT_KEY.search(key)) is default


def test_stale_cache_events_both_kinds() -> None:
    b = Builder()
    p1 = b.add_pipeline(pipeline(1, T0))
    p2 = b.add_pipeline(pipeline(2, T0 + timedelta(hours=1)))
    p3 = b.add_pipeline(pipeline(3, T0 + timedelta(hours=2)))
    p4 = b.add_pipeline(pipeline(4, T0 + timedelta(hours=3), ref="other"))
    b.add_checksums(checksums(p1.sha, {"go.sum": "x1", "go.mod": "m"}))
    b.add_checksums(checksums(p2.sha, {"go.sum": "x2", "go.mod": "m"}))  # go.sum changed, key did not
    b.add_checksums(checksums(p3.sha, {"go.sum": "x3", "go.mod": "m"}))  # changed, key changed too
    b.add_checksums(checksums(p4.sha, {"go.sum": "x9", "go.mod": "m"}))
    b.add_job(p1, "test", facts(cache=[restore("0-aaa-protected")]))
    b.add_job(p2, "test", facts(cache=[restore("0-aaa-protected")]))
    b.add_job(p3, "test", facts(cache=[restore("0-bbb-protected"), restore("0-aaa-protected", "hit", "fallback")]))
    b.add_job(p4, "test", facts(cache=[restore("0-default-non_protected")]))
    events = stale_cache_events(b.dataset(), ["go.sum", "go.mod"])
    assert [(e.kind, e.pipeline_id, e.key) for e in events] == [
        ("unchanged_key", 2, "0-aaa-protected"),
        ("default_key", 4, "0-default-non_protected"),
    ]
    assert events[0].previous_pipeline_id == 1 and events[0].changed_files == ("go.sum",)
    # Only go.mod is critical: go.sum changes do not make the key stale.
    assert [e.kind for e in stale_cache_events(b.dataset(), ["go.mod"])] == ["default_key"]


def test_overlapping_writers() -> None:
    b = Builder()
    p1 = b.add_pipeline(pipeline(1, T0))
    p2 = b.add_pipeline(pipeline(2, T0 + timedelta(seconds=30)))
    b.add_job(p1, "test", facts(cache=[archive("k")]), start=0.0, duration=100.0)  # 0..100
    b.add_job(p2, "test", facts(cache=[archive("k")]), start=40.0, duration=100.0)  # 70..170
    b.add_job(p2, "lint", facts(cache=[archive("k", "up_to_date")]), start=0.0, duration=100.0)  # not a writer
    b.add_job(p2, "other", facts(cache=[archive("j")]), start=0.0, duration=100.0)
    out = overlapping_writers(b.dataset())
    assert len(out) == 1 and out[0].key == "k" and out[0].overlap_seconds == 30.0


def test_overlap_uses_the_archive_sections_when_the_log_has_them() -> None:
    b = Builder()
    p1 = b.add_pipeline(pipeline(1, T0))
    # Both jobs run 0..100 s, but their uploads (archive_cache sections) do not overlap.
    for i, (start, secs) in enumerate(((1_000.0, 5.0), (1_010.0, 5.0))):
        f = facts(cache=[archive("k")])
        section = Section("archive_cache", start, start + secs, secs)
        b.add_job(p1, f"w{i}", replace(f, sections=(section,)), start=0.0, duration=100.0)
    assert overlapping_writers(b.dataset()) == []
    b.facts[b.jobs[1].id] = replace(b.facts[b.jobs[1].id], sections=(Section("archive_cache", 1_003.0, 1_009.0, 6.0),))
    (o,) = overlapping_writers(b.dataset())
    assert o.overlap_seconds == 2.0 and (o.first_job_id, o.second_job_id) == (b.jobs[0].id, b.jobs[1].id)


def test_unserialised_config_writers() -> None:
    caches = [
        JobCacheConfig("a", 0, "deps", 0, "pull-push", None),
        JobCacheConfig("b", 0, "deps", 0, "push", None),
        JobCacheConfig("c", 0, "deps", 0, "pull", None),
        JobCacheConfig("x", 0, "tools", 0, "pull-push", "rg"),
        JobCacheConfig("y", 0, "tools", 0, "pull-push", "rg"),
        JobCacheConfig("z", 0, "alone", 0, "pull-push", None),
    ]
    out = unserialised_config_writers(caches)
    assert [(u.key, u.jobs) for u in out] == [("deps", ("a", "b"))]


def test_image_build_reliability() -> None:
    b = Builder()
    ps = [b.add_pipeline(pipeline(i, T0 + timedelta(hours=i))) for i in range(1, 6)]
    b.add_job(ps[0], "build-ci-image")
    b.add_job(ps[1], "build-ci-image", status="failed", failure_reason="script_failure", retried=True)
    b.add_job(ps[1], "build-ci-image", created=5.0)
    b.add_job(ps[2], "build-ci-image", status="failed", failure_reason="runner_system_failure")
    b.add_job(ps[3], "build-ci-image", status="manual")
    b.add_job(ps[4], "build-ci-image", status="failed", failure_reason="unknown_failure")
    r = image_build_reliability(b.dataset(), "build-ci-image")
    assert (r.n, r.first_attempt_successes, r.eventual_successes, r.attempts) == (4, 1, 2, 5)
    assert (r.failures_script, r.failures_infrastructure, r.failures_other) == (1, 1, 1)
    assert r.first_attempt_rate == 25.0 and r.eventual_rate == 50.0
    assert failure_kind(None) == "other"


def test_image_history_and_digest_changes() -> None:
    b = Builder()
    b.tags.extend([tag("debian", OLD, 807_000_000, T0), tag("alpine", NEW, 215_000_000, T0 + timedelta(days=1))])
    b.tags.append(tag("multiarch", NEW, 0, T0))
    for i, digest in enumerate([OLD, OLD, NEW, NEW]):
        p = b.add_pipeline(pipeline(10 + i, T0 + timedelta(hours=i)))
        b.add_job(p, "test", facts(digest=digest))
        b.add_job(p, "docker", facts(digest="sha256:" + str(i) * 64, image="docker"))
    ds = b.dataset()
    assert [(p.tag, p.size_bytes) for p in image_size_history(ds)] == [("debian", 807_000_000), ("alpine", 215_000_000)]
    changes = image_digest_changes(ds)
    assert [(c.old, c.new, c.pipeline_id) for c in changes] == [(OLD, NEW, 12)]
    assert image_digest_changes(ds, "docker")[0].pipeline_id == 11
    assert normalize_digest("x/y@sha256:ab") == "sha256:ab" and normalize_digest("latest") is None


def test_job_outcomes() -> None:
    b = Builder()
    p = b.add_pipeline(pipeline(1, T0))
    b.add_job(p, "verify-ci-image", status="success")
    b.add_job(p, "verify-ci-image", status="failed", start=100.0)
    o = job_outcomes(b.dataset(), "verify-ci-image")
    assert (o.n, o.successes, o.latest_status, o.success_rate) == (2, 1, "failed", 50.0)
    assert job_outcomes(b.dataset(), "nope").n == 0


@pytest.mark.parametrize(
    ("name", "repo"),
    [
        ("registry.example.com/platform/app/ci:latest", "registry.example.com/platform/app/ci"),
        ("registry.example.com:5000/platform/app/ci", "registry.example.com:5000/platform/app/ci"),
        ("registry.example.com:5000/platform/app/ci:1.2@sha256:ab", "registry.example.com:5000/platform/app/ci"),
        ("alpine:3.20", "alpine"),
    ],
)
def test_image_repository_of(name: str, repo: str) -> None:
    assert image_repository_of(name) == repo


def test_ci_image_follows_a_renamed_repository() -> None:
    b = Builder()
    for i, (image, digest) in enumerate(
        [("registry.example.com/platform/app/ci", OLD)] * 2 + [("registry.example.com/platform/app/ci-alpine", NEW)]
    ):
        p = b.add_pipeline(pipeline(10 + i, T0 + timedelta(hours=i)))
        b.add_job(p, "test", facts(digest=digest, image=image))
        b.add_job(p, "docker", facts(digest="sha256:" + "9" * 64, image="docker"))
        b.add_job(p, "docker2", facts(digest="sha256:" + "9" * 64, image="docker"))
    ds = b.dataset()
    assert [(c.old, c.new) for c in image_digest_changes(ds, "platform/app/ci")] == [(OLD, NEW)]
    assert image_digest_changes(ds) == []  # by popularity the docker image wins, and it never changed
    assert image_digest_changes(ds, "no/such/repo") == []  # falls back to the most used image


def test_the_loaders_job_constructor_makes_the_job_the_dataclass_makes() -> None:
    """dataset._job sets a Job's slots directly (the frozen dataclass's __init__ is the load's slowest step): the
    job equals, hashes and prints as Job(...) made from the same stored row, None times included."""
    from datetime import UTC, datetime

    from cidash.dataset import _job
    from cidash.metrics import JobStartup, fast_constructor
    from cidash.models import Job

    row = (
        42, 7, 3, "test 1/2", "test", "failed", "main", "ab" * 20, "2026-11-01T10:00:00.000000Z",
        "2026-11-01T10:00:05.250000Z", None, 12.5, 1.25, "script_failure", 1, 0, "runner-1", "https://x/7",
    )  # fmt: skip
    made = _job(row, {}.setdefault)
    t = datetime(2026, 11, 1, 10, tzinfo=UTC)
    expected = Job(
        42, 7, 3, "test 1/2", "test", "failed", "main", "ab" * 20, t, t + timedelta(seconds=5.25), None, 12.5,
        1.25, "script_failure", True, False, "runner-1", "https://x/7",
    )  # fmt: skip
    assert made == expected and hash(made) == hash(expected) and repr(made) == repr(expected)
    assert type(made) is Job
    with pytest.raises(AttributeError):
        made.id = 8  # type: ignore[misc]  # still frozen
    assert fast_constructor(Section)("x", 1.0, None, None) == Section("x", 1.0, None, None)
    startup = (7, 3, "test", "main", t, 12.5, {"prepare": 2.0}, None)
    assert fast_constructor(JobStartup)(*startup) == JobStartup(*startup)


def test_a_dataset_shows_its_counts_not_its_contents() -> None:
    """A Dataset's repr (in a Periods repr, a traceback's locals) names the project and counts; it used to print
    every pipeline, job and log fact, GitLab's strings included."""
    ds = migration_story().dataset()
    text = repr(ds)
    assert text == f"Dataset('{ds.project_path}', {len(ds.pipelines)} pipelines, {len(ds.jobs)} jobs)"
    assert len(ds.jobs) > 10 and "Pipeline(" not in text
