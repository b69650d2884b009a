"""Property tests for the metrics: invariants against brute-force recounts on random data."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cidash.metrics import (
    DEFAULT_KEY,
    cache_restore_rates,
    job_startups,
    overlapping_writers,
    restore_outcome_totals,
    stale_cache_events,
)
from metrics_factories import T0, Builder, archive, facts, pipeline, restore

KEYS = st.sampled_from(["0-abc-protected", "0-default-protected", "deps-default", "1-def-non_protected"])
OUTCOMES = st.sampled_from(["hit", "miss", "failed", "skipped", "unknown", "empty"])
JOB = st.tuples(
    st.floats(min_value=0, max_value=500),  # start offset
    st.floats(min_value=1, max_value=300),  # duration
    st.booleans(),  # retried
    st.lists(st.tuples(KEYS, OUTCOMES), max_size=3),  # restores
    st.lists(KEYS, max_size=2),  # archives (created)
    st.one_of(st.none(), st.floats(min_value=0, max_value=120)),  # start-up
)


def build(jobs: list[tuple[float, float, bool, list[tuple[str, str]], list[str], float | None]]) -> Builder:
    b = Builder()
    p = b.add_pipeline(pipeline(1, T0))
    p2 = b.add_pipeline(pipeline(2, T0 + timedelta(minutes=1), ref="feature"))
    for i, (start, duration, retried, restores, archives, startup) in enumerate(jobs):
        cache = [restore(k, o) for k, o in restores] + [archive(k) for k in archives]
        b.add_job(
            p if i % 2 else p2,
            f"j{i % 3}",
            facts(startup, cache=cache),
            start=start,
            duration=duration,
            retried=retried,
        )
    return b


@settings(max_examples=60, deadline=None)
@given(st.lists(JOB, max_size=12))
def test_counts_match_brute_force(
    jobs: list[tuple[float, float, bool, list[tuple[str, str]], list[str], float | None]],
) -> None:
    b = build(jobs)
    ds = b.dataset()
    kept = [j for j in jobs if not j[2]]
    # Restore attempts: every non-retried attempt lands in exactly one group, whatever the grouping.
    total = sum(len(j[3]) for j in kept)
    for by in ("key", "job", "ref"):
        assert sum(r.n for r in cache_restore_rates(ds, by)) == total  # type: ignore[arg-type]
    assert sum(restore_outcome_totals(ds).values()) == total
    # Start-ups: one per non-retried job whose log had one.
    assert len(job_startups(ds)) == sum(1 for j in kept if j[5] is not None)
    assert len(job_startups(ds, include_retried=True)) == sum(1 for j in jobs if j[5] is not None)
    # Default-key events: one per restore attempt on a default key (all are main attempts here).
    defaults = [e for e in stale_cache_events(ds) if e.kind == "default_key"]
    assert len(defaults) == sum(1 for j in kept for k, _ in j[3] if DEFAULT_KEY.search(k))
    # Overlapping writers: every pair of uploads of one key whose job intervals intersect, retried jobs too.
    expected = 0
    for a in range(len(jobs)):
        for c in range(a + 1, len(jobs)):
            ja, jc = b.jobs[a], b.jobs[c]
            assert ja.started_at and ja.finished_at and jc.started_at and jc.finished_at
            shared = set(jobs[a][4]) & set(jobs[c][4])
            if ja.started_at < jc.finished_at and jc.started_at < ja.finished_at:
                expected += len(shared)
    assert len(overlapping_writers(ds)) == expected


SECTION_NAMES = st.sampled_from(
    [
        "resolve_secrets",
        "prepare_executor",
        "prepare_script",
        "get_sources",
        "clear_worktree",
        "restore_cache",
        "download_artifacts",
        "step_script",
        "step_release",
        "archive_cache",
        "archive_cache_on_failure",
        "upload_artifacts_on_success",
        "cleanup_file_variables",
        "user_section",
        "restore_cache_extra",
    ]
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            SECTION_NAMES,
            st.one_of(st.none(), st.floats(min_value=-1, max_value=1e6, allow_nan=False)),
        ),
        max_size=12,
    )
)
def test_startup_phases_is_phase_durations_before_the_script(sections: list[tuple[str, float | None]]) -> None:
    """metrics.startup_phases (its own loop, per job) gives exactly logparse.phase_durations' start-up phases:
    the same keys in the same order and the same float sums."""
    from cidash.logparse import phase_durations
    from cidash.metrics import STARTUP_PHASES, startup_phases
    from cidash.models import Section, TraceFacts

    f = TraceFacts(None, None, False, tuple(Section(n, 0.0, None, d) for n, d in sections), 1.0, None, ())
    expected = {k: v for k, v in phase_durations(f).items() if k in STARTUP_PHASES}
    got = startup_phases(f)
    assert list(got.items()) == list(expected.items())
    # and the loader's second path: the closed start-up sections' rows summed (dataset._read_jobs)
    from cidash.metrics import section_phases, startup_phase_sums

    phase_of = section_phases()
    rows = [(phase_of[n], d) for n, d in sections if n in phase_of and d is not None]
    assert list(startup_phase_sums(rows).items()) == list(expected.items())


# -- second paths (issue 15): the per-job values the criteria read without per-job objects, held equal to the first

STATUSES = st.sampled_from(["success", "failed", "manual", "skipped", "running", "canceled"])
DETAILS = st.sampled_from([None, "fallback", "empty key", "fallback (inferred)"])
DIGESTS = st.sampled_from([None, "sha256:" + "a" * 64, "sha256:" + "b" * 64, "reg/x@sha256:" + "a" * 64, "bogus"])
IMAGES = st.sampled_from(["registry.example.com/platform/app/ci:alpine", "docker:27", "other/ci-tools:1"])
RUN = st.tuples(
    st.integers(min_value=0, max_value=40),  # start offset (minutes; ties on purpose)
    STATUSES,
    st.booleans(),  # retried
    st.sampled_from(["test", "lint", "build-ci-image"]),
    st.one_of(st.none(), st.floats(min_value=0, max_value=600, allow_nan=False)),  # start-up
    DIGESTS,
    IMAGES,
    st.booleans(),  # started at all
)


def _runs_dataset(runs: list[tuple[int, str, bool, str, float | None, str | None, str, bool]]) -> Any:
    from dataclasses import replace

    from cidash.models import ImageRef

    b = Builder()
    p = b.add_pipeline(pipeline(1, T0))
    for start, status, retried, name, startup, digest, image, started in runs:
        f = facts(startup)
        if digest is not None:
            f = replace(f, image=ImageRef(image, None, digest, None))
        j = b.add_job(p, name, f, start=start * 60.0, status=status, retried=retried)
        if not started:
            b.jobs[-1] = replace(j, started_at=None)
    return b.dataset()


@settings(max_examples=200, deadline=None)
@given(st.lists(RUN, max_size=14), st.booleans())
def test_startup_seconds_is_job_startups_seconds(
    runs: list[tuple[int, str, bool, str, float | None, str | None, str, bool]], include_retried: bool
) -> None:
    """metrics.startup_seconds (no JobStartup per job) gives job_startups' seconds in job_startups' order."""
    from cidash.metrics import startup_seconds

    ds = _runs_dataset(runs)
    for excluded in ((), ("build-ci-image",), ("test", "lint")):
        expected = [s.seconds for s in job_startups(ds, include_retried=include_retried, exclude_jobs=excluded)]
        assert startup_seconds(ds, include_retried=include_retried, exclude_jobs=excluded) == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(RUN, max_size=14), st.sampled_from([None, "platform/app/ci", "ci-tools", "nothing-matches"]))
def test_the_ci_image_digests_are_those_of_ci_image_jobs(
    runs: list[tuple[int, str, bool, str, float | None, str | None, str, bool]], hint: str | None
) -> None:
    """metrics.last_ci_image_digest and ci_image_digest_counts (one pass, no sort) are ci_image_jobs(...)[-1][1]
    and the Counter of its digests: the same CI image chosen (by the hint, else the image most jobs ran, ties to
    the first), the same newest job, the same counts in the same order."""
    from collections import Counter

    from cidash.metrics import ci_image_digest_counts, ci_image_jobs, last_ci_image_digest

    ds = _runs_dataset(runs)
    used = ci_image_jobs(ds, hint)
    assert last_ci_image_digest(ds, hint) == (used[-1][1] if used else None)
    expected = Counter(d for _, d in used)
    got = ci_image_digest_counts(ds, hint)
    assert list(got.items()) == list(expected.items())  # the same counts in the same order: the same ties
    assert got.most_common(1) == expected.most_common(1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["restore", "archive"]), KEYS, OUTCOMES, DETAILS), max_size=10))
def test_restore_outcomes_group_as_logparse_restores(events: list[tuple[str, str, str, str | None]]) -> None:
    """metrics.restore_outcomes (what the restore rates count) groups a job's cache events as
    logparse.restores does: one (main key, outcome, through a fallback key) per restore."""
    from cidash.logparse import restores
    from cidash.metrics.caches import restore_outcomes
    from cidash.models import CacheEvent, TraceFacts

    cache = tuple(CacheEvent(op, key, outcome, detail) for op, key, outcome, detail in events)  # type: ignore[arg-type]
    f = TraceFacts(None, None, False, (), None, None, cache)
    expected = [(r.key, r.outcome, r.via_fallback_key is not None) for r in restores(f)]
    assert restore_outcomes(cache) == expected


PHASED_RUN = st.tuples(
    RUN,
    st.lists(
        st.tuples(
            st.sampled_from(
                ["prepare_executor", "prepare_script", "get_sources", "restore_cache", "download_artifacts"]
            ),
            st.one_of(st.none(), st.floats(min_value=0, max_value=90, allow_nan=False)),
        ),
        max_size=4,
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(PHASED_RUN, max_size=14), st.booleans(), st.sampled_from(["sections", "dicts", "tuples"]))
def test_startup_samples_are_startup_samples_values(
    runs: list[Any], include_retried: bool, summed_by_loader: str
) -> None:
    """metrics.startup_samples (one pass, no JobStartup per job) gives, for the start-up and each phase, the
    values startup_sample gives, each as many times (its order is not kept: what reads them sorts them), from
    the sections or from phases summed by a loader (as dicts, or as the tuples of a window's PhaseSums, which
    read as the same dicts, their phases in the same order); compare's rows from them are the same."""
    from dataclasses import replace

    from cidash.compare import _startup_samples
    from cidash.metrics import (
        STARTUP_PHASES,
        PhaseSums,
        phase_tuple,
        startup_phases,
        startup_sample,
        startup_samples,
    )
    from cidash.models import Section

    ds = _runs_dataset([run for run, _ in runs])
    facts = dict(ds.facts)
    for j, (_, sections) in zip(ds.jobs, runs, strict=True):
        if j.id in facts:
            t = 0.0
            made = []
            for name, secs in sections:
                made.append(Section(name, t, None if secs is None else t + secs, secs))
                t += secs or 1.0
            facts[j.id] = replace(facts[j.id], sections=tuple(made))
    ds = replace(ds, facts=facts)
    if summed_by_loader != "sections":
        summed = {k: startup_phases(f) for k, f in facts.items() if startup_phases(f)}
        kept: Any = summed
        if summed_by_loader == "tuples":
            kept = PhaseSums({k: phase_tuple(v) for k, v in summed.items()})
            assert {k: list(kept[k].items()) for k in kept} == {k: list(v.items()) for k, v in summed.items()}
        ds = replace(ds, facts={k: replace(f, sections=()) for k, f in facts.items()}, phases_by_job=kept)
    for excluded in ((), ("build-ci-image",), ("test", "lint")):
        got = startup_samples(ds, include_retried=include_retried, exclude_jobs=excluded)
        rows = _startup_samples(ds, include_retried=include_retried, exclude_jobs=excluded)
        for phase in (None, *STARTUP_PHASES):
            expected = startup_sample(ds, include_retried=include_retried, phase=phase, exclude_jobs=excluded)
            values = got.seconds if phase is None else got.phases[phase]
            assert sorted(values) == sorted(expected.values)
            assert rows[phase].name == expected.name and sorted(rows[phase].values) == sorted(expected.values)
        by_job: dict[str, list[float]] = {}
        for s in job_startups(ds, include_retried=include_retried, exclude_jobs=excluded):
            by_job.setdefault(s.name, []).append(s.seconds)
        assert {k: sorted(v) for k, v in got.by_job.items()} == {k: sorted(v) for k, v in by_job.items()}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.floats(min_value=0, max_value=500), st.just(float("nan"))), max_size=30),
    st.lists(st.floats(min_value=0, max_value=500), max_size=30),
)
def test_a_comparison_row_reads_its_samples_sorted_once_as_given(base: list[float], cand: list[float]) -> None:
    """compare sorts each sample once before its summary and bootstrap: the same row as from the samples in
    their own order (NaN included: then they are left as given)."""
    from cidash.compare import _distribution
    from cidash.metrics import Sample
    from cidash.stats import bootstrap_median_change, summarize

    row = _distribution("x", "x", Sample("b", tuple(base)), Sample("c", tuple(cand)), min_n=1, seed=3, resamples=50)
    ci = bootstrap_median_change(base, cand, seed=3, resamples=50)
    assert repr((row.baseline, row.candidate)) == repr((summarize(base), summarize(cand)))
    assert repr((row.change_pct, row.ci_low_pct, row.ci_high_pct)) in (
        repr((ci.change_pct, ci.low_pct, ci.high_pct)),
        repr((ci.change_pct, None, None)),  # n < min_n
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(JOB, max_size=12))
def test_the_cache_metrics_are_the_same_when_jobs_share_their_events(jobs: list[Any]) -> None:
    """A window's loader gives the jobs whose logs said the same one shared tuple of cache events, and the cache
    metrics compute each tuple's part once (metrics.by_identity): the same answers as with a tuple per job."""
    from dataclasses import replace

    from cidash.compare import compare
    from cidash.config import Config
    from cidash.metrics import cache_writers
    from cidash.specs import parse_spec

    ds = build(jobs).dataset()
    shared: dict[Any, Any] = {}
    facts = {k: replace(f, cache=shared.setdefault(f.cache, f.cache)) for k, f in ds.facts.items()}
    copied = {k: replace(f, cache=tuple(e for e in f.cache)) for k, f in ds.facts.items()}
    one, other = replace(ds, facts=facts), replace(ds, facts=copied)
    for retried in (False, True):
        for by in ("key", "job", "ref"):
            assert cache_restore_rates(one, by, include_retried=retried) == cache_restore_rates(
                other, by, include_retried=retried
            )
        assert stale_cache_events(one, include_retried=retried) == stale_cache_events(other, include_retried=retried)
    assert list(cache_writers(one).items()) == list(cache_writers(other).items())
    spec = parse_spec("ref:main")
    assert compare(one, spec, spec, Config(), resamples=20) == compare(other, spec, spec, Config(), resamples=20)


def test_by_identity_computes_once_per_object() -> None:
    from cidash.metrics import by_identity

    calls: list[object] = []

    def length(x: tuple[int, ...]) -> int:
        calls.append(x)
        return len(x)

    get = by_identity(length)
    a, b = (1, 2), tuple(x for x in (1, 2))
    assert [get(a), get(a), get(b), get(a)] == [2, 2, 2, 2]
    assert len(calls) == (1 if a is b else 2)


@settings(max_examples=100, deadline=None)
@given(st.lists(JOB, max_size=12), st.booleans())
def test_the_restore_counts_by_shared_events_are_the_restore_totals(jobs: list[Any], share: bool) -> None:
    """restore_outcome_counts (each distinct events object once, times its jobs) counts what
    restore_outcome_totals counts, and jobs_restoring_a_cache the jobs whose events hold a restore, whether the
    jobs share their events' tuples (a window's loader) or not."""
    from dataclasses import replace

    from cidash.metrics import jobs_restoring_a_cache, restore_outcome_counts, restores_a_cache

    ds = build(jobs).dataset()
    if share:
        shared: dict[Any, Any] = {}
        ds = replace(ds, facts={k: replace(f, cache=shared.setdefault(f.cache, f.cache)) for k, f in ds.facts.items()})
    for retried in (False, True):
        assert restore_outcome_counts(ds, include_retried=retried) == restore_outcome_totals(
            ds, include_retried=retried
        )
    expected = sum(1 for j in ds.jobs if (f := ds.facts.get(j.id)) is not None and restores_a_cache(f.cache))
    assert jobs_restoring_a_cache(ds) == expected


def _rates_restore_by_restore(ds: Any, by: str, include_retried: bool) -> list[tuple[str, int, list[Any], int]]:
    """cache_restore_rates as first written: each restore of each counted job counted in job and log order."""
    from collections import Counter

    from cidash.metrics import RESTORE_OUTCOMES, counted_jobs
    from cidash.metrics.caches import restore_outcomes

    counts: dict[str, Counter[str]] = {}
    via: Counter[str] = Counter()
    for j in counted_jobs(ds, include_retried=include_retried):
        f = ds.facts.get(j.id)
        if f is None:
            continue
        for key, outcome, fallback in restore_outcomes(f.cache):
            group = key if by == "key" else j.name if by == "job" else j.ref
            known = outcome if outcome in RESTORE_OUTCOMES else "unknown"
            counts.setdefault(group, Counter())[known] += 1
            if known == "hit" and fallback:
                via[group] += 1
    rows = [(g, sum(c.values()), list(c.items()), via[g]) for g, c in counts.items()]
    rows.sort(key=lambda r: (-r[1], r[0]))
    return rows


@settings(max_examples=150, deadline=None)
@given(st.lists(JOB, max_size=14), st.booleans(), st.booleans())
def test_restore_rates_counted_per_shared_events_keep_the_outcome_order(
    jobs: list[Any], share: bool, retried: bool
) -> None:
    """cache_restore_rates counts each distinct events object once per job name and ref, times its jobs: the same
    counts and, per group, the outcomes in the order of their first restore (the JSON export shows that order) as
    counting restore by restore."""
    from dataclasses import replace

    ds = build(jobs).dataset()
    if share:
        shared: dict[Any, Any] = {}
        ds = replace(ds, facts={k: replace(f, cache=shared.setdefault(f.cache, f.cache)) for k, f in ds.facts.items()})
    for by in ("key", "job", "ref"):
        got = [
            (r.group, r.n, list(r.outcomes.items()), r.fallback_hits)
            for r in cache_restore_rates(ds, by, include_retried=retried)  # type: ignore[arg-type]
        ]
        assert got == _rates_restore_by_restore(ds, by, retried)


SECTION = st.tuples(
    st.sampled_from(["archive_cache", "archive_cache_on_failure", "step_script", "restore_cache"]),
    st.floats(min_value=0, max_value=1000),
    st.one_of(st.none(), st.floats(min_value=0, max_value=100)),  # None: never closed
)


@settings(max_examples=150, deadline=None)
@given(st.lists(SECTION, max_size=6), st.booleans())
def test_write_window_is_the_bounds_of_the_closed_upload_sections(sections: list[Any], ran: bool) -> None:
    """write_window: the min of the starts and the max of the ends of the closed upload sections, else the job's
    own start and end (None when it has none)."""
    from dataclasses import replace

    from cidash.metrics import ARCHIVE_SECTIONS, write_window
    from cidash.models import Section

    b = Builder()
    p = b.add_pipeline(pipeline(1, T0))
    b.add_job(p, "writer", facts(10.0), start=5.0, duration=30.0)
    ds = b.dataset()
    (j,) = ds.jobs
    if not ran:
        j = replace(j, started_at=None, finished_at=None)
    made = tuple(Section(n, t, None if d is None else t + d, d) for n, t, d in sections)
    ds = replace(ds, jobs=(j,), facts={j.id: replace(ds.facts[j.id], sections=made)})
    spans = [(s.start, s.end) for s in made if s.name in ARCHIVE_SECTIONS and s.end is not None]
    if spans:
        expected: Any = (min(a for a, _ in spans), max(e for _, e in spans))
    elif j.started_at is not None and j.finished_at is not None:
        expected = (j.started_at.timestamp(), j.finished_at.timestamp())
    else:
        expected = None
    assert write_window(ds, j) == expected


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 72), st.sampled_from(["main", "feature", "x"])), max_size=10),
    st.lists(
        st.sampled_from(
            [
                "2026-11-01..2026-11-02",
                "2026-11-02..2026-11-03",
                "..2026-11-02",
                "2026-11-03..",
                "ref:main",
                "ref:feature",
                "pipelines:3..7",
                "#5..#20",
            ]
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_a_conjunction_of_pipeline_specs_is_sliced_once_as_part_after_part(
    made: list[tuple[int, str]], parts: list[str]
) -> None:
    """Dataset.select of dates, refs and pipeline ids together keeps what selecting part after part keeps."""
    from cidash.metrics import Dataset
    from cidash.specs import parse_spec

    b = Builder()
    for i, (hours, ref) in enumerate(made):
        p = b.add_pipeline(pipeline(i + 1, T0 + timedelta(hours=hours), ref=ref))
        b.add_job(p, "j", facts(5.0), start=1.0)
    ds = b.dataset()
    specs = [parse_spec(text) for text in parts]
    conjunction = parse_spec(",".join(parts))
    expected: Dataset = ds
    for spec in specs:
        expected = expected.select(spec)
    got = ds.select(conjunction)
    assert (got.pipelines, got.jobs) == (expected.pipelines, expected.jobs)


def _as_of_job_by_job(ds: Any, t: Any) -> tuple[list[Any], dict[int, Any]]:
    """Dataset.as_of's jobs and facts as first written: one job at a time."""
    from dataclasses import replace

    from cidash.metrics.model import _unfinished_at

    if all(r.created_at <= t and (r.finished_at is None or r.finished_at <= t) for r in (*ds.pipelines, *ds.jobs)):
        return list(ds.jobs), dict(ds.facts)  # nothing happened after t: the dataset as it is
    ids = {p.id for p in ds.pipelines if p.created_at <= t}
    kept = [j for j in ds.jobs if j.pipeline_id in ids and j.created_at <= t]
    newest: dict[tuple[int, str], int] = {}
    for j in kept:
        k = (j.pipeline_id, j.name)
        newest[k] = max(newest.get(k, j.id), j.id)
    jobs, facts = [], {}
    for j in kept:
        if j.finished_at is not None and j.finished_at > t:
            j = replace(_unfinished_at(j, t), failure_reason=None)
        elif (f := ds.facts.get(j.id)) is not None:
            facts[j.id] = f
        if j.retried and newest[(j.pipeline_id, j.name)] == j.id:
            j = replace(j, retried=False)
        jobs.append(j)
    return jobs, facts


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 3),  # pipeline
            st.sampled_from(["a", "b"]),  # name
            st.floats(min_value=0, max_value=7200),  # created after its pipeline
            st.floats(min_value=1, max_value=7200),  # duration
            st.booleans(),  # retried
            st.sampled_from(["success", "failed", "manual"]),
            st.booleans(),  # a parsed log
        ),
        max_size=14,
    ),
    st.integers(0, 5 * 3600),
)
def test_as_of_changes_only_the_jobs_that_stood_otherwise_then(made: list[Any], seconds: int) -> None:
    """Dataset.as_of finds the jobs that finished after t, or whose later attempt came after t, and replaces
    only those: the jobs and facts it gives are those of changing the jobs one by one."""
    b = Builder()
    ps = [b.add_pipeline(pipeline(i + 1, T0 + timedelta(hours=i))) for i in range(4)]
    for k, (pi, name, created, duration, retried, status, logged) in enumerate(made):
        b.add_job(
            ps[pi],
            name,
            facts(3.0 + k) if logged else None,
            created=created,
            start=created + 5.0,
            duration=duration,
            retried=retried,
            status=status,
            failure_reason="script_failure" if status == "failed" else None,
        )
    ds = b.dataset()
    t = T0 + timedelta(seconds=seconds)
    got = ds.as_of(t)
    jobs, facts_then = _as_of_job_by_job(ds, t)
    assert list(got.jobs) == jobs
    assert dict(got.facts) == facts_then and list(got.facts) == list(facts_then)


@settings(max_examples=50, deadline=None)
@given(st.lists(JOB, max_size=12), st.booleans())
def test_counted_jobs_are_found_once_per_slice_and_given_as_new_lists(jobs: list[Any], retried: bool) -> None:
    """counted_jobs keeps a slice's counted jobs for the metrics that ask again; a caller that changes the list
    it got changes no other caller's."""
    from cidash.metrics import NOT_RUN_STATUSES, counted_jobs

    ds = build(jobs).dataset()
    expected = [
        j
        for j in ds.jobs
        if j.status not in NOT_RUN_STATUSES and j.started_at is not None and (retried or not j.retried)
    ]
    first = counted_jobs(ds, include_retried=retried)
    assert first == expected
    first.reverse()
    first.append(first[0] if first else None)  # type: ignore[arg-type]
    assert counted_jobs(ds, include_retried=retried) == expected
    assert counted_jobs(ds.between(None, None), include_retried=retried) == expected


@given(st.lists(st.one_of(st.none(), st.floats(), st.integers(-5, 10**9), st.sampled_from([0.0, -0.0, 31_622_400.0]))))
def test_the_plausible_values_are_those_plausible_seconds_accepts(values: list[Any]) -> None:
    from cidash.metrics import plausible_seconds
    from cidash.metrics.model import _plausible

    assert _plausible(values) == tuple(v for v in values if plausible_seconds(v))
