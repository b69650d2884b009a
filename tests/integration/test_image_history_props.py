"""cidash.queries.image_history on random histories, SQLite and PostgreSQL: the database's walk from digest change
to digest change (and the ordered pass that takes over after ``WALK_STEPS`` changes) gives what the ordered pass
over every CI-image job gave, and ``last_digest`` from the index what the join of every job gave (both kept here
as the references: the code they replaced); the changes are what :func:`cidash.metrics.image_digest_changes`
finds in the dataset as of the same time."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cidash import queries
from cidash.dataset import load_dataset
from cidash.metrics import DigestChange, image_digest_changes, image_tag_of, normalize_digest
from cidash.models import ImageRef, Project
from cidash.queries import image_history
from cidash.store import Store, to_db_time
from metrics_factories import IMAGE, T0, facts, job, pipeline

A, B, C = ("sha256:" + c * 64 for c in "abc")
#: Raw digests as logs name them: one image under two raw forms (``A``), another image's, one that is no digest.
RAWS = [f"{IMAGE}@{A}", A, f"{IMAGE}@{B}", B, f"docker@{C}", "sha256:not-a-digest"]
NAMES = [f"{IMAGE}:debian", f"{IMAGE}:alpine", "docker:27.3"]

#: One job: (pipeline, start offset in minutes: few values, so starts tie; ran; duration in minutes: some end
#: after others start; what its log named: None = no log, else (name, raw digest) indexes, name None = no image).
#: Weighted towards the CI image's names and valid digests, so most histories change digest several times.
JOBS = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.sampled_from([0, 1, 2, 30]),
        st.sampled_from([True, True, True, False]),
        st.sampled_from([1, 5, 90, 600]),
        st.sampled_from([None, *[(n, r) for n in (None, 0, 0, 1, 1, 2) for r in (0, 0, 1, 2, 2, 3, 4, 5)]]),
    ),
    min_size=1,
    max_size=30,
)
_projects = itertools.count(100)


def _old_digest_changes(
    store: Store, project_id: int, ref: str, as_of: datetime | None, *, names: list[str], digests: list[str]
) -> tuple[list[DigestChange], dict[int, datetime]] | None:
    """The ordered pass over every CI-image job of the ref that ``_digest_changes`` was before the walk (kept as
    it was, as the reference)."""
    name_code = "CASE image_name " + " ".join(f"WHEN ? THEN {i}" for i in range(len(names))) + " END"
    digest_code = "CASE image_digest " + " ".join(f"WHEN ? THEN {i}" for i in range(len(digests))) + " END"
    sql = (
        f"SELECT job_id, {name_code}, {digest_code} FROM job_facts WHERE project_id = ? AND pipeline_ref = ? "
        "AND image_name IS NOT NULL AND image_digest IS NOT NULL AND job_started_at IS NOT NULL "
        f"AND image_name IN ({queries._in(names)}) AND image_digest IN ({queries._in(digests)})"
    )
    params: list[Any] = [*names, *digests, project_id, ref, *names, *digests]
    if as_of is not None:
        sql += " AND visible_at <= ?"
        params.append(to_db_time(as_of))
    sql += " ORDER BY job_started_at, job_id"
    found: list[tuple[int, int, int, int, int]] = []
    last: list[Any] = [None, None]

    def visit(row: Any) -> None:
        prev_d = last[1]
        if prev_d is not None and row[2] != prev_d:
            found.append((row[0], row[1], row[2], last[0], prev_d))
        last[0], last[1] = row[1], row[2]

    store.scan(sql, params, visit)
    if last[1] is None:
        return None
    changes: list[DigestChange] = []
    split_at: dict[int, datetime] = {}
    kept = [f for f in found if queries._changed(digests[f[4]], digests[f[2]])]
    jobs = queries._job_starts(store, project_id, [f[0] for f in kept])
    created = queries._pipelines_created(store, project_id, {jobs[f[0]][0] for f in kept})
    for job_id, n, d, prev_n, prev_d in kept:
        pipeline_id, started = jobs[job_id]
        old, new = normalize_digest(digests[prev_d]), normalize_digest(digests[d])
        assert old is not None and new is not None
        changes.append(
            DigestChange(
                queries._time(started),
                job_id,
                pipeline_id,
                old,
                new,
                image_tag_of(names[prev_n]),
                image_tag_of(names[n]),
            )
        )
        split_at[pipeline_id] = created[pipeline_id]
    return changes, split_at


def _old_newest_digest(
    store: Store, project_id: int, as_of: datetime | None, names: list[str], digests: list[str]
) -> list[Any] | None:
    """``_newest_digest`` before it read the ``job_facts_image_order`` index (the reference): every CI-image job
    of the history joined to its pipeline and facts, the newest by start."""
    where, params = queries._image_jobs_where(project_id, None, as_of)
    got = store.read(
        f"SELECT f.image_digest {where} AND f.image_name IN ({queries._in(names)}) "
        f"AND f.image_digest IN ({queries._in(digests)}) ORDER BY j.started_at DESC, j.id DESC LIMIT 1",
        [*params, *names, *digests],
    )
    return list(got) or None


def _store_history(store: Store, history: list[Any], ids: list[int], refs: list[str]) -> tuple[Project, list[datetime]]:
    """A new project holding ``history`` (job ids in the order ``ids`` gives: not their start order; pipeline ``i``
    on ``refs[i]``); the times worth asking about (every job's creation and end, and between them)."""
    pid = next(_projects)
    project = Project(pid, f"g/p{pid}", f"https://gitlab.example.com/g/p{pid}", "main")
    store.upsert_project(project)
    pipelines = [
        replace(pipeline(pid * 1000 + i, T0 + timedelta(minutes=20 * i), ref=refs[i]), project_id=pid) for i in range(6)
    ]
    store.upsert_pipelines(pipelines)
    jobs, logs = [], []
    for (p, start, ran, minutes, log), jid in zip(history, ids, strict=True):
        j = replace(job(pid * 1000 + jid, pipelines[p], start=60.0 * start, duration=60.0 * minutes), project_id=pid)
        if not ran:
            j = replace(j, status="created", started_at=None, finished_at=None, duration=None)
        jobs.append(j)
        if log is not None:
            name, raw = log
            image = None if name is None else ImageRef(NAMES[name], None, RAWS[raw], None)
            logs.append((j.id, replace(facts(12.0), image=image), None))
    store.upsert_jobs(jobs)
    store.save_many_job_facts(logs, project_id=pid)
    times = sorted({t for j in jobs for t in (j.created_at, j.finished_at) if t is not None})
    return project, [*times, *(t + timedelta(seconds=30) for t in times)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    history=JOBS,
    order=st.randoms(use_true_random=False),
    refs=st.lists(st.sampled_from(["main", "main", "feature", "fix"]), min_size=6, max_size=6),
    picks=st.lists(st.integers(0, 10_000), max_size=3),
)
def test_the_walk_gives_what_the_ordered_pass_gave(
    store_target: str, history: Any, order: Any, refs: list[str], picks: Any
) -> None:
    """Every ref, hint and ``as_of`` (none, and times among the jobs' creations and ends), with the walk's step
    limit at 0 (the pass alone), 1, 2 and its default: the same changes and pipelines as the old pass, the same
    newest digest as the old join, and the changes image_digest_changes finds in the dataset; the CI image's
    names and digests chosen by counting the index what the ``GROUP BY`` over every job chose."""
    ids = list(range(len(history)))
    order.shuffle(ids)
    with Store.open(store_target) as store:
        project, times = _store_history(store, history, ids, refs)
        chosen = [times[i % len(times)] for i in picks] if times else []
        for as_of in [None, *chosen]:
            for ref, hint in itertools.product(("main", "feature", "fix"), ("platform/app/ci", "docker", None)):
                with (
                    mock.patch.object(queries, "_digest_changes", _old_digest_changes),
                    mock.patch.object(queries, "_newest_digest", _old_newest_digest),
                ):
                    expected = image_history(store, project.id, ref, hint, as_of)
                    last = expected.last_digest()
                assert image_history(store, project.id, ref, hint, as_of).last_digest() == last
                for steps, pairs in itertools.product((0, 1, 2, queries.WALK_STEPS), (0, queries.MAX_RUN_PAIRS)):
                    # (pairs 0: the walk alone, not each digest's first and last job)
                    with (
                        mock.patch.object(queries, "WALK_STEPS", steps),
                        mock.patch.object(queries, "MAX_RUN_PAIRS", pairs),
                    ):
                        got = image_history(store, project.id, ref, hint, as_of)
                    assert (got.changes, dict(got.split_at)) == (expected.changes, dict(expected.split_at)), steps
                ds = load_dataset(store, project, as_of=as_of)
                assert list(expected.changes) == image_digest_changes(ds.on_ref(ref), hint)
            for ref, hint in itertools.product(("main", "feature", "fix", None), ("platform/app/ci", "docker", None)):
                # the repository most jobs ran, by counting the index: what the GROUP BY over the jobs chose
                want = queries._ci_image_names_grouped(store, project.id, ref, hint, as_of)
                for per in (1, 2, queries.PAIRS_PER_STATEMENT):
                    with mock.patch.object(queries, "PAIRS_PER_STATEMENT", per):
                        assert queries._ci_image_names(store, project.id, ref, hint, as_of) == want, (ref, hint)


def test_each_digests_first_and_last_job_give_the_changes_unless_a_digest_comes_back(store_target: str) -> None:
    """Runs of one raw digest each (A, then B, then A under another raw form): the changes from each digest's
    first and last job, no walk; A, B, then A again: the runs overlap and the walk finds the changes. Both as the
    ordered pass gives them."""
    with Store.open(store_target) as store:
        # (name, raw digest) of each job in start order: the image renamed within a run (debian, then alpine: the
        # tag that changed with the digest is the run's last job's)
        for logs, by_runs in (
            ([(0, 0), (1, 0), (1, 2), (0, 2), (1, 2), (0, 1)], True),
            ([(0, 0), (1, 2), (1, 2), (0, 0), (1, 1)], False),
        ):
            history = [(i, i, True, 1, log) for i, log in enumerate(logs)]
            project, _ = _store_history(store, history, list(range(len(history))), ["main"] * 6)
            names, digests = queries._hinted_image_names(store, project.id, "platform/app/ci")
            runs = queries._digest_runs(store, project.id, "main", None, names=names, digests=digests)
            assert (runs is not None) is by_runs
            with (
                mock.patch.object(queries, "_digest_changes", _old_digest_changes),
                mock.patch.object(queries, "_newest_digest", _old_newest_digest),
            ):
                expected = image_history(store, project.id, "main", "platform/app/ci", None)
            got = image_history(store, project.id, "main", "platform/app/ci", None)
            assert got.changes == expected.changes and len(got.changes) >= 2
