"""cidash.dataset: a window's jobs read with their cache events in their own row (one JSON text per job,
``job_facts.cache_events``, :mod:`cidash.store.eventstext`) and their pipelines by the slot-setting constructor
give what the whole-history load gives (the store's own readers), on SQLite and on PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from cidash.dataset import load_dataset
from cidash.metrics import ARCHIVE_SECTIONS
from cidash.models import CacheEvent, Section
from cidash.store import Store
from metrics_factories import PROJECT, T0, facts, job, pipeline

#: Keys and details a log may give, with the characters a JSON text or a separator could get wrong.
_ODD_KEYS = (
    "0_package_yarn-3f2a9c-protected",
    'quote"and\\backslash',
    "tab\tnew\nline\x1funit\x1erecord",
    "[]",
    '[["restore","k","hit",null]]',
    "ünïcødé-キー-🔑",
    "",
    "null",
)

_EVENT_SETS: tuple[tuple[CacheEvent, ...], ...] = (
    (),
    (CacheEvent("restore", _ODD_KEYS[0], "hit"),),
    (CacheEvent("restore", _ODD_KEYS[0], "hit"), CacheEvent("archive", _ODD_KEYS[0], "created")),
    (
        CacheEvent("restore", _ODD_KEYS[1], "miss"),
        CacheEvent("restore", _ODD_KEYS[2], "hit", "fallback"),
        CacheEvent("archive", _ODD_KEYS[1], "failed", "too big"),
    ),
    (CacheEvent("restore", _ODD_KEYS[3], "unknown", ""), CacheEvent("archive", _ODD_KEYS[4], "up_to_date")),
    (CacheEvent("restore", _ODD_KEYS[5], "skipped", "empty key"), CacheEvent("restore", _ODD_KEYS[6], "empty")),
    (CacheEvent("archive", _ODD_KEYS[7], "created", None), CacheEvent("archive", _ODD_KEYS[7], "skipped")),
)


def _fill(store: Store) -> list[int]:
    """Pipelines on two refs whose jobs' logs give every event set above (shared by several jobs), with
    upload and other sections, a job without a parsed log and one whose log gave no image."""
    store.upsert_project(PROJECT)
    pipelines, jobs, logs = [], [], []
    jid = 7000
    for i in range(6):
        p = pipeline(700 + i, T0 + timedelta(hours=i), ref="main" if i % 2 else "feature/ü")
        pipelines.append(p)
        for k, events in enumerate(_EVENT_SETS):
            jid += 1
            jobs.append(job(jid, p, f"job-{k}", start=5.0 + k, failure_reason=None if k % 3 else "script_failure"))
            if (i + k) % 5 == 4:
                continue  # no parsed log
            f = facts(10.0 + k + i / 8, digest="sha256:" + "ab"[k % 2] * 64 if k % 4 else None, cache=events)
            sections = (
                Section("prepare_executor", 1.0, 2.5, 1.5),
                Section("archive_cache", 100.0 + k, 110.0 + k + i, 10.0 + i),
                Section("archive_cache_on_failure", 90.0 + k, None, None),
                Section("step_script", 3.0, 50.0, 47.0),
            )
            logs.append((jid, replace(f, sections=sections if k % 2 else sections[:1]), None))
    store.upsert_pipelines(pipelines)
    store.upsert_jobs(jobs)
    store.save_many_job_facts(logs, project_id=PROJECT.id)
    return [j.id for j in jobs]


def _uploaded(events: tuple[CacheEvent, ...]) -> bool:
    return any(e.op == "archive" and e.outcome in ("created", "failed") for e in events)


@pytest.mark.parametrize("narrow", [False, True])
@pytest.mark.parametrize("uploads", [True, False])
def test_a_windows_rows_are_the_whole_historys(store_target: str, narrow: bool, uploads: bool) -> None:
    with Store.open(store_target) as store:
        ids = _fill(store)
        whole = load_dataset(store, PROJECT)
        window = load_dataset(store, PROJECT, spans=[(T0, None)], narrow=narrow, uploads=uploads)
        chunked = load_dataset(
            store,
            PROJECT,
            spans=[(T0, T0 + timedelta(hours=2, minutes=1)), (T0 + timedelta(hours=2, minutes=30), None)],
            narrow=narrow,
            uploads=uploads,
        )
    assert window.pipelines == whole.pipelines
    assert [p.id for p in chunked.pipelines] == [p.id for p in whole.pipelines]
    if not narrow:
        assert window.jobs == whole.jobs
    assert [j.id for j in window.jobs] == [j.id for j in whole.jobs] == sorted(ids)
    assert set(window.facts) == set(whole.facts) == set(chunked.facts)
    assert len(whole.facts) < len(ids)  # some jobs have no parsed log
    shared: dict[tuple[CacheEvent, ...], int] = {}
    for job_id, expected in whole.facts.items():
        for got in (window.facts[job_id], chunked.facts[job_id]):
            assert got.cache == expected.cache
            assert got.startup_seconds == expected.startup_seconds
            uploads_kept = tuple(s for s in expected.sections if s.name in ARCHIVE_SECTIONS)
            assert got.sections == (uploads_kept if uploads and _uploaded(expected.cache) else ())
            if narrow:
                assert (got.image is None) == (expected.image is None)
                if got.image is not None and expected.image is not None:
                    assert (got.image.name, got.image.digest) == (expected.image.name, expected.image.digest)
            else:
                assert replace(got, sections=expected.sections) == expected
        cache = window.facts[job_id].cache
        if cache:  # the jobs that said the same events share one tuple
            assert shared.setdefault(cache, id(cache)) == id(cache)
    assert len(shared) == len([e for e in _EVENT_SETS if e])
    assert any(f.sections for f in window.facts.values()) == uploads


def test_the_image_pairs_are_the_distinct_pairs_of_the_logs(store_target: str) -> None:
    """Store.image_names_and_digests (a skip scan of the job_facts_image_runs index) gives the distinct
    (name, digest) pairs the project's logs named with both set, as SELECT DISTINCT does: names with
    several digests, names without any, logs without an image, and another project's logs left out."""
    from cidash.models import ImageRef, Project

    other = Project(PROJECT.id + 1, "other/project", "https://gitlab.example.com/other/project", "main")
    with Store.open(store_target) as store:
        store.upsert_project(PROJECT)
        store.upsert_project(other)
        made = [
            ("registry.example.com/platform/app/ci:alpine", "sha256:" + "b" * 64),
            ("registry.example.com/platform/app/ci:alpine", "sha256:" + "a" * 64),
            ("registry.example.com/platform/app/ci:alpine", "sha256:" + "b" * 64),
            ("registry.example.com/platform/app/ci:debian", None),
            ("alpine:3.20", "alpine@sha256:" + "c" * 64),
            ("", "sha256:" + "d" * 64),
            (None, None),
            ("Ünïcode/ci:1", "sha256:" + "e" * 64),
        ]
        for project, offset in ((PROJECT, 0), (other, 100)):
            p = replace(pipeline(900 + offset, T0), project_id=project.id)
            jobs = [replace(job(9900 + offset + k, p, f"j{k}"), project_id=project.id) for k in range(len(made))]
            store.upsert_pipelines([p])
            store.upsert_jobs(jobs)
            logs = []
            for j, (name, digest) in zip(jobs, made, strict=True):
                image = None if name is None else ImageRef(name, None, digest, None)
                if project is other and name:
                    image = ImageRef(name + "-other", None, digest, None)
                logs.append((j.id, replace(facts(5.0), image=image), None))
            store.save_many_job_facts(logs, project_id=project.id)
        got = store.image_names_and_digests(PROJECT.id)
        expected = sorted(
            (name, digest)
            for name, digest in store.read(
                "SELECT DISTINCT image_name, image_digest FROM job_facts WHERE project_id = ? "
                "AND image_name IS NOT NULL AND image_digest IS NOT NULL",
                [PROJECT.id],
            )
        )
    assert sorted(got) == expected
    assert len(got) == 5 and not any(name.endswith("-other") for name, _ in got)
