"""Caches: restore outcomes per key, job or ref, stale restores, and writers that race on one key."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any, Literal

from cidash.metrics.model import Dataset, JobCacheConfig, counted_jobs
from cidash.models import CacheEvent, FileChecksum, Job, Pipeline, TraceFacts
from cidash.stats import rate

#: A cache key GitLab fell back to because none of the ``key:files`` existed at the pipeline's SHA:
#: ``<prefix>-default``, optionally with the clear-cache counter and the protected/non_protected suffix.
DEFAULT_KEY = re.compile(r"(?:^|-)default(?:-\d+)?(?:-(?:non_)?protected)?$")


GroupBy = Literal["key", "job", "ref"]


RESTORE_OUTCOMES: tuple[str, ...] = ("hit", "miss", "failed", "skipped", "unknown")


@dataclass(frozen=True, slots=True)
class OutcomeRate:
    """Restore outcomes of one key, job name or ref. ``n`` counts restores: a restore is the attempt on a cache's
    main key plus the fallback keys tried after it (:func:`cidash.logparse.restores`), so a miss followed by a
    fallback hit is ONE restore that hit; ``fallback_hits`` counts those."""

    group: str
    n: int
    outcomes: Mapping[str, int]
    fallback_hits: int = 0

    @property
    def hit_rate(self) -> float | None:
        """Hits (through a fallback key too) as % of restores whose outcome is known (hit, miss or failed)."""
        return rate(self.outcomes.get("hit", 0), self.known)

    @property
    def known(self) -> int:
        """Restores with a known outcome (hit, miss or failed)."""
        return sum(self.outcomes.get(k, 0) for k in ("hit", "miss", "failed"))


def _is_fallback(detail: str | None) -> bool:
    return bool(detail) and "fallback" in (detail or "")


def cache_restore_rates(ds: Dataset, by: GroupBy = "key", *, include_retried: bool = False) -> list[OutcomeRate]:
    """Restore outcome counts per cache key (the main key a job tried first), job name or ref.

    Each restore counts once, fallback attempts included in it (see :class:`OutcomeRate`). Outcomes other than
    hit/miss/failed/skipped (e.g. ``empty``) are counted as ``unknown``; a truncated log that never said is
    ``unknown`` too, never ``miss``. Sorted by restores, most first.
    """
    counts: dict[str, dict[str, int]] = {}
    via_fallback: Counter[str] = Counter()
    column = 0 if by == "key" else 1 if by == "job" else 2
    for cache, name, ref, n in _counted_restores(ds, include_retried):
        for key, outcome, fallback in cache:
            group = key if column == 0 else name if column == 1 else ref
            got = counts.get(group)
            if got is None:
                counts[group] = {outcome: n}
            else:
                got[outcome] = got.get(outcome, 0) + n
            if outcome == "hit" and fallback:
                via_fallback[group] += n
    rates = [OutcomeRate(g, sum(c.values()), c, via_fallback[g]) for g, c in counts.items()]
    rates.sort(key=lambda r: (-r.n, r.group))
    return rates


def _counted_restores(ds: Dataset, include_retried: bool) -> list[tuple[list[tuple[str, str, str]], str, str, int]]:
    """``(restores, job name, ref, jobs)``: the restores (:func:`_known_restore_outcomes`) of each distinct object
    of cache events of the counted jobs, per job name and ref, with how many jobs had them, in the order of the
    first such job (a window's jobs share their events' tuples: a few thousand for 100,000 jobs). Counting each
    restore of the first such group, then the next, ... gives every group's outcomes in the order of their first
    restore in job and log order, as counting restore by restore does (an outcome first seen in a job is first
    seen in the group of that job, which is seen no later). Computed once per slice for the groupings asked of
    it (``export`` asks for three)."""
    asked = ("restores", include_retried)
    done = ds._own.get(asked)
    if done is not None:
        return done  # type: ignore[return-value]
    groups: dict[tuple[int, str, str], list[Any]] = {}
    outcomes: dict[int, list[tuple[str, str, str]]] = {}
    kept: list[tuple[CacheEvent, ...]] = []  # alive while ``outcomes`` is: no id reused meanwhile
    facts_of = ds.facts.get
    for j in counted_jobs(ds, include_retried=include_retried):
        facts = facts_of(j.id)
        if facts is None or not facts.cache:
            continue
        cache = facts.cache
        ident = id(cache)
        k = (ident, j.name, j.ref)
        got = groups.get(k)
        if got is not None:
            got[3] += 1
            continue
        restores = outcomes.get(ident)
        if restores is None:
            restores = outcomes[ident] = _known_restore_outcomes(cache)
            kept.append(cache)
        groups[k] = [restores, j.name, j.ref, 1]
    out = [(restores, name, ref, n) for restores, name, ref, n in groups.values() if restores]
    ds._own[asked] = out
    return out


def _known_restore_outcomes(cache: Sequence[CacheEvent]) -> list[tuple[str, str, str]]:
    """:func:`restore_outcomes` as :func:`_counted_restores` counts them: ``(key, outcome or "unknown", "fallback"
    or "")``."""
    return [
        (key, outcome if outcome in RESTORE_OUTCOMES else "unknown", "fallback" if via else "")
        for key, outcome, via in restore_outcomes(cache)
    ]


def restores_a_cache(cache: Sequence[CacheEvent]) -> bool:
    """True when the events hold a restore attempt (the jobs ``stale_caches`` counts)."""
    return any(ev.op == "restore" for ev in cache)


def restore_outcomes(cache: Sequence[CacheEvent]) -> list[tuple[str, str, bool]]:
    """``(r.key, r.outcome, r.via_fallback_key is not None)`` of each of :func:`cidash.logparse.restores`, from
    a job's cache events, without a :class:`~cidash.logparse.Restore` per restore (the same grouping: a fallback
    attempt joins the restore before it unless that one's last attempt had an empty key)."""
    out: list[tuple[str, str, bool]] = []
    key = ""
    outcome = ""
    hit = via = False
    last_detail: str | None = None
    started = False
    for event in cache:
        if event.op != "restore":
            continue
        if started and event.detail == _FALLBACK and last_detail != "empty key":
            if not hit:
                outcome = event.outcome
                if outcome == "hit":
                    hit = via = True
        else:
            if started:
                out.append((key, outcome, via))
            started = True
            key, outcome, via = event.key, event.outcome, False
            hit = outcome == "hit"
        last_detail = event.detail
    if started:
        out.append((key, outcome, via))
    return out


#: :data:`cidash.logparse.FALLBACK` (not imported: the metrics stay importable without the parser).
_FALLBACK = "fallback"


#: A cache key restored at least this often without one hit is flagged (``cidash check`` warns).
NEVER_HIT_MIN_RESTORES = 10


def never_hit_keys(
    ds: Dataset, *, min_restores: int = NEVER_HIT_MIN_RESTORES, include_retried: bool = False
) -> list[OutcomeRate]:
    """Cache keys with a 0 % hit rate over at least ``min_restores`` restores of known outcome (a fallback hit
    counts as a hit): a key that changes every pipeline, or a cache nothing ever uploads."""
    return [
        r
        for r in cache_restore_rates(ds, "key", include_retried=include_retried)
        if r.known >= min_restores and r.outcomes.get("hit", 0) == 0
    ]


def restore_outcome_totals(ds: Dataset, *, include_retried: bool = False) -> dict[str, int]:
    """All restores by outcome (a miss then a fallback hit is one hit)."""
    total: Counter[str] = Counter()
    for r in cache_restore_rates(ds, "key", include_retried=include_retried):
        total.update(r.outcomes)
    return dict(total)


def restore_outcome_counts(ds: Dataset, *, include_retried: bool = False) -> dict[str, int]:
    """:func:`restore_outcome_totals` (the same counts; its keys maybe in another order) from each distinct
    object of cache events once, times the counted jobs that have it (a window's jobs share their events' tuples:
    a few thousand for 60,000 jobs), without a restore row per restore: what ``compare`` reads.
    ``tests/unit/test_metrics_props.py`` holds them equal."""
    total: Counter[str] = Counter()
    for cache, n in _jobs_per_events(ds, counted_jobs(ds, include_retried=include_retried)):
        for _, known, _ in _known_restore_outcomes(cache):
            total[known] += n
    return dict(total)


def jobs_restoring_a_cache(ds: Dataset) -> int:
    """How many of ``ds.jobs`` (retried ones too) have log facts with a restore attempt
    (:func:`restores_a_cache`): each distinct object of cache events judged once."""
    return sum(n for cache, n in _jobs_per_events(ds, ds.jobs) if restores_a_cache(cache))


def _jobs_per_events(ds: Dataset, jobs: Iterable[Job]) -> Iterable[tuple[tuple[CacheEvent, ...], int]]:
    """Each distinct object of cache events (not empty) of ``jobs``' log facts, with how many of ``jobs`` have it
    (by identity: each object is kept beside its count, so no id is reused meanwhile)."""
    counts: dict[int, list[Any]] = {}
    facts_of = ds.facts.get
    for j in jobs:
        facts = facts_of(j.id)
        if facts is None or not facts.cache:
            continue
        cache = facts.cache
        got = counts.get(id(cache))
        if got is None:
            counts[id(cache)] = [cache, 1]
        else:
            got[1] += 1
    return [(cache, n) for cache, n in counts.values()]


def main_restore_keys(facts: TraceFacts) -> tuple[str, ...]:
    """The keys a job tried first for each of its caches (fallback attempts left out)."""
    return _main_restore_keys(facts.cache)


def _main_restore_keys(cache: Sequence[CacheEvent]) -> tuple[str, ...]:
    return tuple(ev.key for ev in cache if ev.op == "restore" and not _is_fallback(ev.detail))


@dataclass(frozen=True, slots=True)
class StaleCacheEvent:
    """A cache restore that cannot reflect the critical files.

    ``kind`` is ``default_key`` (GitLab found none of the ``key:files`` and used ``...-default``: one event per
    job) or ``unchanged_key`` (critical files changed between two consecutive pipelines on a ref, but the
    restore key stayed the same: one event per key and pipeline pair).
    """

    kind: Literal["default_key", "unchanged_key"]
    ref: str
    key: str
    pipeline_id: int
    at: datetime
    job_id: int | None = None
    previous_pipeline_id: int | None = None
    changed_files: tuple[str, ...] = ()


_pipeline_order = attrgetter("created_at", "id")


def _checksums_by_sha(checksums: Iterable[FileChecksum], files: set[str] | None) -> dict[str, dict[str, str | None]]:
    out: dict[str, dict[str, str | None]] = defaultdict(dict)
    for c in checksums:
        if files is None or c.path in files:
            out[c.sha][c.path] = c.content_sha256 or c.blob_id
    return out


def stale_cache_events(
    ds: Dataset, critical_files: Iterable[str] | None = None, *, include_retried: bool = False
) -> list[StaleCacheEvent]:
    """Stale-cache events in the dataset, oldest first.

    ``critical_files``: the paths whose change must change the key (default: every path with a checksum).
    Only files with a checksum recorded at both SHAs count as changed.

    Pipeline by pipeline (by creation): an event per default key each of its counted jobs tried first (by job
    id, in the job's order of keys), then, when a critical file changed since the previous pipeline on its ref
    that tried a key, one per key both tried (sorted). Each job's keys are found in one pass over the jobs, a
    window's jobs sharing their events' tuples (each tuple's keys split once); the pipelines walked are those
    with a key only (``tests/unit/test_metrics_one_pass.py`` holds this equal to walking them all, each one's
    jobs sorted by id).
    """
    files = set(critical_files) if critical_files is not None else None
    by_sha = _checksums_by_sha(ds.checksums, files)
    # per pipeline id: the jobs that tried a default key (with those keys) and the other keys its jobs tried (not
    # needed when no SHA has a checksum of a critical file: then no key stayed the same across a change)
    defaults: dict[int, list[tuple[int, Job, tuple[str, ...]]]] = {}
    tried: dict[int, set[str]] = {}
    # each tuple of events split once (by identity; the tuples stay alive in the dataset's facts meanwhile, so no
    # id is reused), each key matched once
    split_of: dict[int, tuple[tuple[str, ...], frozenset[str]]] = {}
    is_default: dict[str, bool] = {}
    facts_of = ds.facts.get
    for j in counted_jobs(ds, include_retried=include_retried):
        facts = facts_of(j.id)
        if facts is None or not facts.cache:
            continue
        split = split_of.get(id(facts.cache))
        if split is None:
            split = split_of[id(facts.cache)] = _split_main_keys(_main_restore_keys(facts.cache), is_default)
        default_keys, other_keys = split
        if default_keys:
            defaults.setdefault(j.pipeline_id, []).append((j.id, j, default_keys))
        if other_keys and by_sha:
            got = tried.get(j.pipeline_id)
            if got is None:
                tried[j.pipeline_id] = set(other_keys)
            else:
                got |= other_keys
    events: list[StaleCacheEvent] = []
    last_by_ref: dict[str, tuple[Pipeline, set[str]]] = {}
    for p in sorted((p for p in ds.pipelines if p.id in tried or p.id in defaults), key=_pipeline_order):
        jobs = defaults.get(p.id)
        if jobs is not None:
            for _, j, default_keys in sorted(jobs, key=_first):
                at = j.started_at or p.created_at
                events.extend(StaleCacheEvent("default_key", p.ref, key, p.id, at, j.id) for key in default_keys)
        keys = tried.get(p.id)
        if keys is None:
            continue
        previous = last_by_ref.get(p.ref)
        if previous is not None and p.sha in by_sha and previous[0].sha in by_sha:
            before, after = by_sha[previous[0].sha], by_sha[p.sha]
            changed = tuple(sorted(f for f in before.keys() & after.keys() if before[f] != after[f]))
            if changed:
                for key in sorted(keys & previous[1]):
                    events.append(
                        StaleCacheEvent("unchanged_key", p.ref, key, p.id, p.created_at, None, previous[0].id, changed)
                    )
        last_by_ref[p.ref] = (p, keys)
    events.sort(key=lambda e: (e.at, e.pipeline_id))
    return events


_first = itemgetter(0)


def _split_main_keys(keys: tuple[str, ...], is_default: dict[str, bool]) -> tuple[tuple[str, ...], frozenset[str]]:
    """``keys`` (a job's main restore keys) as (the default keys, in order and repeated as tried; the others)."""
    for key in keys:
        if key not in is_default:
            is_default[key] = DEFAULT_KEY.search(key) is not None
    return tuple(k for k in keys if is_default[k]), frozenset(k for k in keys if not is_default[k])


@dataclass(frozen=True, slots=True)
class WriterOverlap:
    """Two jobs that uploaded the same cache key at overlapping times."""

    key: str
    first_job_id: int
    second_job_id: int
    overlap_seconds: float
    at: datetime


def cache_writers(ds: Dataset) -> dict[str, list[Job]]:
    """Per cache key, the jobs that tried to upload it (archive created or failed), retried ones too (a window's
    loader reads the upload sections of these jobs only: ``cidash.dataset._UPLOADED``). Found once per slice
    (the writers' criterion asks for them twice); each call gets its own dict and lists."""
    return {key: list(jobs) for key, jobs in _cache_writers(ds).items()}


def _cache_writers(ds: Dataset) -> dict[str, list[Job]]:
    """:func:`cache_writers` of ``ds``, computed once per slice (kept with the slice's own values)."""
    done = ds._own.get("writers")
    if done is not None:
        return done  # type: ignore[return-value]
    out: dict[str, list[Job]] = defaultdict(list)
    keys_of = _uploads_by_job(ds).get
    for j in ds.jobs:
        keys = keys_of(j.id)
        if keys is not None:
            for key in keys:
                out[key].append(j)
    found = ds._own["writers"] = dict(out)
    return found


def _uploads_by_job(ds: Dataset) -> dict[int, set[str]]:
    """The keys each job with log facts uploaded (:func:`_uploaded_keys`), for the jobs that uploaded one: found
    once from the facts for every slice that shares them (``Dataset._memo``; the criteria and ``export`` ask
    for the writers of three slices of one window, each pass over its jobs then a lookup per job)."""
    done = ds._memo.get("uploaded keys")
    if done is not None:
        return done  # type: ignore[return-value]
    out: dict[int, set[str]] = {}
    # a window's jobs share their events' tuples: each one's keys found once (by identity: the tuples stay alive
    # in the dataset's facts meanwhile, so no id is reused)
    keys_by_events: dict[int, set[str]] = {}
    for job_id, facts in ds.facts.items():
        cache = facts.cache
        if not cache:
            continue
        keys = keys_by_events.get(id(cache))
        if keys is None:
            keys = keys_by_events[id(cache)] = _uploaded_keys(cache)
        if keys:
            out[job_id] = keys
    ds._memo["uploaded keys"] = out
    return out


def _uploaded_keys(cache: Sequence[CacheEvent]) -> set[str]:
    return {ev.key for ev in cache if ev.op == "archive" and ev.outcome in ("created", "failed")}


#: The runner sections that upload a cache.
ARCHIVE_SECTIONS = frozenset({"archive_cache", "archive_cache_on_failure"})


def write_window(ds: Dataset, job: Job) -> tuple[float, float] | None:
    """When the job uploaded its cache (unix seconds): its closed ``archive_cache`` section(s) if the log has
    them, else the whole job (``started_at`` -> ``finished_at``); None when neither is known."""
    facts = ds.facts.get(job.id)
    if facts is not None and facts.sections:
        first: float | None = None
        last = 0.0
        for s in facts.sections:  # min() and max() of the closed upload sections' bounds, in one pass
            if s.end is None or s.name not in ARCHIVE_SECTIONS:
                continue
            if first is None:
                first, last = s.start, s.end
                continue
            first = min(first, s.start)
            last = max(last, s.end)
        if first is not None:
            return first, last
    if job.started_at is None or job.finished_at is None:
        return None
    return job.started_at.timestamp(), job.finished_at.timestamp()


def overlapping_writers(ds: Dataset) -> list[WriterOverlap]:
    """Pairs of jobs uploading one cache key at overlapping times (see :func:`write_window`), oldest first."""
    from datetime import UTC

    overlaps: list[WriterOverlap] = []
    for key, jobs in _cache_writers(ds).items():
        timed = sorted(
            ((w, j) for j in jobs if (w := write_window(ds, j)) is not None), key=lambda wj: (wj[0][0], wj[1].id)
        )
        active: list[tuple[tuple[float, float], Job]] = []
        for (start, end), j in timed:
            active = [(w, a) for w, a in active if w[1] > start]
            for (_, a_end), a in active:
                overlap = min(a_end, end) - start
                overlaps.append(WriterOverlap(key, a.id, j.id, overlap, datetime.fromtimestamp(start, UTC)))
            active.append(((start, end), j))
    overlaps.sort(key=lambda o: (o.at, o.first_job_id))
    return overlaps


@dataclass(frozen=True, slots=True)
class UnserialisedWriters:
    """Jobs of the CI config that write one cache key together without a resource_group."""

    key: str
    jobs: tuple[str, ...]


def unserialised_config_writers(caches: Sequence[JobCacheConfig]) -> list[UnserialisedWriters]:
    """Cache keys written (policy pull-push/push) by two or more jobs, listing the writers lacking a resource_group.

    Writers that all share one resource group are serialised and not reported.
    """
    by_key: dict[str, list[JobCacheConfig]] = defaultdict(list)
    for c in caches:
        if c.writes and c.key is not None:
            by_key[c.key].append(c)
    out = []
    for key, writers in sorted(by_key.items()):
        jobs = {w.job for w in writers}
        if len(jobs) < 2:
            continue
        groups = {w.resource_group for w in writers}
        if len(groups) == 1 and None not in groups:
            continue
        out.append(UnserialisedWriters(key, tuple(sorted(w.job for w in writers if w.resource_group is None))))
    return out
