"""Job start-up: job start -> first script line, its phases, and each pipeline's time to first script."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from operator import attrgetter
from typing import NamedTuple, cast

from cidash.metrics.model import Dataset, Sample, counted_jobs, fast_constructor, normalize_digest
from cidash.models import NOT_RUN_STATUSES, TraceFacts

#: The phases of a job's start-up (before ``step_script``), as :mod:`cidash.logparse` names them:
#: prepare = resolve_secrets + prepare_executor + prepare_script (image pull included), sources = get_sources +
#: clear_worktree, cache = restore_cache, artifacts = download_artifacts.
STARTUP_PHASES: tuple[str, ...] = ("prepare", "sources", "cache", "artifacts")


@dataclass(frozen=True, slots=True)
class JobStartup:
    """One job's start-up (job start -> first script line) and its phases, seconds."""

    job_id: int
    pipeline_id: int
    name: str
    ref: str
    started_at: datetime
    seconds: float
    phases: Mapping[str, float]
    image_digest: str | None


_new_startup = fast_constructor(JobStartup)

#: A job's start-up phases as a window's loader keeps them: the seconds of each phase of :data:`STARTUP_PHASES`,
#: in that order, None for a phase without a closed section.
PhaseTuple = tuple[float | None, float | None, float | None, float | None]


class PhaseSums(Mapping[int, Mapping[str, float]]):
    """Each job's start-up phases (:func:`startup_phases`) by job id, as a window's loader keeps them: one
    :data:`PhaseTuple` per job that has one (a tuple of four costs less than a dict of them: 100,000 jobs in a
    window at 50,000 pipelines). Read as a mapping, a job's phases are the dict :func:`startup_phases` gives,
    its phases in :data:`STARTUP_PHASES` order; :func:`startup_samples` reads the tuples."""

    __slots__ = ("sums",)

    def __init__(self, sums: dict[int, PhaseTuple]) -> None:
        self.sums = sums

    def __getitem__(self, job_id: int) -> dict[str, float]:
        return {phase: v for phase, v in zip(STARTUP_PHASES, self.sums[job_id], strict=True) if v is not None}

    def __iter__(self) -> Iterator[int]:
        return iter(self.sums)

    def __len__(self) -> int:
        return len(self.sums)


def phase_tuple(phases: Mapping[str, float]) -> PhaseTuple:
    """``phases`` (:func:`startup_phases`' dict) as a :data:`PhaseTuple`."""
    return (phases.get("prepare"), phases.get("sources"), phases.get("cache"), phases.get("artifacts"))


def startup_phases(facts: TraceFacts) -> dict[str, float]:
    """Seconds spent in each start-up phase (``prepare``, ``sources``, ``cache``, ``artifacts``).

    From :func:`cidash.logparse.phase_durations` (closed runner sections summed), keeping only the phases before
    the script; phases whose sections are absent are left out rather than reported as 0.
    """
    if not facts.sections:
        return {}  # a window loaded without the phases' sections (``check``), or a log with none
    section_phase = _section_phases()
    totals: dict[str, float] = {}
    for section in facts.sections:
        phase = section_phase.get(section.name)
        if phase is None or section.duration is None:
            continue
        totals[phase] = totals.get(phase, 0.0) + section.duration  # the sums phase_durations makes, in its order
    if len(totals) == 1:
        return totals
    out: dict[str, float] = {}
    for phase in STARTUP_PHASES:  # phase_durations' order
        if phase in totals:
            out[phase] = totals[phase]
    return out


def startup_phase_sums(durations: Iterable[tuple[str, float]]) -> dict[str, float]:
    """:func:`startup_phases` of a job's closed start-up sections given as ``(phase, duration)`` in log order (the
    loader sums them from the stored rows: :attr:`~cidash.metrics.Dataset.phases_by_job`)."""
    totals: dict[str, float] = {}
    for phase, duration in durations:
        totals[phase] = totals.get(phase, 0.0) + duration
    if len(totals) == 1:
        return totals
    return {phase: totals[phase] for phase in STARTUP_PHASES if phase in totals}


def section_phases() -> dict[str, str]:
    """Runner section name -> start-up phase (see :func:`startup_phases`); a copy."""
    return dict(_section_phases())


@cache
def _section_phases() -> dict[str, str]:
    """Runner section name -> start-up phase: what :func:`cidash.logparse.phase_of` maps to a phase of
    :data:`STARTUP_PHASES` (only named runner sections do; ``step_*`` is the script, the prefixed sections the
    upload), so :func:`startup_phases` equals :func:`cidash.logparse.phase_durations` restricted to them without
    calling it per job (a ``check`` or ``compare`` at 50,000 pipelines asks for 100,000 jobs' start-ups)."""
    from cidash.logparse import SECTION_PHASES

    return {name: phase for name, phase in SECTION_PHASES.items() if phase in STARTUP_PHASES}


def job_startups(
    ds: Dataset,
    *,
    include_retried: bool = False,
    job_names: Iterable[str] | None = None,
    exclude_jobs: Iterable[str] = (),
) -> list[JobStartup]:
    """Start-up of every counted job whose log gave one, oldest first.

    ``job_names`` keeps only those job names; ``exclude_jobs`` drops some (the criteria drop the image-build
    job, which runs in the docker image rather than the CI image).
    """
    if ds.startup_records:
        raise RuntimeError("these pipelines were read for their start-up values only: use startup_seconds")
    asked = (
        include_retried,
        None if job_names is None else tuple(sorted(set(job_names))),
        tuple(sorted(set(exclude_jobs))),
    )
    done = cast("tuple[JobStartup, ...] | None", ds._own.get(("startups", asked)))
    if done is not None:
        return list(done)  # the slice's list, computed once per slice (compare asks for it five times)
    out = _job_startups(ds, include_retried=include_retried, job_names=job_names, exclude_jobs=exclude_jobs)
    ds._own[("startups", asked)] = tuple(out)
    return out


def _job_startups(
    ds: Dataset, *, include_retried: bool, job_names: Iterable[str] | None, exclude_jobs: Iterable[str]
) -> list[JobStartup]:
    names = set(job_names) if job_names is not None else None
    excluded = set(exclude_jobs)
    out: list[JobStartup] = []
    # each job's start-up is computed once for every slice (they share the memo): by job id
    memo: dict[int, JobStartup | None] = ds._memo.setdefault("startups", {})  # type: ignore[assignment]
    digests: dict[object, str | None] = ds._memo.setdefault("image digests", {})  # type: ignore[assignment]
    facts_of = ds.facts.get
    new = _new_startup
    by_job = ds.phases_by_job  # a window's phases, summed by its loader
    for j in ds.jobs:
        if j.status in NOT_RUN_STATUSES or j.started_at is None or (j.retried and not include_retried):
            continue  # counted_jobs' rule
        if (names is not None and j.name not in names) or j.name in excluded:
            continue
        cached = memo.get(j.id, memo)
        if cached is not memo:
            if cached is not None:
                out.append(cached)  # type: ignore[arg-type]
            continue
        facts = facts_of(j.id)
        if facts is None or facts.startup_seconds is None:
            memo[j.id] = None
            continue
        image = facts.image
        if image is None:
            digest = None
        else:
            digest = digests.get(image, digests)
            if digest is digests:  # a few images for many jobs: normalised once each
                digest = digests[image] = normalize_digest(image.digest)
        phases = startup_phases(facts) if by_job is None else by_job.get(j.id) or {}
        startup = memo[j.id] = new(
            j.id, j.pipeline_id, j.name, j.ref, j.started_at, facts.startup_seconds, phases, digest
        )
        out.append(startup)
    out.sort(key=_startup_order)
    return out


#: The order of start-ups (start, then job id).
_startup_order = attrgetter("started_at", "job_id")


def startup_seconds(
    ds: Dataset, *, include_retried: bool = False, exclude_jobs: Iterable[str] = (), ordered: bool = True
) -> list[float]:
    """``[s.seconds for s in job_startups(ds, ...)]`` (oldest first) without a :class:`JobStartup` per job: what
    the start-up criterion and its daily series read (a ``check`` at 50,000 pipelines asks for 120,000 jobs'),
    the dataset's :attr:`~cidash.metrics.Dataset.startup_records` included.

    ``ordered`` false: the same values in no particular order (what a median or the bootstrap reads: they sort
    them), without the sort by start (of 60,000 (start, id, seconds) tuples for the candidate of a ``check`` at
    50,000 pipelines), unless one of them is NaN or a zero: then oldest first, as sorting values with a NaN, or
    with zeros of both signs (equal, yet shown as ``0.0`` or ``-0.0``), depends on their order.
    ``tests/unit/test_metrics_props.py`` holds the sorted values equal."""
    excluded = set(exclude_jobs)
    if not ordered:
        values = _counted_seconds(ds, include_retried, excluded)
        if 0.0 not in values and not any(map(math.isnan, values)):  # (``in`` is ==: -0.0 too)
            return values
    # by start, then job id: the tuples themselves (a job id is in them once, so the seconds are never compared;
    # no key function per value)
    timed = sorted(_counted_startups(ds, include_retried, excluded))
    return [t[2] for t in timed]


def _counted_seconds(ds: Dataset, include_retried: bool, excluded: set[str]) -> list[float]:
    """``[t[2] for t in _counted_startups(...)]`` (the same values in the same order) by two comprehensions,
    without a generator's step and a ``(start, id, seconds)`` tuple per job: the unordered values
    :func:`startup_seconds` gives the criteria (the candidate's and the baseline's 60,000 each at 50,000
    pipelines)."""
    facts_of = ds.facts.get
    not_run = NOT_RUN_STATUSES
    values = [
        seconds
        for j in ds.jobs
        if j.status not in not_run
        and j.started_at is not None
        and (include_retried or not j.retried)
        and j.name not in excluded
        and (f := facts_of(j.id)) is not None
        and (seconds := f.startup_seconds) is not None
    ]
    values += [r.seconds for r in ds.startup_records if (include_retried or not r.retried) and r.name not in excluded]
    return values


def _counted_startups(ds: Dataset, include_retried: bool, excluded: set[str]) -> Iterator[tuple[datetime, int, float]]:
    """``(started_at, job id, start-up seconds)`` of :func:`startup_seconds`' jobs in the order of ``ds.jobs``, then
    of the records (the pipelines read for their start-up values only)."""
    facts = ds.facts
    for j in ds.jobs:
        if j.status in NOT_RUN_STATUSES or j.started_at is None or (j.retried and not include_retried):
            continue  # counted_jobs' rule
        if j.name in excluded:
            continue
        f = facts.get(j.id)
        if f is not None and f.startup_seconds is not None:
            yield j.started_at, j.id, f.startup_seconds
    for r in ds.startup_records:
        if (include_retried or not r.retried) and r.name not in excluded:
            yield r.started_at, r.job_id, r.seconds


def startup_sample(
    ds: Dataset, *, include_retried: bool = False, phase: str | None = None, exclude_jobs: Iterable[str] = ()
) -> Sample:
    """Start-up seconds (or one phase's seconds) of the counted jobs."""
    startups = job_startups(ds, include_retried=include_retried, exclude_jobs=exclude_jobs)
    if phase is None:
        return Sample("startup", tuple(s.seconds for s in startups))
    return Sample(f"startup_{phase}", tuple(s.phases[phase] for s in startups if phase in s.phases))


class StartupSamples(NamedTuple):
    """The start-up values of a slice's counted jobs (see :func:`startup_samples`), in no particular order."""

    #: ``startup_sample(ds).values``
    seconds: list[float]
    #: ``startup_sample(ds, phase=phase).values`` for each phase of :data:`STARTUP_PHASES`
    phases: dict[str, list[float]]
    #: the seconds of each job name (``job_startups``' seconds grouped by :attr:`JobStartup.name`)
    by_job: dict[str, list[float]]


def startup_samples(ds: Dataset, *, include_retried: bool = False, exclude_jobs: Iterable[str] = ()) -> StartupSamples:
    """The values of :func:`startup_sample` for the start-up as a whole and for each phase of
    :data:`STARTUP_PHASES`, and the seconds of each job name, in one pass and in no particular order: the same
    values, each as many times (what a summary and the bootstrap read: they sort them), without a
    :class:`JobStartup` per job nor their sort (``compare`` and ``export`` ask for them over 100,000 jobs at
    50,000 pipelines). ``tests/unit/test_metrics_props.py`` holds them equal to :func:`startup_sample`'s and
    :func:`job_startups`'."""
    if ds.startup_records:
        raise RuntimeError("these pipelines were read for their start-up values only: use startup_seconds")
    excluded = set(exclude_jobs)
    whole: list[float] = []
    by_phase: dict[str, list[float]] = {phase: [] for phase in STARTUP_PHASES}
    by_job: dict[str, list[float]] = {}
    facts_of = ds.facts.get
    phases_of = ds.phases_by_job  # a window's phases, summed by its loader
    sums = phases_of.sums if isinstance(phases_of, PhaseSums) else None  # (as tuples: no dict per job)
    add_prepare, add_sources, add_cache, add_artifacts = (by_phase[phase].append for phase in STARTUP_PHASES)
    no_phases: Mapping[str, float] = {}
    for j in ds.jobs:
        if j.status in NOT_RUN_STATUSES or j.started_at is None or (j.retried and not include_retried):
            continue  # counted_jobs' rule
        if j.name in excluded:
            continue
        facts = facts_of(j.id)
        if facts is None or facts.startup_seconds is None:
            continue
        seconds = facts.startup_seconds
        whole.append(seconds)
        named = by_job.get(j.name)
        if named is None:
            by_job[j.name] = [seconds]
        else:
            named.append(seconds)
        if sums is not None:
            got = sums.get(j.id)
            if got is not None:
                prepare, sources, cache, artifacts = got
                if prepare is not None:
                    add_prepare(prepare)
                if sources is not None:
                    add_sources(sources)
                if cache is not None:
                    add_cache(cache)
                if artifacts is not None:
                    add_artifacts(artifacts)
            continue
        phases = startup_phases(facts) if phases_of is None else phases_of.get(j.id, no_phases)
        for phase, phase_seconds in phases.items():
            by_phase[phase].append(phase_seconds)
    return StartupSamples(whole, by_phase, by_job)


@dataclass(frozen=True, slots=True)
class FirstScript:
    pipeline_id: int
    ref: str
    seconds: float  # pipeline created -> the first script line of any of its jobs


_new_first_script = fast_constructor(FirstScript)


def time_to_first_script(ds: Dataset, *, include_retried: bool = False) -> list[FirstScript]:
    """Per pipeline: seconds from its creation to the first script line of its earliest job.

    A job whose start and start-up are both no earlier than those of the earliest one so far cannot be earlier
    (a sum of two floats does not fall when neither does): its script time is not computed (a ``datetime``'s
    ``timestamp()`` for most of 100,000 jobs in an export at 50,000 pipelines)."""
    # the earliest first script line: (its time as unix seconds, job started, start-up)
    firsts: dict[int, tuple[float, datetime, float]] = {}
    facts_of = ds.facts.get
    for j in counted_jobs(ds, include_retried=include_retried):
        facts = facts_of(j.id)
        if facts is None:
            continue
        startup = facts.startup_seconds
        if startup is None:
            continue
        started: datetime = j.started_at  # type: ignore[assignment]  # (a counted job started)
        seen = firsts.get(j.pipeline_id)
        if seen is None:
            firsts[j.pipeline_id] = (started.timestamp() + startup, started, startup)  # _script_at, inline
        elif started < seen[1] or startup < seen[2]:
            script_at = started.timestamp() + startup
            if script_at < seen[0]:
                firsts[j.pipeline_id] = (script_at, started, startup)
    out = []
    new = _new_first_script
    for p in ds.pipelines:
        first = firsts.get(p.id)
        if first is not None:
            _, started, startup = first
            # a difference of datetimes (exact) plus the start-up, not of two ~1.8e9 s floats (noise near 1e-7 s)
            seconds = (started - p.created_at).total_seconds() + startup
            out.append(new(p.id, p.ref, max(0.0, round(seconds, 6))))
    return out


def _script_at(first: tuple[datetime, float]) -> float:
    return first[0].timestamp() + first[1]
