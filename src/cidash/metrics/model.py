"""The data the metrics read (:class:`Dataset` and what it carries) and the conventions every metric shares:
which jobs count (:func:`counted_jobs`), which values are plausible, image digests. See :mod:`cidash.metrics`."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from cidash.models import (
    DECIDED_STATUSES,
    MAX_DURATION_SECONDS,
    MAX_IMAGE_BYTES,
    NOT_RUN_STATUSES,
    FileChecksum,
    ImageTag,
    Job,
    Pipeline,
    Project,
    TraceFacts,
)
from cidash.specs import Spec
from cidash.stats import Summary, summarize

#: Statuses with a verdict (what rates count) and statuses that never ran a script: :mod:`cidash.models`.
FINISHED_STATUSES = DECIDED_STATUSES


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


class StartupRecord(NamedTuple):
    """A job's start-up as a dataset holds it for a span read for its start-up values only (the baseline of
    ``check`` and ``export``, see :func:`cidash.dataset.load_dataset`): a job that ran and whose log gave a
    start-up, as of the time the dataset was loaded for (``retried``: a later attempt existed by then). What
    :func:`cidash.metrics.startup_seconds` reads, without a :class:`~cidash.models.Job` and its facts."""

    pipeline_id: int
    job_id: int
    name: str
    started_at: datetime
    seconds: float
    retried: bool


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
    #: The start-ups of the pipelines read for their start-up values only (their jobs are not in ``jobs``): see
    #: :class:`StartupRecord`. Slices keep those of their pipelines (none after a job predicate).
    startup_records: tuple[StartupRecord, ...] = ()
    #: Each job's start-up phases (:func:`cidash.metrics.startup_phases`), summed by a loader that left the
    #: start-up sections out of the facts (a window, see :func:`cidash.dataset.load_dataset`); None: from the facts.
    phases_by_job: Mapping[int, Mapping[str, float]] | None = None
    # Derived per-job values (start-ups) shared by every slice made with restrict(): they only depend on the job
    # and its facts, which slices share. Not an init field, so dataclasses.replace() starts a fresh one.
    _memo: dict[object, object] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)
    # Values derived from this slice itself (its start-up list: job_startups), not shared with other slices.
    _own: dict[object, object] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)
    # The time the loader resolved startup_records as of (see records_resolved_at).
    _records_at: datetime | None = field(default=None, init=False, repr=False, compare=False, hash=False)
    # Set by as_of(t): nothing in this dataset happened after it, so as_of(t2 >= t) has nothing to drop.
    _as_of: datetime | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __repr__(self) -> str:
        """Counts, not contents: the generated repr printed every pipeline, job and log fact (hundreds of MB at
        50,000 pipelines) wherever a Dataset was shown (a Periods repr, a traceback's locals, a debugger)."""
        return f"Dataset({self.project_path!r}, {len(self.pipelines)} pipelines, {len(self.jobs)} jobs)"

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
        if job_ok is None:  # (a list made by a comprehension, then the tuple: no generator step per job)
            jobs = tuple([j for j in self.jobs if j.pipeline_id in ids])
        else:
            jobs = tuple([j for j in self.jobs if j.pipeline_id in ids and job_ok(j)])
        if job_ok is not None:
            keep = {j.pipeline_id for j in jobs}
            pipelines = tuple(p for p in pipelines if p.id in keep)
            return self._slice(pipelines, jobs, ())  # a record is no job a predicate can judge
        return self._slice(pipelines, jobs, self._records_of(ids))

    def _records_of(self, pipeline_ids: set[int]) -> tuple[StartupRecord, ...]:
        if not self.startup_records:
            return ()
        return tuple([r for r in self.startup_records if r.pipeline_id in pipeline_ids])

    def _slice(
        self, pipelines: tuple[Pipeline, ...], jobs: tuple[Job, ...], records: tuple[StartupRecord, ...] = ()
    ) -> Dataset:
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
            startup_records=records,
            phases_by_job=self.phases_by_job,
        )
        object.__setattr__(out, "_memo", self._memo)  # same jobs and facts: the derived values still hold
        object.__setattr__(out, "_as_of", self._as_of)
        object.__setattr__(out, "_records_at", self._records_at)
        return out

    def records_resolved_at(self, t: datetime) -> None:
        """Record that :attr:`startup_records` hold the history as of ``t`` (what the loader read them for):
        :meth:`as_of` of ``t`` or later keeps them, an earlier time is refused."""
        object.__setattr__(self, "_records_at", t)

    def _nothing_after(self, t: datetime) -> bool:
        """True when no pipeline, job or tag of the dataset was created or finished after ``t``."""
        return (
            all(p.created_at <= t and (p.finished_at is None or p.finished_at <= t) for p in self.pipelines)
            and all(j.created_at <= t and (j.finished_at is None or j.finished_at <= t) for j in self.jobs)
            and all(tg.created_at is None or tg.created_at <= t for tg in self.image_tags)
        )

    def mark_as_of(self, t: datetime) -> None:
        """Record that nothing in this dataset was created or finished after ``t`` (its loader checked the stored
        times while reading them), so :meth:`as_of` of ``t`` or later returns it as it is without a scan."""
        object.__setattr__(self, "_as_of", t)

    def as_of(self, t: datetime | None) -> Dataset:
        """The history as it stood at ``t`` (``cidash check/compare/export --now``): pipelines and jobs created by
        then, image tags created by then; a job that finished later is shown as it was at ``t`` (``running`` if
        it had started, else ``pending``, without its log facts), and a job retried only after ``t`` was not
        retried yet. ``None``: everything. The CI config is chosen as of ``t`` by :func:`cidash.dataset.load_dataset`.
        """
        if t is None or (self._as_of is not None and t >= self._as_of):
            return self
        if self.startup_records and (self._records_at is None or t < self._records_at):
            # the loader resolved the records as of its time: an earlier time would need them read again
            raise ValueError("the start-up records hold the history as of a later time: load the dataset again")
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
        # the newest attempt of each job that has a retried one (the others' flags cannot change)
        newest: dict[tuple[int, str], int] = {(j.pipeline_id, j.name): j.id for j in kept if j.retried}
        if newest:
            retrying = {pipeline_id for pipeline_id, _ in newest}  # (most jobs' pipelines retried none: no key)
            for j in kept:
                if j.pipeline_id not in retrying:
                    continue
                k = (j.pipeline_id, j.name)
                seen = newest.get(k)
                if seen is not None and j.id > seen:
                    newest[k] = j.id
        # the jobs as they stood at t: most are unchanged, so the few that change are found in passes over the
        # jobs (a window at 50,000 pipelines holds 100,000 jobs; a couple end after t) and replaced in one more
        late = [j for j in kept if j.finished_at is not None and j.finished_at > t]
        facts_of = self.facts.get
        facts: dict[int, TraceFacts] = {j.id: f for j in kept if (f := facts_of(j.id)) is not None}
        changed: dict[int, Job] = {}
        for j in late:  # finished after t: as it stood then, without its log facts
            changed[j.id] = replace(_unfinished_at(j, t), failure_reason=None)
            facts.pop(j.id, None)
        if newest:
            for j in kept:
                if j.retried and newest[(j.pipeline_id, j.name)] == j.id:
                    changed[j.id] = replace(changed.get(j.id, j), retried=False)  # its later attempt came after t
        jobs = [changed.get(j.id, j) for j in kept] if changed else kept
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
            startup_records=self._records_of(ids),
            phases_by_job=self.phases_by_job,
        )
        object.__setattr__(out, "_as_of", t)
        object.__setattr__(out, "_records_at", self._records_at)
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
        record_buckets: list[list[StartupRecord]] = [[] for _ in range(n)]
        for r in self.startup_records:
            i = where.get(r.pipeline_id, -1)
            if i >= 0:
                record_buckets[i].append(r)
        return [
            self._slice(tuple(ps), tuple(js), tuple(rs))
            for ps, js, rs in zip(buckets, job_buckets, record_buckets, strict=True)
        ]

    def on_ref(self, ref: str | None) -> Dataset:
        return self if ref is None else self.restrict(pipeline_ok=lambda p: p.ref == ref)

    def on_ref_between(self, ref: str | None, start: datetime | None, end: datetime | None) -> Dataset:
        """``self.on_ref(ref).between(start, end)`` as one slice (the same pipelines, jobs and records, in the same
        order: a slice keeps the jobs and records of the pipelines it keeps), without the slice of the whole ref
        between (the criteria's periods: a window at 50,000 pipelines holds 100,000 jobs)."""

        def ok(p: Pipeline) -> bool:
            return (
                (ref is None or p.ref == ref)
                and (start is None or p.created_at >= start)
                and (end is None or p.created_at < end)
            )

        return self.restrict(pipeline_ok=ok)

    def between(self, start: datetime | None, end: datetime | None) -> Dataset:
        """Pipelines created in ``[start, end)`` (either bound may be None)."""

        def ok(p: Pipeline) -> bool:
            return (start is None or p.created_at >= start) and (end is None or p.created_at < end)

        return self.restrict(pipeline_ok=ok)

    def select(self, spec: Spec) -> Dataset:
        """The slice a SPEC names (see :mod:`cidash.specs`)."""
        if spec.kind == "all_of":
            kept = [_pipeline_predicate(part) for part in spec.parts]
            if kept and all(ok is not None for ok in kept):
                # every part a pipeline predicate (dates, ref, ids): one slice for their conjunction, not one per
                # part (the same pipelines, jobs and records: a slice keeps the jobs of the pipelines it keeps)
                oks = [ok for ok in kept if ok is not None]
                return self.restrict(pipeline_ok=lambda p: all(ok(p) for ok in oks))
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


def _pipeline_predicate(spec: Spec) -> Callable[[Pipeline], bool] | None:
    """The pipeline predicate :meth:`Dataset.select` slices a SPEC of dates, a ref or pipeline ids with (None
    for the other kinds: commits look at the dataset first, images at jobs)."""
    if spec.kind == "dates":
        start, end = spec.start, spec.end
        return lambda p: (start is None or p.created_at >= start) and (end is None or p.created_at < end)
    if spec.kind == "ref":
        ref = spec.ref
        return None if ref is None else lambda p: p.ref == ref
    if spec.kind == "pipelines":
        lo, hi = spec.first_id or 0, spec.last_id or 0
        return lambda p: lo <= p.id <= hi
    return None


def fast_constructor(cls: type[Any]) -> Callable[..., Any]:
    """A constructor of the frozen, slotted dataclass ``cls`` taking its fields in order, as ``cls(...)`` does,
    without its ``__init__``: a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``
    (~2 µs for a 18-field ``Job``; a window at 50,000 pipelines builds 100,000-120,000 of them). The object is
    made as an instance of an unfrozen twin of ``cls`` with the same slots (no ``__setattr__`` of its own, so
    each field is one plain slot store), then given ``cls`` as its class (allowed: the two lay their slots out
    alike): ~0.5 µs for a ``Job``, where setting each slot through its descriptor took ~1.2 µs. Only for classes
    whose ``__init__`` does nothing else (no ``__post_init__``, no defaults computed: the loader passes every
    field); any other class is returned as is. ``tests/unit/test_fast_constructor.py`` holds the objects equal to
    ``cls(...)``'s."""
    if "__post_init__" in cls.__dict__ or not getattr(cls, "__slots__", None):
        return cls
    names = [f.name for f in fields(cls)]
    if tuple(cls.__slots__) != tuple(names) or cls.__bases__ != (object,):
        return cls  # (inherited or extra slots: the twin would not lay them out alike)
    twin: type[Any] = type(f"_{cls.__name__}Twin", (), {"__slots__": tuple(names)})
    probe: Any = object.__new__(twin)
    try:
        probe.__class__ = cls
    except TypeError:
        return cls
    source = (
        f"def make({', '.join(names)}, *, _new=_new, _twin=_twin, _cls=_cls):\n"
        "    o = _new(_twin)\n"
        + "".join(f"    o.{n} = {n}\n" for n in names)
        + "    o.__class__ = _cls\n    return o\n"
    )
    namespace: dict[str, Any] = {"_new": object.__new__, "_twin": twin, "_cls": cls}
    exec(source, namespace)  # generated from the dataclass's own field names
    made: Callable[..., Any] = namespace["make"]
    return made


_Arg = TypeVar("_Arg")
_Result = TypeVar("_Result")


def by_identity(fn: Callable[[_Arg], _Result]) -> Callable[[_Arg], _Result]:
    """``fn``, computed once per argument object for as long as the returned function lives (one metric's pass
    over a dataset): a window's jobs share one tuple of cache events per distinct log outcome
    (:func:`cidash.dataset.load_dataset`), so a per-job value of the events is computed a few hundred times for
    100,000 jobs. Each argument is kept beside its result, so its id is never reused meanwhile; arguments that are
    equal but distinct objects are each computed (same result: ``fn`` is a function of its argument)."""
    results: dict[int, _Result] = {}
    kept: list[_Arg] = []  # alive as long as ``results``: no other live object can have one of their ids

    def get(arg: _Arg) -> _Result:
        try:
            return results[id(arg)]
        except KeyError:
            result = results[id(arg)] = fn(arg)
            kept.append(arg)
            return result

    return get


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
    """Jobs that ran, without retried attempts unless asked (found once per slice: several metrics of one slice
    ask; each call gets its own list)."""
    asked = ("counted jobs", include_retried)
    got: list[Job] | None = ds._own.get(asked)  # type: ignore[assignment]
    if got is None:
        got = ds._own[asked] = [
            j
            for j in ds.jobs
            if j.status not in NOT_RUN_STATUSES and j.started_at is not None and (include_retried or not j.retried)
        ]
    return list(got)


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
    """The values :func:`plausible_seconds` accepts (its test inline: no call per value)."""
    isfinite, top = math.isfinite, MAX_DURATION_SECONDS
    return tuple(v for v in values if v is not None and isfinite(v) and 0 <= v <= top)


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
