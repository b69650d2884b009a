"""cidash.dataset: the spans read for their start-up values only (StartupRecord, computed in SQL as of a time)
give the start-ups the jobs themselves give (issue 15's second path, held equal to the first)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from cidash.dataset import load_dataset
from cidash.metrics import job_startups, startup_seconds
from cidash.models import Job
from cidash.store import Store
from metrics_factories import PROJECT, T0, facts, job, pipeline


def _store(path: Path) -> Store:
    """Two days of pipelines on two refs with the cases the SQL must get right: retried attempts whose next one
    came later, jobs that ended later, jobs that never ran, logs without a start-up, a pipeline created late."""
    store = Store.open(path)
    store.upsert_project(PROJECT)
    pipelines, jobs, logs = [], [], []
    jid = 5000
    for i in range(24):
        p = pipeline(300 + i, T0 + timedelta(hours=2 * i), ref="main" if i % 3 else "feature")
        pipelines.append(p)
        for k, (name, status, retried, startup, created) in enumerate(
            [
                ("test", "success", False, 20.0 + i, 0.0),
                ("lint", "failed", True, 11.0 + i, 0.0),  # retried: the next attempt comes 3 hours later
                ("lint", "success", False, 9.5 + i, 3 * 3600.0),
                ("build-ci-image", "success", False, 40.0, 0.0),
                ("deploy", "manual", False, 5.0, 0.0),  # never ran
                ("docs", "success", False, None, 0.0),  # no start-up in its log
                ("slow", "success", False, 30.0, 0.0),  # ends 5 hours after it started
            ]
        ):
            jid += 1
            j = job(jid, p, name, status=status, retried=retried, created=created, start=created + 10.0 + k)
            if name == "slow":
                j = replace(j, finished_at=j.started_at + timedelta(hours=5) if j.started_at else None)
            if name == "deploy":
                j = replace(j, started_at=None, finished_at=None)
            jobs.append(j)
            logs.append((jid, facts(startup), None))
    store.upsert_pipelines(pipelines)
    store.upsert_jobs(jobs)
    store.save_many_job_facts(logs, project_id=PROJECT.id)
    return store


def _seconds(ds: object, include_retried: bool, excluded: tuple[str, ...]) -> list[float]:
    return startup_seconds(ds, include_retried=include_retried, exclude_jobs=excluded)  # type: ignore[arg-type]


@pytest.mark.parametrize("include_retried", [False, True])
@pytest.mark.parametrize("ref", [None, "main"])
def test_start_up_records_give_the_jobs_start_ups(tmp_path: Path, include_retried: bool, ref: str | None) -> None:
    lo, hi = T0 + timedelta(hours=3), T0 + timedelta(hours=31)
    with _store(tmp_path / "s.db") as store:
        for hours in (0, 5, 12, 20, 26, 30, 31, 36, 60):
            now = T0 + timedelta(hours=hours, minutes=7)
            whole = load_dataset(store, PROJECT, as_of=now).between(lo, hi).on_ref(ref)
            window = load_dataset(
                store,
                PROJECT,
                as_of=now,
                spans=[(hi + timedelta(hours=1), None)],
                startup_only=[(lo, hi)],
                startup_ref=ref,
            )
            assert window.startup_records or not whole.jobs
            assert not window.jobs or all(j.created_at >= hi for j in window.jobs)
            part = window.between(lo, hi)
            for excluded in ((), ("build-ci-image",), ("lint", "test")):
                expected = [
                    s.seconds for s in job_startups(whole, include_retried=include_retried, exclude_jobs=excluded)
                ]
                assert _seconds(part, include_retried, excluded) == expected, (hours, excluded)
            retried = [r for r in window.startup_records if r.retried]
            if hours >= 12:
                assert retried  # their next attempt was created by then
            elif hours == 5:  # the pipeline of 04:00's failed lint was retried at 07:00, after now: not yet retried
                assert not retried and any(r.name == "lint" for r in window.startup_records)


def test_records_refuse_what_they_cannot_answer(tmp_path: Path) -> None:
    """A dataset with records gives start-up values only: job_startups (phases, digests) and an earlier as_of
    would need its jobs, and say so rather than answer without them."""
    lo, hi = T0, T0 + timedelta(hours=20)
    now = T0 + timedelta(days=3)
    with _store(tmp_path / "s.db") as store:
        window = load_dataset(store, PROJECT, as_of=now, spans=[(hi, None)], startup_only=[(lo, hi)])
    assert window.startup_records
    with pytest.raises(RuntimeError, match="start-up values only"):
        job_startups(window)
    with pytest.raises(ValueError, match="load the dataset again"):
        window.as_of(now - timedelta(days=1))
    assert window.as_of(now + timedelta(days=1)) is window
    assert job_startups(window.between(hi, None))  # a slice without the records' pipelines is a dataset of jobs
    assert isinstance(window.jobs[0], Job)


#: Start-up sections in shapes whose sums depend on the order they are added in, with unclosed ones and others.
_SECTION_SHAPES: tuple[tuple[tuple[str, float | None], ...], ...] = (
    (("resolve_secrets", 0.1), ("prepare_executor", 0.2), ("prepare_script", 0.30000000000000004)),
    (("prepare_executor", 3.0), ("get_sources", None), ("clear_worktree", 0.7), ("restore_cache", 1e-9)),
    (("restore_cache", 2.5), ("restore_cache", 0.1), ("step_script", 4.0), ("archive_cache", 1.0)),
    (("download_artifacts", 1.5),),
    (("step_script", 9.0),),
    (),
)


def _phase_store(path: Path) -> tuple[Store, list[int]]:
    from cidash.models import Section, TraceFacts

    store = Store.open(path)
    store.upsert_project(PROJECT)
    pipelines, jobs, logs = [], [], []
    for i in range(12):
        p = pipeline(400 + i, T0 + timedelta(hours=i))
        pipelines.append(p)
        for k, shape in enumerate(_SECTION_SHAPES):
            jid = 8000 + 10 * i + k
            jobs.append(job(jid, p, f"job-{k}", start=10.0 + k))
            t = 100.0
            sections = []
            for name, secs in shape:
                sections.append(Section(name, t, None if secs is None else t + secs, secs))
                t += secs or 1.0
            logs.append((jid, TraceFacts("19.1.0", "docker", False, tuple(sections), 20.0, None, ()), None))
    store.upsert_pipelines(pipelines)
    store.upsert_jobs(jobs)
    store.save_many_job_facts(logs, project_id=PROJECT.id)
    return store, [j.id for j in jobs]


@pytest.mark.parametrize("unsummed", [False, True])
def test_a_windows_start_up_phases_are_the_ones_its_sections_give(tmp_path: Path, unsummed: bool) -> None:
    """A window reads each log's start-up phases from the sums the store keeps (schema version 9), or from the
    sections for a log it has not summed: equal, float for float, to :func:`cidash.metrics.startup_phases` of the
    sections the whole-history load reads."""
    from cidash.metrics import startup_phases

    store, ids = _phase_store(tmp_path / "s.db")
    with store:
        if unsummed:  # as if written before the sums: the loader sums those logs' sections itself
            store.connection.execute("UPDATE job_facts SET phases_summed = NULL WHERE job_id % 3 = 0")
        whole = load_dataset(store, PROJECT)
        window = load_dataset(store, PROJECT, spans=[(T0, None)])
    assert window.phases_by_job is not None and whole.phases_by_job is None
    expected = {j: startup_phases(whole.facts[j]) for j in ids}
    got = {j: dict(window.phases_by_job.get(j) or {}) for j in ids}
    assert got == expected
    assert {j: list(p) for j, p in got.items()} == {j: list(p) for j, p in expected.items()}  # the phases' order
    assert any(len(p) > 1 for p in expected.values()) and any(not p for p in expected.values())
    assert not any(f.sections for f in window.facts.values())  # no start-up section, no upload (none uploaded)


def test_a_windows_jobs_share_one_tuple_per_distinct_cache_events(tmp_path: Path) -> None:
    """The loader gives the jobs whose logs said the same cache events one shared tuple (the cache metrics
    compute each tuple's part once), equal to each job's events as stored."""
    from cidash.models import CacheEvent

    store = Store.open(tmp_path / "c.db")
    with store:
        store.upsert_project(PROJECT)
        p = pipeline(500, T0)
        jobs = [job(9000 + k, p, f"j{k}") for k in range(6)]
        events = [
            (CacheEvent("restore", "k-1", "hit"),),
            (CacheEvent("restore", "k-1", "hit"), CacheEvent("archive", "k-1", "created")),
        ]
        store.upsert_pipelines([p])
        store.upsert_jobs(jobs)
        store.save_many_job_facts(
            [(j.id, facts(10.0, cache=events[k % 2]), None) for k, j in enumerate(jobs)], project_id=PROJECT.id
        )
        window = load_dataset(store, PROJECT, spans=[(T0, None)])
        whole = load_dataset(store, PROJECT)
    got = [window.facts[j.id].cache for j in jobs]
    assert got == [whole.facts[j.id].cache for j in jobs] == [events[k % 2] for k in range(6)]
    assert len({id(c) for c in got}) == 2


def test_a_window_reads_the_upload_sections_of_the_cache_writers_only(tmp_path: Path) -> None:
    """A window keeps the cache-upload sections of the jobs that uploaded a cache (created or failed), which the
    writers' windows read, and no other job's: the same overlapping writers as the whole history."""
    from dataclasses import replace as changed

    from cidash.metrics import cache_writers, overlapping_writers
    from cidash.models import CacheEvent, Section

    store = Store.open(tmp_path / "w.db")
    outcomes = ["created", "up_to_date", "failed", "created", "skipped", "created"]
    with store:
        store.upsert_project(PROJECT)
        p = pipeline(600, T0)
        jobs = [job(9100 + k, p, f"w{k}", start=10.0 * k) for k in range(len(outcomes))]
        store.upsert_pipelines([p])
        store.upsert_jobs(jobs)
        logs = []
        for k, (j, outcome) in enumerate(zip(jobs, outcomes, strict=True)):
            f = facts(10.0, cache=(CacheEvent("restore", "k", "hit"), CacheEvent("archive", "k", outcome)))  # type: ignore[arg-type]
            upload = Section("archive_cache", 100.0 + 15 * k, 130.0 + 15 * k, 30.0)
            logs.append((j.id, changed(f, sections=(Section("step_script", 0.0, 1.0, 1.0), upload)), None))
        store.save_many_job_facts(logs, project_id=PROJECT.id)
        window = load_dataset(store, PROJECT, spans=[(T0, None)])
        whole = load_dataset(store, PROJECT)
    uploaded = {j.id for j, o in zip(jobs, outcomes, strict=True) if o in ("created", "failed")}
    assert {j for j, f in window.facts.items() if f.sections} == uploaded
    assert {j.id for js in cache_writers(window).values() for j in js} == uploaded
    assert overlapping_writers(window) == overlapping_writers(whole) != []


def test_what_a_pause_leaves_alive_goes_to_the_oldest_generation_and_stays_collectable() -> None:
    """gc_paused hands what was allocated during the pause to the collector's oldest generation (the first
    collections after a load no longer walk it), frozen nowhere: a reference cycle made then is still freed by
    a full collection."""
    import gc
    import weakref

    from cidash.dataset import gc_paused

    class Node:
        me: object = None

    assert gc.isenabled()
    with gc_paused():
        kept = [Node() for _ in range(3)]
        cycle = Node()
        cycle.me = cycle
        gone = weakref.ref(cycle)
        del cycle
    assert gc.get_freeze_count() == 0
    young = {id(o) for o in gc.get_objects(generation=0)} | {id(o) for o in gc.get_objects(generation=1)}
    assert not any(id(k) in young for k in kept)
    assert any(o is kept[0] for o in gc.get_objects(generation=2))
    assert gone() is not None  # a cycle waits for a collection
    gc.collect()
    assert gone() is None
