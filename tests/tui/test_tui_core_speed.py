"""The fast paths behind the dashboard's cold start give the same answers as the straightforward ones."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cidash.config import Config
from cidash.criteria import choose_periods, criterion_daily_series, evaluate
from cidash.metrics import Dataset, job_startups
from cidash.models import CacheEvent, ImageRef, Job, Pipeline, Project, Section, TraceFacts
from cidash.store import Store
from metrics_factories import migration_story

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@given(
    st.lists(st.integers(min_value=-48, max_value=24 * 12), max_size=40),
    st.lists(st.integers(min_value=-2, max_value=14), min_size=1, max_size=8, unique=True),
)
@settings(max_examples=60, deadline=None)
def test_split_equals_between_per_bucket(hours: list[int], day_bounds: list[int]) -> None:
    pipelines = tuple(
        Pipeline(1, 1000 + i, i, "main", f"{i:040x}", "success", "push", T0 + timedelta(hours=h), None, None, None)
        for i, h in enumerate(hours)
    )
    jobs = tuple(
        Job(1, 5000 + 3 * i + k, p.id, f"job{k}", "test", "success", "main", p.sha, p.created_at)
        for i, p in enumerate(pipelines)
        for k in range(3)
    )
    ds = Dataset(None, pipelines, tuple(reversed(jobs)))
    bounds = [T0 + timedelta(days=d) for d in sorted(day_bounds)]
    parts = ds.split(bounds)
    assert len(parts) == len(bounds) - 1
    for part, start, end in zip(parts, bounds, bounds[1:], strict=False):
        want = ds.between(start, end)
        assert part.pipelines == want.pipelines and part.jobs == want.jobs


def test_cached_startups_match_a_fresh_dataset_and_replace_drops_them() -> None:
    ds = migration_story().dataset()
    first = job_startups(ds)
    assert first and job_startups(ds.between(None, None)) == first  # slices share the cache
    fresh = Dataset(ds.project, ds.pipelines, ds.jobs, dict(ds.facts), ds.image_tags, ds.checksums, ds.ci_caches)
    assert job_startups(fresh) == first
    # a dataset with other facts (dataclasses.replace) must not reuse the cached start-ups
    from dataclasses import replace

    halved = {
        k: replace(v, startup_seconds=v.startup_seconds / 2 if v.startup_seconds is not None else None)
        for k, v in ds.facts.items()
    }
    other = replace(ds, facts=halved)
    assert [s.seconds for s in job_startups(other)] == [s.seconds / 2 for s in first]


def test_daily_series_and_evaluate_unchanged_by_the_precomputed_periods() -> None:
    ds = migration_story().dataset()
    config = Config()
    now = T0 + timedelta(days=25)
    periods = choose_periods(ds, config, now)
    assert evaluate(ds, config, now, periods=periods) == evaluate(ds, config, now)
    series = criterion_daily_series(ds, config, "startup_improvement", days=30, now=now)
    for point in series:
        start = datetime(point.day.year, point.day.month, point.day.day, tzinfo=UTC)
        day = ds.on_ref("main").between(start, start + timedelta(days=1))
        values = sorted(s.seconds for s in job_startups(day) if s.name != config.image.build_job)
        assert point.n == len(values)


def _facts(rng: random.Random, job_id: int) -> TraceFacts:
    sections = tuple(
        Section(f"s{k}", float(job_id + k), float(job_id + k + 1) if rng.random() < 0.8 else None, 1.0)
        for k in range(rng.randrange(0, 5))
    )
    cache = tuple(CacheEvent("restore", f"key-{job_id % 3}", "hit") for _ in range(rng.randrange(0, 3)))
    image = ImageRef("img:1", None, "img@sha256:" + "a" * 64, rng.random() < 0.5) if rng.random() < 0.7 else None
    return TraceFacts("19.1.0", "docker", rng.random() < 0.1, sections, rng.uniform(1, 30), image, cache)


def test_job_facts_range_scan_equals_in_lists(tmp_path: Path) -> None:
    """Many close ids are read with a range scan (and filtered), few or sparse ones with IN lists: same facts."""
    rng = random.Random(7)
    with Store.open(tmp_path / "s.db") as store:
        store.upsert_project(Project(1, "g/p", "https://x/g/p", "main"))
        store.upsert_project(Project(2, "g/q", "https://x/g/q", "main"))
        saved: dict[int, TraceFacts] = {}
        with store.transaction():
            for jid in range(1, 3001):
                if rng.random() < 0.1:
                    continue  # a job without parsed facts
                f = _facts(rng, jid)
                store.save_job_facts(jid, f, project_id=1 + (jid % 5 == 0), log_bytes=10, parsed_at=T0)
                saved[jid] = f
        wanted = [j for j in range(1, 3001) if j % 5 != 0]  # project 1's jobs: dense, with other jobs between
        dense = store.job_facts(wanted)
        assert dense == {j: saved[j] for j in wanted if j in saved}
        few = store.job_facts(wanted[:300:7])  # IN lists
        assert few == {j: saved[j] for j in wanted[:300:7] if j in saved}
        stored = store.stored_job_facts(wanted)
        assert {k: v.facts for k, v in stored.items()} == dense
        assert all(v.project_id == 1 and v.log_bytes == 10 for v in stored.values())
        assert store.job_facts([]) == {}
