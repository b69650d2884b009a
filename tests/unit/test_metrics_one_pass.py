"""The faster paths of the criteria and the export (issue #15, "Core at scale"), each held equal to the
straightforward computation it replaces, on random data (NaN, zeros of both signs and ties included)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cidash.metrics import StartupRecord, startup_seconds
from cidash.metrics.startup import _counted_seconds, _counted_startups
from cidash.models import CacheEvent, Section
from cidash.stats import bootstrap_median_change, median, sorted_unless_nan
from metrics_factories import T0, Builder, archive, checksums, facts, pipeline, restore
from test_metrics_props import PHASED_RUN, RUN, _runs_dataset

#: Start-ups whose sorted order can depend on their order: NaN, zeros of both signs, ties.
ODD_SECONDS = st.one_of(
    st.none(), st.sampled_from([0.0, -0.0, float("nan"), 3.5, 3.5]), st.floats(min_value=0, max_value=600)
)
ODD_RUN = st.one_of(
    st.tuples(RUN, ODD_SECONDS),
    # a counted job (ran, not retried) of a start-up that sorts oddly: most runs of RUN are not counted
    st.tuples(
        st.integers(0, 40).map(lambda m: (m, "success", False, "test", None, None, "docker:27", True)), ODD_SECONDS
    ),
)
RECORD = st.tuples(st.integers(0, 40), st.sampled_from(["test", "build-ci-image"]), ODD_SECONDS, st.booleans())


def _odd_dataset(runs: list[Any], records: list[Any]) -> Any:
    ds = _runs_dataset([(*run[:4], seconds, *run[5:]) for run, seconds in runs])
    made = tuple(
        StartupRecord(9, 1000 + i, name, T0 + timedelta(minutes=start), seconds, retried)
        for i, (start, name, seconds, retried) in enumerate(records)
        if seconds is not None
    )
    return replace(ds, startup_records=made)


@settings(max_examples=300, deadline=None)
@given(st.lists(ODD_RUN, max_size=14), st.lists(RECORD, max_size=4), st.booleans())
def test_startup_values_in_any_order_sort_as_those_oldest_first(
    runs: list[Any], records: list[Any], include_retried: bool
) -> None:
    """startup_seconds(ordered=False) skips the sort by start: its values sorted (sorted_unless_nan) are those
    oldest first sorted, zero signs and NaN included, so the start-up criterion's medians and bootstrap are the
    same; and sorting once before them changes neither."""
    ds = _odd_dataset(runs, records)
    for excluded in ((), ("build-ci-image",)):
        oldest_first = startup_seconds(ds, include_retried=include_retried, exclude_jobs=excluded)
        any_order = startup_seconds(ds, include_retried=include_retried, exclude_jobs=excluded, ordered=False)
        assert repr(sorted_unless_nan(any_order)) == repr(sorted_unless_nan(oldest_first))
        job_by_job = [t[2] for t in _counted_startups(ds, include_retried, set(excluded))]
        assert repr(_counted_seconds(ds, include_retried, set(excluded))) == repr(job_by_job)  # same order too
        once = sorted_unless_nan(any_order)
        assert repr(median(once)) == repr(median(oldest_first))
        if oldest_first:
            half = oldest_first[::2] or oldest_first
            expected = bootstrap_median_change(half, oldest_first, resamples=30, seed=1)
            got = bootstrap_median_change(sorted_unless_nan(half), once, resamples=30, seed=1)
            assert repr(got) == repr(expected)


# -- the cache metrics: a world of pipelines on two refs, file checksums per SHA, jobs in any order

KEYS = st.sampled_from(["0-abc-protected", "0-default-protected", "deps-default", "1-def-non_protected", "gems"])
OUTCOMES = st.sampled_from(["hit", "miss", "failed", "skipped", "empty"])
DETAILS = st.sampled_from([None, None, "fallback", "empty key"])
CACHE_JOB = st.tuples(
    st.integers(0, 7),  # pipeline (index, modulo the pipelines made)
    st.integers(0, 600),  # start offset, seconds
    st.integers(1, 400),  # duration
    st.booleans(),  # retried
    st.sampled_from(["success", "failed", "manual", "running"]),
    st.sampled_from(["test", "lint", "build"]),
    st.lists(st.tuples(KEYS, OUTCOMES, DETAILS), max_size=3),  # restores
    st.lists(KEYS, max_size=2),  # archives
    st.booleans(),  # upload sections in the log (else: the whole job is its write window)
)
CACHE_PIPELINE = st.tuples(st.sampled_from(["main", "feature"]), st.integers(0, 3), st.integers(0, 30))
SUMS = st.dictionaries(st.sampled_from(["Gemfile.lock", "package.json"]), st.sampled_from(["x", "y"]), max_size=2)


@st.composite
def cache_worlds(draw: Any) -> Any:
    b = Builder()
    made = draw(st.lists(CACHE_PIPELINE, min_size=1, max_size=8))
    shas = [f"{i:040x}" for i in range(4)]
    for i, sums in enumerate(draw(st.lists(SUMS, min_size=4, max_size=4))):
        b.add_checksums(checksums(shas[i], sums))
    pipelines = [
        b.add_pipeline(pipeline(100 + i, T0 + timedelta(minutes=at), ref=ref, sha=shas[sha]))
        for i, (ref, sha, at) in enumerate(made)
    ]
    shared: dict[Any, Any] = {}  # the loader's way: one tuple of events per distinct log outcome
    for p, start, duration, retried, status, name, restores, archives, sectioned in draw(st.lists(CACHE_JOB)):
        events: list[CacheEvent] = [restore(k, o, d) for k, o, d in restores] + [archive(k) for k in archives]
        f = facts(cache=shared.setdefault(tuple(events), tuple(events)))
        if sectioned:
            t = T0.timestamp() + start + 5
            f = replace(f, sections=(Section("archive_cache", t, t + duration / 4, duration / 4),))
        b.add_job(
            pipelines[p % len(pipelines)], name, f, start=start, duration=duration, retried=retried, status=status
        )
    ds = b.dataset()
    order = draw(st.permutations(range(len(ds.jobs))))
    return replace(ds, jobs=tuple(ds.jobs[i] for i in order))


def _stale_cache_events_walking_every_pipeline(
    ds: Any, critical_files: Any = None, *, include_retried: bool = False
) -> list[Any]:
    """stale_cache_events as it was computed before the one pass: every pipeline walked by creation, its counted
    jobs sorted by id, each job's main keys matched there."""
    from cidash.metrics import DEFAULT_KEY, StaleCacheEvent, counted_jobs, main_restore_keys

    files = set(critical_files) if critical_files is not None else None
    by_sha: dict[str, dict[str, Any]] = {}
    for c in ds.checksums:
        if files is None or c.path in files:
            by_sha.setdefault(c.sha, {})[c.path] = c.content_sha256 or c.blob_id
    jobs_by_pipeline: dict[int, list[Any]] = {}
    for j in counted_jobs(ds, include_retried=include_retried):
        jobs_by_pipeline.setdefault(j.pipeline_id, []).append(j)
    events: list[Any] = []
    last_by_ref: dict[str, Any] = {}
    for p in sorted(ds.pipelines, key=lambda p: (p.created_at, p.id)):
        keys: set[str] = set()
        for j in sorted(jobs_by_pipeline.get(p.id, []), key=lambda j: j.id):
            f = ds.facts.get(j.id)
            for key in main_restore_keys(f) if f is not None else ():
                if DEFAULT_KEY.search(key) is not None:
                    events.append(StaleCacheEvent("default_key", p.ref, key, p.id, j.started_at or p.created_at, j.id))
                else:
                    keys.add(key)
        previous = last_by_ref.get(p.ref)
        if previous is not None and p.sha in by_sha and previous[0].sha in by_sha:
            before, after = by_sha[previous[0].sha], by_sha[p.sha]
            changed = tuple(sorted(f for f in before.keys() & after.keys() if before[f] != after[f]))
            if changed:
                for key in sorted(keys & previous[1]):
                    events.append(
                        StaleCacheEvent("unchanged_key", p.ref, key, p.id, p.created_at, None, previous[0].id, changed)
                    )
        if keys:
            last_by_ref[p.ref] = (p, keys)
    events.sort(key=lambda e: (e.at, e.pipeline_id))
    return events


@settings(max_examples=300, deadline=None)
@given(cache_worlds(), st.booleans(), st.sampled_from([None, ("Gemfile.lock",), ("package.json", "nothing")]))
def test_stale_cache_events_in_one_pass_are_those_walking_every_pipeline(
    ds: Any, include_retried: bool, files: Any
) -> None:
    from cidash.metrics import stale_cache_events

    expected = _stale_cache_events_walking_every_pipeline(ds, files, include_retried=include_retried)
    assert stale_cache_events(ds, files, include_retried=include_retried) == expected


VALUE = st.one_of(  # (no sum that overflows: fsum raises on both sides)
    st.floats(-1e300, 1e300), st.sampled_from([0.0, -0.0, float("nan"), float("inf"), 1.5, 1.5, 2.0])
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(VALUE, max_size=8), max_size=5), st.randoms(use_true_random=False))
def test_a_summary_sorted_from_its_parts_is_the_summary(parts: list[list[float]], rnd: Any) -> None:
    """summarize_split (the export's start-up summary from the job names' sorted start-ups) is summarize of the
    values in whatever order they come, and of each part, NaN, infinities and zeros of both signs included."""
    from cidash.stats import summarize, summarize_split

    values = [v for part in parts for v in part]
    rnd.shuffle(values)
    whole, each = summarize_split(values, parts)
    assert repr(whole) == repr(summarize(values))
    assert repr(each) == repr([summarize(part) for part in parts])


@settings(max_examples=100, deadline=None)
@given(st.lists(PHASED_RUN, max_size=14), st.booleans())
def test_the_export_summarises_the_start_ups_as_each_sample_alone(runs: list[Any], include_retried: bool) -> None:
    """The export's start-up summaries (the whole from the job names' parts) are summarize of each sample."""
    from cidash.metrics import startup_samples
    from cidash.stats import summarize, summarize_split

    ds = _runs_dataset([run for run, _ in runs])
    got = startup_samples(ds, include_retried=include_retried)
    names = sorted(got.by_job)
    whole, each = summarize_split(got.seconds, [got.by_job[n] for n in names])
    assert repr(whole) == repr(summarize(got.seconds))
    assert repr(each) == repr([summarize(got.by_job[n]) for n in names])


def _first_scripts_every_job_timed(ds: Any, *, include_retried: bool = False) -> list[Any]:
    """time_to_first_script as it was computed before: every counted job's script time computed and compared."""
    from cidash.metrics import FirstScript, counted_jobs

    firsts: dict[int, Any] = {}
    for j in counted_jobs(ds, include_retried=include_retried):
        f = ds.facts.get(j.id)
        if f is None or f.startup_seconds is None:
            continue
        script_at = j.started_at.timestamp() + f.startup_seconds
        if j.pipeline_id not in firsts or script_at < firsts[j.pipeline_id][0]:
            firsts[j.pipeline_id] = (script_at, j.started_at, f.startup_seconds)
    return [
        FirstScript(p.id, p.ref, max(0.0, round((s - p.created_at).total_seconds() + u, 6)))
        for p in ds.pipelines
        if p.id in firsts
        for _, s, u in [firsts[p.id]]
    ]


FIRST_JOB = st.tuples(
    st.integers(0, 2),  # pipeline
    st.sampled_from([0.0, 0.1, 0.2, 0.3, 1e-6, 7.0, 7.1]),  # start offset (seconds: ties and rounding on purpose)
    st.one_of(st.none(), st.sampled_from([0.0, 0.1, 0.2, 0.3, 6.9, 7.0]), st.floats(0, 50)),  # start-up
    st.booleans(),  # retried
    st.sampled_from(["success", "failed", "manual"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(FIRST_JOB, max_size=12), st.booleans(), st.randoms(use_true_random=False))
def test_the_first_script_skipping_later_jobs_is_every_job_compared(
    jobs: list[Any], include_retried: bool, rnd: Any
) -> None:
    from cidash.metrics import time_to_first_script

    b = Builder()
    made = [b.add_pipeline(pipeline(100 + i, T0 + timedelta(seconds=0.7 * i))) for i in range(3)]
    for p, start, startup, retried, status in jobs:
        b.add_job(made[p], "test", facts(startup), start=start, retried=retried, status=status)
    ds = b.dataset()
    shuffled = list(ds.jobs)
    rnd.shuffle(shuffled)
    ds = replace(ds, jobs=tuple(shuffled))
    expected = _first_scripts_every_job_timed(ds, include_retried=include_retried)
    assert repr(time_to_first_script(ds, include_retried=include_retried)) == repr(expected)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(RUN, max_size=14),
    st.sampled_from([None, "platform/app/ci", "ci-tools", "nothing-matches"]),
    st.lists(st.booleans(), min_size=14, max_size=14),
)
def test_the_ci_image_digests_counted_per_shared_image_are_those_of_ci_image_jobs(
    runs: list[Any], hint: str | None, share: list[bool]
) -> None:
    """last_ci_image_digest and ci_image_digest_counts count jobs per object of image facts (a window's jobs
    share them): the same as ci_image_jobs job by job, whether equal images are one object or several."""
    from collections import Counter

    from cidash.metrics import ci_image_digest_counts, ci_image_jobs, last_ci_image_digest

    ds = _runs_dataset(runs)
    one: dict[Any, Any] = {}
    facts = {
        k: replace(f, image=one.setdefault(f.image, f.image)) if f.image is not None and shared else f
        for (k, f), shared in zip(ds.facts.items(), share, strict=False)
    }
    ds = replace(ds, facts=facts)
    used = ci_image_jobs(ds, hint)
    assert last_ci_image_digest(ds, hint) == (used[-1][1] if used else None)
    expected = Counter(d for _, d in used)
    assert list(ci_image_digest_counts(ds, hint).items()) == list(expected.items())


@settings(max_examples=150, deadline=None)
@given(
    cache_worlds(),
    st.sampled_from([None, "main", "feature", "other"]),
    st.one_of(st.none(), st.integers(0, 31)),
    st.one_of(st.none(), st.integers(0, 31)),
)
def test_a_ref_between_two_times_is_sliced_once_as_the_ref_then_the_times(
    ds: Any, ref: str | None, start: int | None, end: int | None
) -> None:
    """Dataset.on_ref_between (the criteria's periods) is on_ref(ref).between(start, end): the same pipelines,
    jobs and start-up records in the same order."""
    records = tuple(
        StartupRecord(p.id, 9000 + i, "test", p.created_at, 1.0 + i, False) for i, p in enumerate(ds.pipelines)
    )
    ds = replace(ds, startup_records=records)
    lo = None if start is None else T0 + timedelta(minutes=start)
    hi = None if end is None else T0 + timedelta(minutes=end)
    got, expected = ds.on_ref_between(ref, lo, hi), ds.on_ref(ref).between(lo, hi)
    assert (got.pipelines, got.jobs, got.startup_records) == (
        expected.pipelines,
        expected.jobs,
        expected.startup_records,
    )


def _writers_job_by_job(ds: Any) -> dict[str, list[Any]]:
    """cache_writers as it was computed before the shared memo: each job's facts, its uploaded keys."""
    out: dict[str, list[Any]] = {}
    for j in ds.jobs:
        f = ds.facts.get(j.id)
        for key in sorted(
            {e.key for e in f.cache if e.op == "archive" and e.outcome in ("created", "failed")} if f else ()
        ):
            out.setdefault(key, []).append(j)
    return out


@settings(max_examples=200, deadline=None)
@given(cache_worlds(), st.lists(st.tuples(st.sampled_from(["main", "feature", None]), st.integers(0, 6)), max_size=4))
def test_the_writers_of_slices_sharing_their_uploads_are_each_slices_own(ds: Any, cuts: list[Any]) -> None:
    """The keys each job uploaded are found once for every slice of a dataset (in whatever order the slices are
    asked): each slice's writers, and their overlaps, are those its own jobs give."""
    from cidash.metrics import cache_writers, overlapping_writers

    slices = [ds.on_ref(ref).between(T0 + timedelta(hours=h), None) for ref, h in cuts] + [ds]
    for part in slices:
        got = cache_writers(part)
        assert {k: got[k] for k in sorted(got)} == _writers_job_by_job(part)
        assert list(got) == list(dict.fromkeys(k for j in part.jobs for k in got if j in got[k]))  # first-job order
        fresh = replace(part)  # (no memo shared: computed from its own facts)
        assert overlapping_writers(part) == overlapping_writers(fresh)


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 8)), max_size=40), st.randoms(use_true_random=False))
def test_jobs_sorted_by_id_then_creation_are_in_creation_then_id_order(keys: list[Any], rnd: Any) -> None:
    """The load's two stable sorts give the order of one sort by ``(created_at, id)``, object for object (equal
    times, and equal ids too)."""
    from cidash.dataset import sort_jobs
    from metrics_factories import job

    p = pipeline(1, T0)
    jobs = [job(jid, p, start=minutes * 60.0, created=minutes * 60.0) for minutes, jid in keys]
    rnd.shuffle(jobs)
    expected = sorted(jobs, key=lambda j: (j.created_at, j.id))
    sort_jobs(jobs)
    assert [id(j) for j in jobs] == [id(j) for j in expected]


@settings(max_examples=100, deadline=None)
@given(cache_worlds())
def test_the_stale_caches_criterion_counts_the_jobs_that_restored_a_cache(ds: Any) -> None:
    """The jobs counted per shared object of cache events are the jobs whose events hold a restore, one by one."""
    from cidash.config import Config
    from cidash.criteria.evaluators import eval_stale_caches
    from cidash.criteria.periods import Periods
    from cidash.metrics import restores_a_cache

    result = eval_stale_caches(Config(), Periods("window", "main", None, ds, "", short="in the window"))
    n = sum(1 for j in ds.jobs if (f := ds.facts.get(j.id)) is not None and restores_a_cache(f.cache))
    assert result.n == n or (n == 0 and result.status == "no_data")
    if n and result.value == 0:
        assert f"among {n} jobs that restored a cache" in result.evidence
