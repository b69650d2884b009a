"""cidash.dataset's narrow rows (``export`` in JSON/CSV/Markdown, ``compare``), SQLite and PostgreSQL: each job's
CI image read as the number of its ``(name, digest)`` pair in a ``CASE`` over the project's pairs (or, with more
than ``_MAX_IMAGE_CODES`` pairs, as its two strings; or, for a pair the codes lack, by job id afterwards) is the
image the whole-history load reads, on random histories; ``Store.read_batches`` gives what ``Store.read`` gives."""

from __future__ import annotations

import itertools
import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cidash import dataset
from cidash.dataset import load_dataset
from cidash.models import ImageRef, Project
from cidash.store import Store
from metrics_factories import IMAGE, T0, facts, job, pipeline

#: Five names and five raw digests: up to 25 pairs, more than ``_MAX_IMAGE_CODES`` (16) in some histories.
NAMES = [f"{IMAGE}:debian", f"{IMAGE}:alpine", "docker:27.3", "ruby:3.3", "node:22"]
DIGESTS = [f"{IMAGE}@sha256:{c * 64}" for c in "abc"] + ["sha256:" + "d" * 64, "not-a-digest"]

#: One job's log: None = no log; else (name index or None = no image, digest index or None = no digest).
LOGS = st.lists(
    st.one_of(
        st.none(),
        st.tuples(st.one_of(st.none(), st.integers(0, 4)), st.one_of(st.none(), st.integers(0, 4), st.integers(0, 4))),
    ),
    min_size=1,
    max_size=60,
)
_projects = itertools.count(500)


def _store_logs(store: Store, logs: list[Any]) -> Project:
    pid = next(_projects)
    project = Project(pid, f"g/p{pid}", f"https://gitlab.example.com/g/p{pid}", "main")
    store.upsert_project(project)
    pipelines = [
        replace(pipeline(pid * 1000 + i, T0 + timedelta(minutes=20 * i), ref="main" if i % 2 else "b"), project_id=pid)
        for i in range(4)
    ]
    store.upsert_pipelines(pipelines)
    jobs, rows = [], []
    for i, log in enumerate(logs):
        j = replace(job(pid * 1000 + i, pipelines[i % 4], f"job {i % 3}", start=30.0 * i), project_id=pid)
        jobs.append(j)
        if log is not None:
            name, digest = log
            image = (
                None if name is None else ImageRef(NAMES[name], None, None if digest is None else DIGESTS[digest], None)
            )
            rows.append((j.id, replace(facts(10.0 + i), image=image), None))
    store.upsert_jobs(jobs)
    store.save_many_job_facts(rows, project_id=pid)
    return project


def _images(ds: Any) -> dict[int, tuple[str, str | None] | str | None]:
    """Each job's image as ``(name, digest)``; None without one; "no log" without facts."""
    out: dict[int, tuple[str, str | None] | str | None] = {}
    for j in ds.jobs:
        f = ds.facts.get(j.id)
        out[j.id] = "no log" if f is None else None if f.image is None else (f.image.name, f.image.digest)
    return out


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(logs=LOGS, hidden=st.lists(st.integers(0, 30), max_size=4), limit=st.sampled_from([0, 1, 16, 16]))
def test_the_narrow_rows_name_the_images_the_whole_load_names(
    store_target: str, logs: list[Any], hidden: list[int], limit: int
) -> None:
    """Coded pairs (up to ``limit``: 0 and 1 force the strings for most histories), pairs the codes lack (some
    hidden from the pairs read, as if stored after them), names without a digest, jobs without an image or a
    log: every job's image equal to the whole load's, and one object per pair."""
    with Store.open(store_target) as store:
        project = _store_logs(store, logs)
        expected = _images(load_dataset(store, project))
        pairs = store.image_names_and_digests(project.id)
        shown = [p for i, p in enumerate(pairs) if i not in hidden]
        with (
            mock.patch.object(dataset, "_MAX_IMAGE_CODES", limit),
            mock.patch.object(type(store), "image_names_and_digests", lambda _s, _p: list(shown)),
        ):
            window = load_dataset(store, project, spans=[(None, None)], narrow=True)
        assert _images(window) == expected
        objects = {(f.image.name, f.image.digest): f.image for f in window.facts.values() if f.image is not None}
        assert len({id(x) for x in objects.values()}) == len(objects)
        assert all(f.image is objects[f.image.name, f.image.digest] for f in window.facts.values() if f.image)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(logs=LOGS, batch=st.sampled_from([1, 2, 7, 2000]))
def test_read_batches_gives_the_rows_read_gives(store_target: str, logs: list[Any], batch: int) -> None:
    with Store.open(store_target) as store:
        project = _store_logs(store, logs)
        sql = "SELECT job_id, image_name, startup_seconds FROM job_facts WHERE project_id = ? ORDER BY job_id"
        batches = [list(map(tuple, b)) for b in store.read_batches(sql, [project.id], batch=batch)]
        assert [r for b in batches for r in b] == [tuple(r) for r in store.read(sql, [project.id])]
        assert all(0 < len(b) <= batch for b in batches)


def test_read_batches_lets_go_of_the_store_when_left_early(store_target: str) -> None:
    """An iterator closed before its last batch releases the store's lock: another thread reads at once."""
    with Store.open(store_target) as store:
        project = _store_logs(store, [(0, 0)] * 10)
        rows = store.read_batches("SELECT job_id FROM job_facts WHERE project_id = ?", [project.id], batch=2)
        assert len(next(rows)) == 2
        rows.close()
        got: list[Any] = []
        reader = threading.Thread(target=lambda: got.extend(store.read("SELECT count(*) FROM job_facts")))
        reader.start()
        reader.join(timeout=30)
        assert not reader.is_alive() and got[0][0] >= 10
