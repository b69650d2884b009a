"""CI health metrics: pure functions over a :class:`Dataset` of cidash models, each result with its ``n``.

Nothing here reads the clock, the store or the network: :mod:`cidash.dataset` loads a :class:`Dataset` from the
store, and callers pass ``now`` where time matters. The TUI, ``cidash check``, ``compare`` and ``export`` all
read these functions.

Conventions shared by every metric:

- **Retried jobs** (a later attempt exists in the same pipeline) are excluded unless ``include_retried=True``;
  the image-build reliability metric looks at attempts explicitly instead.
- **Manual waits** are excluded: jobs whose status is ``manual``/``scheduled``/``created``/``skipped``
  never count, and time to first script only looks at jobs that actually started.
- Quantiles are type 7 (see :mod:`cidash.stats`). Sizes are bytes; MB in reports means 10^6 bytes.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, TypeVar

from cidash.models import (
    DECIDED_STATUSES,
    MAX_DURATION_SECONDS,
    MAX_IMAGE_BYTES,
    NOT_RUN_STATUSES,
    FileChecksum,
    ImageRef,
    ImageTag,
    Job,
    Pipeline,
    Project,
    TraceFacts,
)
from cidash.specs import Spec
from cidash.stats import Summary, rate, summarize

#: Statuses with a verdict (what rates count) and statuses that never ran a script: :mod:`cidash.models`.
FINISHED_STATUSES = DECIDED_STATUSES

#: GitLab ``failure_reason`` values caused by the platform rather than the job's own script.
INFRASTRUCTURE_FAILURES = frozenset(
    {
        "runner_system_failure",
        "stuck_or_timeout_failure",
        "scheduler_failure",
        "api_failure",
        "data_integrity_failure",
        "runner_unsupported",
        "stale_schedule",
        "archived_failure",
        "unmet_prerequisites",
        "missing_dependency_failure",
        "forward_deployment_failure",
        "job_execution_timeout",
        "job_execution_server_timeout",
        "trace_size_exceeded",
        "builds_disabled",
        "environment_creation_failure",
        "deployment_rejected",
        "no_matching_runner",
        "ip_restriction_failure",
    }
)
SCRIPT_FAILURES = frozenset({"script_failure"})

#: A cache key GitLab fell back to because none of the ``key:files`` existed at the pipeline's SHA:
#: ``<prefix>-default``, optionally with the clear-cache counter and the protected/non_protected suffix.
DEFAULT_KEY = re.compile(r"(?:^|-)default(?:-\d+)?(?:-(?:non_)?protected)?$")

#: The phases of a job's start-up (before ``step_script``), as :mod:`cidash.logparse` names them:
#: prepare = resolve_secrets + prepare_executor + prepare_script (image pull included), sources = get_sources +
#: clear_worktree, cache = restore_cache, artifacts = download_artifacts.
STARTUP_PHASES: tuple[str, ...] = ("prepare", "sources", "cache", "artifacts")


# ---------------------------------------------------------------------------------------------------------------
# The data metrics read
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobCacheConfig:
    """One ``cache:`` entry of one job in the CI config (from :mod:`cidash.ciconfig`), as metrics need it."""

    job: str
    index: int
    key: str | None  # the literal key, or a template such as "0-{files}" when computed from files
    key_files: int  # entries in cache:key:files / files_commits (0 = no file-based key)
    policy: str  # "pull-push" (GitLab's default), "pull" or "push"
    resource_group: str | None
    line: int | None = None

    @property
    def writes(self) -> bool:
        return self.policy in ("pull-push", "push")


_Run = TypeVar("_Run", Pipeline, Job)


@dataclass(frozen=True)
class ImageHistory:
    """What the whole history says about the CI image, for a dataset that holds only the periods judged
    (:func:`cidash.dataset.load_window`): computed in the database by :func:`cidash.queries.image_history`.

    ``changes``: :func:`image_digest_changes` of the whole history on ``ref`` (CI image chosen with ``hint``), as
    of ``as_of``; ``split_at``: the creation of each change's pipeline; ``last_digest``: the digest the newest CI-image
    job of any ref ran (``ci_image_jobs(ds, hint)[-1][1]``), asked only when a criterion needs it.
    """

    ref: str
    hint: str | None
    as_of: datetime | None
    changes: tuple[DigestChange, ...]
    split_at: Mapping[int, datetime]
    last_digest: Callable[[], str | None] = field(repr=False, compare=False)

    def fits(self, ref: str, hint: str | None, as_of: datetime | None) -> bool:
        return self.ref == ref and self.hint == hint and self.as_of == as_of


def _unfinished_at(run: _Run, t: datetime) -> _Run:
    """A pipeline or job that finished after ``t``, as it stood at ``t``: running if it had started, else
    pending, with no end and no duration."""
    started = run.started_at is not None and run.started_at <= t
    return replace(
        run,
        status="running" if started else "pending",
        started_at=run.started_at if started else None,
        finished_at=None,
        duration=None,
    )


@dataclass(frozen=True)
class Dataset:
    """Everything the metrics look at for one project: models straight from the store, nothing derived.

    ``facts`` maps job id to the facts parsed from its log (jobs whose log was not fetched have none).
    ``checksums`` hold the critical files at each pipeline SHA. ``ci_caches`` are the cache entries of the CI
    config at ``ci_config_sha`` (the latest SHA of ``ci_config_ref``), empty when the config is unknown.
    """

    project: Project | None
    pipelines: tuple[Pipeline, ...]
    jobs: tuple[Job, ...]
    facts: Mapping[int, TraceFacts] = field(default_factory=dict)
    image_tags: tuple[ImageTag, ...] = ()
    checksums: tuple[FileChecksum, ...] = ()
    ci_caches: tuple[JobCacheConfig, ...] = ()
    ci_config_ref: str | None = None
    ci_config_sha: str | None = None
    ci_config_known: bool = False
    #: Set when the dataset holds only a window of the history (the periods judged): the whole history's CI-image
    #: digest changes, which choose the periods (see :class:`ImageHistory`).
    image_history: ImageHistory | None = None
    # Derived per-job values (start-ups) shared by every slice made with restrict(): they only depend on the job
    # and its facts, which slices share. Not an init field, so dataclasses.replace() starts a fresh one.
    _memo: dict[object, object] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)
    # Set by as_of(t): nothing in this dataset happened after it, so as_of(t2 >= t) has nothing to drop.
    _as_of: datetime | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    @property
    def project_path(self) -> str:
        return self.project.path if self.project else "unknown"

    def default_ref(self, fallback: str = "main") -> str:
        if self.project and self.project.default_branch:
            return self.project.default_branch
        return fallback

    # -- slicing -----------------------------------------------------------------------------------------------

    def restrict(
        self,
        pipeline_ok: Callable[[Pipeline], bool] | None = None,
        job_ok: Callable[[Job], bool] | None = None,
    ) -> Dataset:
        """A dataset with only the pipelines (and their jobs) and jobs the predicates accept."""
        pipelines = tuple(p for p in self.pipelines if pipeline_ok is None or pipeline_ok(p))
        ids = {p.id for p in pipelines}
        jobs = tuple(j for j in self.jobs if j.pipeline_id in ids and (job_ok is None or job_ok(j)))
        if job_ok is not None:
            keep = {j.pipeline_id for j in jobs}
            pipelines = tuple(p for p in pipelines if p.id in keep)
        return self._slice(pipelines, jobs)

    def _slice(self, pipelines: tuple[Pipeline, ...], jobs: tuple[Job, ...]) -> Dataset:
        out = Dataset(
            project=self.project,
            pipelines=pipelines,
            jobs=jobs,
            facts=self.facts,
            image_tags=self.image_tags,
            checksums=self.checksums,
            ci_caches=self.ci_caches,
            ci_config_ref=self.ci_config_ref,
            ci_config_sha=self.ci_config_sha,
            ci_config_known=self.ci_config_known,
            image_history=self.image_history,
        )
        object.__setattr__(out, "_memo", self._memo)  # same jobs and facts: the derived values still hold
        object.__setattr__(out, "_as_of", self._as_of)
        return out

    def _nothing_after(self, t: datetime) -> bool:
        """True when no pipeline, job or tag of the dataset was created or finished after ``t``."""
        return (
            all(p.created_at <= t and (p.finished_at is None or p.finished_at <= t) for p in self.pipelines)
            and all(j.created_at <= t and (j.finished_at is None or j.finished_at <= t) for j in self.jobs)
            and all(tg.created_at is None or tg.created_at <= t for tg in self.image_tags)
        )

    def as_of(self, t: datetime | None) -> Dataset:
        """The history as it stood at ``t`` (``cidash check/compare/export --now``): pipelines and jobs created by
        then, image tags created by then; a job that finished later is shown as it was at ``t`` (``running`` if
        it had started, else ``pending``, without its log facts), and a job retried only after ``t`` was not
        retried yet. ``None``: everything. The CI config is chosen as of ``t`` by :func:`cidash.dataset.load_dataset`.
        """
        if t is None or (self._as_of is not None and t >= self._as_of):
            return self
        if self._nothing_after(t):
            object.__setattr__(self, "_as_of", t)  # a cache, like _memo: the next as_of(t2 >= t) returns at once
            return self
        pipelines: list[Pipeline] = []
        for p in self.pipelines:
            if p.created_at > t:
                continue
            if p.finished_at is not None and p.finished_at > t:
                p = _unfinished_at(p, t)
            pipelines.append(p)
        ids = {p.id for p in pipelines}
        kept = [j for j in self.jobs if j.pipeline_id in ids and j.created_at <= t]
        newest: dict[tuple[int, str], int] = {}
        for j in kept:
            k = (j.pipeline_id, j.name)
            newest[k] = max(newest.get(k, j.id), j.id)
        jobs: list[Job] = []
        facts: dict[int, TraceFacts] = {}
        for j in kept:
            if j.finished_at is not None and j.finished_at > t:
                j = replace(_unfinished_at(j, t), failure_reason=None)
            elif (f := self.facts.get(j.id)) is not None:
                facts[j.id] = f
            if j.retried and newest[(j.pipeline_id, j.name)] == j.id:
                j = replace(j, retried=False)  # its later attempt came after t
            jobs.append(j)
        tags = tuple(tg for tg in self.image_tags if tg.created_at is None or tg.created_at <= t)
        out = Dataset(
            project=self.project,
            pipelines=tuple(pipelines),
            jobs=tuple(jobs),
            facts=facts,
            image_tags=tags,
            checksums=self.checksums,
            ci_caches=self.ci_caches,
            ci_config_ref=self.ci_config_ref,
            ci_config_sha=self.ci_config_sha,
            ci_config_known=self.ci_config_known,
            image_history=self.image_history,
        )
        object.__setattr__(out, "_as_of", t)
        return out

    def split(self, bounds: Sequence[datetime]) -> list[Dataset]:
        """``[self.between(bounds[i], bounds[i + 1]) for i ...]`` in one pass (``bounds`` ascending)."""
        from bisect import bisect_right

        n = len(bounds) - 1
        buckets: list[list[Pipeline]] = [[] for _ in range(n)]
        where: dict[int, int] = {}
        for p in self.pipelines:
            i = bisect_right(bounds, p.created_at) - 1
            if 0 <= i < n:
                buckets[i].append(p)
                where[p.id] = i
        job_buckets: list[list[Job]] = [[] for _ in range(n)]
        for j in self.jobs:
            i = where.get(j.pipeline_id, -1)
            if i >= 0:
                job_buckets[i].append(j)
        return [self._slice(tuple(ps), tuple(js)) for ps, js in zip(buckets, job_buckets, strict=True)]

    def on_ref(self, ref: str | None) -> Dataset:
        return self if ref is None else self.restrict(pipeline_ok=lambda p: p.ref == ref)

    def between(self, start: datetime | None, end: datetime | None) -> Dataset:
        """Pipelines created in ``[start, end)`` (either bound may be None)."""

        def ok(p: Pipeline) -> bool:
            return (start is None or p.created_at >= start) and (end is None or p.created_at < end)

        return self.restrict(pipeline_ok=ok)

    def select(self, spec: Spec) -> Dataset:
        """The slice a SPEC names (see :mod:`cidash.specs`)."""
        if spec.kind == "all_of":
            out = self
            for part in spec.parts:
                out = out.select(part)
            return out
        if spec.kind == "dates":
            return self.between(spec.start, spec.end)
        if spec.kind == "pipelines":
            lo, hi = spec.first_id or 0, spec.last_id or 0
            return self.restrict(pipeline_ok=lambda p: lo <= p.id <= hi)
        if spec.kind == "commits":
            first = [p.created_at for p in self.pipelines if p.sha.startswith(spec.first_sha or "-")]
            last = [p.created_at for p in self.pipelines if p.sha.startswith(spec.last_sha or "-")]
            if not first or not last:
                return self.restrict(pipeline_ok=lambda p: False)
            since, until = min(first), max(last)
            return self.restrict(pipeline_ok=lambda p: since <= p.created_at <= until)
        if spec.kind == "ref":
            return self.on_ref(spec.ref)
        if spec.kind == "image_digest":
            wanted = spec.digest or ""
            return self.restrict(job_ok=lambda j: (job_image_digest(self, j) or "").startswith(wanted))
        tag = spec.tag or ""
        digests = {t.digest for t in self.image_tags if t.name == tag and t.digest}

        def uses_tag(j: Job) -> bool:
            digest = job_image_digest(self, j)
            if digest is not None and digest in digests:
                return True
            facts = self.facts.get(j.id)
            name = facts.image.name if facts and facts.image else ""
            return name.endswith(f":{tag}")

        return self.restrict(job_ok=uses_tag)


def normalize_digest(value: str | None) -> str | None:
    """``registry/path@sha256:abc`` or ``sha256:abc`` -> ``sha256:abc``; anything else -> None."""
    if not value:
        return None
    if "@" in value:
        value = value.rsplit("@", 1)[1]
    return value if value.startswith("sha256:") else None


def job_image_digest(ds: Dataset, job: Job) -> str | None:
    """The image digest the job's log reported (``sha256:...``), if any."""
    facts = ds.facts.get(job.id)
    if facts is None or facts.image is None:
        return None
    return normalize_digest(facts.image.digest)


def counted_jobs(ds: Dataset, *, include_retried: bool = False) -> list[Job]:
    """Jobs that ran, without retried attempts unless asked."""
    return [
        j
        for j in ds.jobs
        if j.status not in NOT_RUN_STATUSES and j.started_at is not None and (include_retried or not j.retried)
    ]


# ---------------------------------------------------------------------------------------------------------------
# Durations
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """A named sample of seconds with its summary; ``n`` is its size."""

    name: str
    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    def summary(self) -> Summary:
        return summarize(self.values)


def plausible_seconds(value: float | None) -> bool:
    """A duration worth counting: known, finite, 0 <= x <= a year. :mod:`cidash.remote.wire` rejects the rest
    at sync time; this keeps a store written before that (or by hand) from reaching a statistic."""
    return value is not None and math.isfinite(value) and 0 <= value <= MAX_DURATION_SECONDS


def plausible_size(value: int | None) -> bool:
    """An image size worth counting: known, 0 < bytes <= 10 TB (0 is GitLab's "not known" for multi-arch)."""
    return value is not None and 0 < value <= MAX_IMAGE_BYTES


def _plausible(values: Iterable[float | None]) -> tuple[float, ...]:
    return tuple(v for v in values if v is not None and plausible_seconds(v))


def pipeline_durations(ds: Dataset) -> Sample:
    """GitLab's ``duration`` (running time, seconds) of finished pipelines."""
    return Sample("pipeline_duration", _plausible(p.duration for p in ds.pipelines if p.status in DECIDED_STATUSES))


def pipeline_queue_times(ds: Dataset) -> Sample:
    """GitLab's ``queued_duration`` (seconds waiting for a runner) of pipelines that report one."""
    return Sample("pipeline_queue", _plausible(p.queued_duration for p in ds.pipelines))


def job_queue_times(ds: Dataset, *, include_retried: bool = False) -> Sample:
    """Jobs' ``queued_duration`` (pending -> picked by a runner), manual jobs never counted."""
    jobs = counted_jobs(ds, include_retried=include_retried)
    return Sample("job_queue", _plausible(j.queued_duration for j in jobs))


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


def startup_phases(facts: TraceFacts) -> dict[str, float]:
    """Seconds spent in each start-up phase (``prepare``, ``sources``, ``cache``, ``artifacts``).

    From :func:`cidash.logparse.phase_durations` (closed runner sections summed), keeping only the phases before
    the script; phases whose sections are absent are left out rather than reported as 0.
    """
    from cidash.logparse import phase_durations

    return {k: v for k, v in phase_durations(facts).items() if k in STARTUP_PHASES}


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
    names = set(job_names) if job_names is not None else None
    excluded = set(exclude_jobs)
    out: list[JobStartup] = []
    memo = ds._memo
    for j in counted_jobs(ds, include_retried=include_retried):
        if (names is not None and j.name not in names) or j.name in excluded:
            continue
        key = ("startup", j.id)
        if key in memo:
            cached = memo[key]
            if isinstance(cached, JobStartup):
                out.append(cached)
            continue
        facts = ds.facts.get(j.id)
        if facts is None or facts.startup_seconds is None or j.started_at is None:
            memo[key] = None
            continue
        startup = JobStartup(
            job_id=j.id,
            pipeline_id=j.pipeline_id,
            name=j.name,
            ref=j.ref,
            started_at=j.started_at,
            seconds=facts.startup_seconds,
            phases=startup_phases(facts),
            image_digest=job_image_digest(ds, j),
        )
        memo[key] = startup
        out.append(startup)
    out.sort(key=lambda s: (s.started_at, s.job_id))
    return out


def startup_sample(
    ds: Dataset, *, include_retried: bool = False, phase: str | None = None, exclude_jobs: Iterable[str] = ()
) -> Sample:
    """Start-up seconds (or one phase's seconds) of the counted jobs."""
    startups = job_startups(ds, include_retried=include_retried, exclude_jobs=exclude_jobs)
    if phase is None:
        return Sample("startup", tuple(s.seconds for s in startups))
    return Sample(f"startup_{phase}", tuple(s.phases[phase] for s in startups if phase in s.phases))


@dataclass(frozen=True, slots=True)
class FirstScript:
    pipeline_id: int
    ref: str
    seconds: float  # pipeline created -> the first script line of any of its jobs


def time_to_first_script(ds: Dataset, *, include_retried: bool = False) -> list[FirstScript]:
    """Per pipeline: seconds from its creation to the first script line of its earliest job."""
    firsts: dict[int, tuple[datetime, float]] = {}  # the earliest first script line: (job started, start-up)
    for j in counted_jobs(ds, include_retried=include_retried):
        facts = ds.facts.get(j.id)
        if facts is None or facts.startup_seconds is None or j.started_at is None:
            continue
        at = (j.started_at, facts.startup_seconds)
        seen = firsts.get(j.pipeline_id)
        if seen is None or _script_at(at) < _script_at(seen):
            firsts[j.pipeline_id] = at
    out = []
    for p in ds.pipelines:
        if p.id in firsts:
            started, startup = firsts[p.id]
            # a difference of datetimes (exact) plus the start-up, not of two ~1.8e9 s floats (noise near 1e-7 s)
            seconds = (started - p.created_at).total_seconds() + startup
            out.append(FirstScript(p.id, p.ref, max(0.0, round(seconds, 6))))
    return out


def _script_at(first: tuple[datetime, float]) -> float:
    return first[0].timestamp() + first[1]


# ---------------------------------------------------------------------------------------------------------------
# Caches
# ---------------------------------------------------------------------------------------------------------------

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
    from cidash.logparse import restores

    counts: dict[str, Counter[str]] = defaultdict(Counter)
    via_fallback: Counter[str] = Counter()
    for j in counted_jobs(ds, include_retried=include_retried):
        facts = ds.facts.get(j.id)
        if facts is None or not facts.cache:
            continue
        for r in restores(facts):
            group = r.key if by == "key" else j.name if by == "job" else j.ref
            outcome = r.outcome if r.outcome in RESTORE_OUTCOMES else "unknown"
            counts[group][outcome] += 1
            if outcome == "hit" and r.via_fallback_key is not None:
                via_fallback[group] += 1
    rates = [OutcomeRate(g, sum(c.values()), dict(c), via_fallback[g]) for g, c in counts.items()]
    rates.sort(key=lambda r: (-r.n, r.group))
    return rates


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


def main_restore_keys(facts: TraceFacts) -> tuple[str, ...]:
    """The keys a job tried first for each of its caches (fallback attempts left out)."""
    return tuple(ev.key for ev in facts.cache if ev.op == "restore" and not _is_fallback(ev.detail))


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
    """
    files = set(critical_files) if critical_files is not None else None
    by_sha = _checksums_by_sha(ds.checksums, files)
    jobs_by_pipeline: dict[int, list[Job]] = defaultdict(list)
    for j in counted_jobs(ds, include_retried=include_retried):
        jobs_by_pipeline[j.pipeline_id].append(j)
    events: list[StaleCacheEvent] = []
    last_by_ref: dict[str, tuple[Pipeline, set[str]]] = {}
    for p in sorted(ds.pipelines, key=lambda p: (p.created_at, p.id)):
        keys: set[str] = set()
        for j in sorted(jobs_by_pipeline.get(p.id, []), key=lambda j: j.id):
            facts = ds.facts.get(j.id)
            if facts is None:
                continue
            for key in main_restore_keys(facts):
                if DEFAULT_KEY.search(key):
                    events.append(StaleCacheEvent("default_key", p.ref, key, p.id, j.started_at or p.created_at, j.id))
                else:
                    keys.add(key)
        if not keys and not jobs_by_pipeline.get(p.id):
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
        if keys:
            last_by_ref[p.ref] = (p, keys)
    events.sort(key=lambda e: (e.at, e.pipeline_id))
    return events


@dataclass(frozen=True, slots=True)
class WriterOverlap:
    """Two jobs that uploaded the same cache key at overlapping times."""

    key: str
    first_job_id: int
    second_job_id: int
    overlap_seconds: float
    at: datetime


def cache_writers(ds: Dataset) -> dict[str, list[Job]]:
    """Per cache key, the jobs that tried to upload it (archive created, failed or unknown), retried ones too."""
    out: dict[str, list[Job]] = defaultdict(list)
    for j in ds.jobs:
        facts = ds.facts.get(j.id)
        if facts is None:
            continue
        for key in {ev.key for ev in facts.cache if ev.op == "archive" and ev.outcome in ("created", "failed")}:
            out[key].append(j)
    return dict(out)


#: The runner sections that upload a cache.
ARCHIVE_SECTIONS = frozenset({"archive_cache", "archive_cache_on_failure"})


def write_window(ds: Dataset, job: Job) -> tuple[float, float] | None:
    """When the job uploaded its cache (unix seconds): its closed ``archive_cache`` section(s) if the log has
    them, else the whole job (``started_at`` -> ``finished_at``); None when neither is known."""
    facts = ds.facts.get(job.id)
    if facts is not None:
        spans = [(s.start, s.end) for s in facts.sections if s.name in ARCHIVE_SECTIONS and s.end is not None]
        if spans:
            return min(a for a, _ in spans), max(b for _, b in spans)
    if job.started_at is None or job.finished_at is None:
        return None
    return job.started_at.timestamp(), job.finished_at.timestamp()


def overlapping_writers(ds: Dataset) -> list[WriterOverlap]:
    """Pairs of jobs uploading one cache key at overlapping times (see :func:`write_window`), oldest first."""
    from datetime import UTC

    overlaps: list[WriterOverlap] = []
    for key, jobs in cache_writers(ds).items():
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


# ---------------------------------------------------------------------------------------------------------------
# The CI image
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageSizePoint:
    tag: str
    digest: str | None
    size_bytes: int
    created_at: datetime | None
    repository: str


def image_size_history(ds: Dataset, repository: str | None = None) -> list[ImageSizePoint]:
    """Image tags with a known, plausible size (:func:`plausible_size`), oldest first; optionally one repository
    only. A negative or absurd size never becomes a point (it would pass ``image_size`` at -0.0 MB)."""
    points = [
        ImageSizePoint(t.name, t.digest, t.total_size, t.created_at, t.repository)
        for t in ds.image_tags
        if t.total_size is not None
        and plausible_size(t.total_size)
        and (repository is None or t.repository == repository)
    ]
    points.sort(key=lambda p: (p.created_at is None, p.created_at or datetime.min, p.tag))
    return points


@dataclass(frozen=True, slots=True)
class DigestChange:
    at: datetime  # start of the first job that ran the new digest
    job_id: int
    pipeline_id: int
    old: str
    new: str
    old_tag: str | None = None  # the registry tag the jobs' image name used on each side (None: not in the name)
    new_tag: str | None = None

    @property
    def same_tag(self) -> bool:
        """Both sides ran the same registry tag: a new push of one tag (a rebuild), not a new image."""
        return self.old_tag is not None and self.old_tag == self.new_tag


def image_tag_of(name: str) -> str | None:
    """``registry:5000/group/app/ci:alpine-2@sha256:...`` -> ``alpine-2``; None when the name has no tag."""
    name = name.split("@", 1)[0]
    _, sep, tail = name.rpartition(":")
    return tail if sep and "/" not in tail and tail else None


@dataclass(frozen=True, slots=True)
class DigestSize:
    """What cidash knows of one image digest's size: ``exact`` when the tag history recorded this digest with a
    size, else estimated from the newest sized push of the tag its jobs ran (``via_tag``)."""

    size_bytes: int
    exact: bool
    via_tag: str | None = None


def digest_sizes(ds: Dataset) -> dict[str, int]:
    """Every plausible size the tag history ever recorded per digest (a tag overwritten or deleted since keeps
    its row in the store, so the sizes of images the registry no longer lists stay known)."""
    out: dict[str, int] = {}
    for t in ds.image_tags:
        if t.digest and t.total_size is not None and plausible_size(t.total_size):
            out[t.digest] = t.total_size
    return out


def tag_sizes(ds: Dataset, repository_hint: str | None = None) -> dict[str, int]:
    """Per tag name, the size of its newest sized push (tags of repositories containing ``repository_hint``)."""
    rows = [
        t
        for t in ds.image_tags
        if t.total_size is not None
        and plausible_size(t.total_size)
        and (not repository_hint or repository_hint in t.repository)
    ]
    rows.sort(key=lambda t: (t.created_at is not None, t.created_at or datetime.min, t.digest or ""))
    return {t.name: t.total_size for t in rows if t.total_size is not None}


def size_of_digest(
    digest: str, tag: str | None, exact: Mapping[str, int], by_tag: Mapping[str, int]
) -> DigestSize | None:
    """``digest``'s size from the tag history, else the size of the tag its jobs ran (job facts), else None."""
    if digest in exact:
        return DigestSize(exact[digest], True)
    if tag is not None and tag in by_tag:
        return DigestSize(by_tag[tag], False, tag)
    return None


def image_repository_of(name: str) -> str:
    """``registry:5000/group/app/ci:tag@sha256:...`` -> ``registry:5000/group/app/ci`` (tag and digest removed)."""
    name = name.split("@", 1)[0]
    head, sep, tail = name.rpartition(":")
    return head if sep and "/" not in tail else name


def ci_image_jobs(ds: Dataset, image_hint: str | None = None) -> list[tuple[Job, str]]:
    """(job, digest) for jobs that ran in the CI image, oldest first.

    The CI image is the one whose name contains ``image_hint`` (the registry repository path, e.g.
    ``platform/app/ci``; a renamed ``platform/app/ci-alpine`` still matches) when any job ran it, else the image
    most jobs ran in.
    """
    named: list[tuple[Job, str, str]] = []
    seen: dict[ImageRef, tuple[str, str | None]] = {}  # a few images for many jobs: parse each name once
    for j in ds.jobs:
        facts = ds.facts.get(j.id)
        if facts is None or facts.image is None or j.started_at is None:
            continue
        parsed = seen.get(facts.image)
        if parsed is None:
            parsed = seen[facts.image] = (image_repository_of(facts.image.name), normalize_digest(facts.image.digest))
        if parsed[1] is None:
            continue
        named.append((j, parsed[0], parsed[1]))
    if not named:
        return []
    chosen = [(j, d) for j, name, d in named if image_hint and image_hint in name]
    if not chosen:
        top = Counter(name for _, name, _ in named).most_common(1)[0][0]
        chosen = [(j, d) for j, name, d in named if name == top]
    chosen.sort(key=lambda jd: (jd[0].started_at or datetime.min, jd[0].id))
    return chosen


def image_digest_changes(ds: Dataset, image_hint: str | None = None) -> list[DigestChange]:
    """Every change of the CI image digest between consecutive jobs (by start time), oldest first, with the tag
    each side's jobs named (from their logs)."""
    changes = []
    previous: str | None = None
    previous_tag: str | None = None
    for j, digest in ci_image_jobs(ds, image_hint):
        facts = ds.facts.get(j.id)
        tag = image_tag_of(facts.image.name) if facts is not None and facts.image is not None else None
        if previous is not None and digest != previous:
            assert j.started_at is not None
            changes.append(DigestChange(j.started_at, j.id, j.pipeline_id, previous, digest, previous_tag, tag))
        previous, previous_tag = digest, tag
    return changes


def image_last_used(ds: Dataset) -> dict[str, datetime]:
    """Per image digest, when a job last started in it (from the jobs' logs): what "last seen" means for an
    image, rather than the last registry sync that listed its tag."""
    out: dict[str, datetime] = {}
    for j in ds.jobs:
        digest = job_image_digest(ds, j)
        if digest is None or j.started_at is None:
            continue
        if digest not in out or j.started_at > out[digest]:
            out[digest] = j.started_at
    return out


@dataclass(frozen=True, slots=True)
class BuildReliability:
    """Image-build job attempts per pipeline. Rates are % of ``n`` (pipelines with a finished first attempt)."""

    job_name: str
    n: int
    first_attempt_successes: int
    eventual_successes: int
    attempts: int
    failures_infrastructure: int
    failures_script: int
    failures_other: int

    @property
    def first_attempt_rate(self) -> float | None:
        return rate(self.first_attempt_successes, self.n)

    @property
    def eventual_rate(self) -> float | None:
        return rate(self.eventual_successes, self.n)


def failure_kind(reason: str | None) -> Literal["infrastructure", "script", "other"]:
    if reason in SCRIPT_FAILURES:
        return "script"
    if reason in INFRASTRUCTURE_FAILURES:
        return "infrastructure"
    return "other"


def image_build_reliability(ds: Dataset, job_name: str) -> BuildReliability:
    """First-attempt and eventual success of ``job_name`` per pipeline; failed attempts split by reason."""
    by_pipeline: dict[int, list[Job]] = defaultdict(list)
    for j in ds.jobs:
        if j.name == job_name:
            by_pipeline[j.pipeline_id].append(j)
    n = first_ok = eventual = attempts = infra = script = other = 0
    for jobs in by_pipeline.values():
        jobs.sort(key=lambda j: (j.created_at, j.id))
        if jobs[0].status not in FINISHED_STATUSES:
            continue
        n += 1
        first_ok += jobs[0].status == "success"
        eventual += any(j.status == "success" for j in jobs)
        for j in jobs:
            if j.status not in FINISHED_STATUSES:
                continue
            attempts += 1
            if j.status == "failed":
                kind = failure_kind(j.failure_reason)
                infra += kind == "infrastructure"
                script += kind == "script"
                other += kind == "other"
    return BuildReliability(job_name, n, first_ok, eventual, attempts, infra, script, other)


@dataclass(frozen=True, slots=True)
class JobOutcomes:
    job_name: str
    n: int
    successes: int
    latest_status: str | None
    latest_job_id: int | None

    @property
    def success_rate(self) -> float | None:
        return rate(self.successes, self.n)


def job_outcomes(ds: Dataset, job_name: str, *, include_retried: bool = False) -> JobOutcomes:
    """Finished runs (success/failed) of one job name, and the latest one."""
    runs = sorted(
        (
            j
            for j in ds.jobs
            if j.name == job_name and j.status in FINISHED_STATUSES and (include_retried or not j.retried)
        ),
        key=lambda j: (j.finished_at or j.created_at, j.id),
    )
    latest = runs[-1] if runs else None
    return JobOutcomes(
        job_name,
        len(runs),
        sum(j.status == "success" for j in runs),
        latest.status if latest else None,
        latest.id if latest else None,
    )
