"""The criteria engine: cidash's success criteria evaluated over a :class:`~cidash.metrics.Dataset`.

The default profile is DESIGN.md's table; every target comes from ``[criteria]`` (and job names / the image
repository / the critical files from ``[image]`` and ``[cache_key]``) in :class:`cidash.config.Config`.

Each criterion ends PASS, FAIL or NO DATA — never PASS without data — with the measured value, the target, the
sample size ``n`` and one sentence of evidence with concrete numbers.

**Periods.** The start-up criterion compares a *baseline* with a *candidate*: the configured ``[criteria]
baseline``/``candidate`` SPECs, or else history on the criteria ref (``[criteria] ref``, default the project's
default branch) split at the migration: baseline = the ``window_days`` before it, candidate = from it on. The
migration is ``[criteria] migration`` (a UTC time or an image digest) when set, else the CI-image digest change
:func:`migration_change` picks: the most recent change whose size moved by >= 10 %, else the most recent of
unknown size to another tag, else the most recent new push of one tag, else the most recent change (sizes from
every tag and digest the store has seen, else from the tag the jobs ran; see :func:`classify_change`). Without
a migration there is no baseline and the criterion is NO DATA. Everything is judged as of ``now``
(:meth:`~cidash.metrics.Dataset.as_of`). The criteria about the *current* state (image-build reliability, stale
caches, observed cache writers, tools verified) look at the candidate period, limited to the last
``window_days``; without a split that is simply the last ``window_days`` on the ref. The evidence of
``startup_improvement`` says which split was used and why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, Protocol

from cidash.config import Config
from cidash.formatting import fmt_seconds, fmt_time, fmt_value
from cidash.metrics import (
    Dataset,
    DigestChange,
    DigestSize,
    ImageSizePoint,
    ci_image_jobs,
    digest_sizes,
    image_build_reliability,
    image_digest_changes,
    image_size_history,
    job_outcomes,
    job_startups,
    never_hit_keys,
    overlapping_writers,
    size_of_digest,
    stale_cache_events,
    tag_sizes,
    unserialised_config_writers,
)
from cidash.models import MB
from cidash.specs import parse_migration, parse_spec, short_digest
from cidash.stats import bootstrap_median_change, median

Status = Literal["pass", "fail", "no_data"]


@dataclass(frozen=True, slots=True)
class CriterionResult:
    """One evaluated criterion. ``comparator`` reads "value <comparator> target passes"."""

    id: str
    title: str
    status: Status
    value: float | None
    target: float
    unit: str
    n: int
    evidence: str
    comparator: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The stable JSON shape (``details`` holds criterion-specific extras)."""
        return {
            "id": self.id,
            "status": self.status,
            "value": None if self.value is None else round(self.value, 3),
            "target": self.target,
            "unit": self.unit,
            "n": self.n,
            "evidence": self.evidence,
            "title": self.title,
            "comparator": self.comparator,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class CriteriaReport:
    project: str
    generated_at: datetime
    criteria: tuple[CriterionResult, ...]
    period: str  # which split / window the current-state criteria looked at
    #: Findings that are not criteria, one sentence each (``cidash check`` prints them on stderr).
    warnings: tuple[str, ...] = ()

    @property
    def any_fail(self) -> bool:
        return any(c.status == "fail" for c in self.criteria)

    @property
    def any_no_data(self) -> bool:
        return any(c.status == "no_data" for c in self.criteria)

    def ok(self, *, strict: bool = False) -> bool:
        """No criterion fails (and, when ``strict``, none lacks data)."""
        return not self.any_fail and not (strict and self.any_no_data)

    def exit_code(self, *, strict: bool = False) -> int:
        return 0 if self.ok(strict=strict) else 1

    def as_dict(self, *, strict: bool = False) -> dict[str, Any]:
        return {
            "ok": self.ok(strict=strict),
            "criteria": [c.as_dict() for c in self.criteria],
            "project": self.project,
            "generated_at": self.generated_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }


# ---------------------------------------------------------------------------------------------------------------
# Periods
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Periods:
    """The baseline and candidate slices the criteria read, and how they were chosen."""

    mode: Literal["specs", "digest", "configured", "window"]
    ref: str | None
    baseline: Dataset | None
    candidate: Dataset
    description: str
    split_at: datetime | None = None
    short: str = ""  # the candidate period in a few words, for evidence sentences
    split_rule: str = ""  # digest mode: the ChangeKind of the change the split used


def _day(d: datetime) -> str:
    return d.astimezone(UTC).date().isoformat()


def ci_image_hint(ds: Dataset, config: Config) -> str | None:
    """The CI image's registry path: ``[image] repository``, else ``<project path>/ci`` (sync's default)."""
    if config.image.repository:
        return config.image.repository
    return f"{ds.project.path}/ci" if ds.project else None


def criteria_ref(ds: Dataset, config: Config) -> str:
    return config.criteria.ref or ds.default_ref()


#: A digest change whose image size moves by less than this fraction is a rebuild, not a migration.
REBUILD_SIZE_TOLERANCE = 0.10

ChangeKind = Literal["migration", "unknown", "same_tag", "rebuild"]

#: The order in which the split prefers digest changes (the most recent change of the first kind found wins).
CHANGE_PREFERENCE: tuple[ChangeKind, ...] = ("migration", "unknown", "same_tag", "rebuild")


@dataclass(frozen=True, slots=True)
class ClassifiedChange:
    """A CI-image digest change and what the stored sizes say about it.

    ``kind``: ``migration`` (both sizes known, moved by >= :data:`REBUILD_SIZE_TOLERANCE`), ``rebuild`` (both
    known, moved less), ``same_tag`` (a size unknown, both sides ran the same registry tag: a new push of one tag)
    or ``unknown`` (a size unknown, the jobs moved to another tag or named none).
    """

    change: DigestChange
    kind: ChangeKind
    old_size: DigestSize | None
    new_size: DigestSize | None


def classify_change(change: DigestChange, exact: dict[str, int], by_tag: dict[str, int]) -> ClassifiedChange:
    """Sizes come from the tag history for the digest itself; a digest the registry no longer lists (its tag was
    overwritten or deleted) takes the size of the tag its jobs ran, unless both sides ran the same tag (that
    estimate would make every new push of a tag look like a rebuild)."""
    tags: dict[str, int] = {} if change.same_tag else by_tag
    old = size_of_digest(change.old, change.old_tag, exact, tags)
    new = size_of_digest(change.new, change.new_tag, exact, tags)
    if old is not None and new is not None:
        moved = abs(new.size_bytes - old.size_bytes) / old.size_bytes
        return ClassifiedChange(change, "migration" if moved >= REBUILD_SIZE_TOLERANCE else "rebuild", old, new)
    return ClassifiedChange(change, "same_tag" if change.same_tag else "unknown", old, new)


def migration_change(changes: list[ClassifiedChange]) -> tuple[ClassifiedChange, int]:
    """The digest change the split uses, and how many later changes it passed over.

    The most recent ``migration``; else the most recent ``unknown``; else the most recent ``same_tag``; else (all
    rebuilds) the most recent change. A change of unknown size never beats a known >= 10 % size change, so the
    verdict does not move when a registry cleanup forgets an old image's size.
    """
    for kind in CHANGE_PREFERENCE:
        for index in range(len(changes) - 1, -1, -1):
            if changes[index].kind == kind:
                return changes[index], len(changes) - 1 - index
    raise ValueError("no digest change")


def _size(size: DigestSize | None) -> str:
    if size is None:
        return "size unknown"
    if size.exact:
        return f"{size.size_bytes / MB:.1f} MB"
    return f"{size.size_bytes / MB:.1f} MB as tag {size.via_tag}"


_WHY: dict[ChangeKind, str] = {
    "migration": "the most recent change whose image size moved by 10 % or more",
    "unknown": "the most recent change to another image tag, as no change with both sizes known moved by 10 % or "
    "more (set [criteria] migration if this is not the migration)",
    "same_tag": "the most recent new push of one tag, as no change moved to another tag or by 10 % or more "
    "(set [criteria] migration if this is not the migration)",
    "rebuild": "the most recent change, as every change kept a similar size",
}


def _configured_split(on_ref: Dataset, ds: Dataset, config: Config, ref: str) -> tuple[datetime | None, str]:
    """The split ``[criteria] migration`` names, and its description (split None: the image never ran)."""
    spec = parse_migration(config.criteria.migration)
    if spec.at is not None:
        return spec.at, f"split at the configured [criteria] migration = {spec.text} on {ref}"
    wanted = spec.digest or ""
    for job, digest in ci_image_jobs(on_ref, ci_image_hint(ds, config)):
        if digest.startswith(wanted):
            at = next((p.created_at for p in on_ref.pipelines if p.id == job.pipeline_id), job.created_at)
            return at, (
                f"split at the configured [criteria] migration = {spec.text}: its first job on {ref} was "
                f"{job.id}, in a pipeline created on {_day(at)}"
            )
    return None, f"no job on {ref} ran the configured [criteria] migration = {spec.text}"


def choose_periods(ds: Dataset, config: Config, now: datetime) -> Periods:
    """Baseline and candidate as the module docstring describes. Raises UsageError for a malformed SPEC.

    Only the history that existed at ``now`` counts (:meth:`Dataset.as_of`)."""
    ds = ds.as_of(now)
    c = config.criteria
    ref = criteria_ref(ds, config)
    window = timedelta(days=c.window_days)
    if c.baseline and c.candidate:
        b, k = parse_spec(c.baseline), parse_spec(c.candidate)
        return Periods(
            "specs",
            None,
            ds.select(b),
            ds.select(k),
            f"configured baseline `{b.text}` vs candidate `{k.text}`",
            short=f"in candidate `{k.text}`",
        )
    on_ref = ds.on_ref(ref)
    if c.migration:
        split, text = _configured_split(on_ref, ds, config, ref)
        if split is not None and split <= now:
            return Periods(
                "configured",
                ref,
                on_ref.between(split - window, split),
                on_ref.between(max(split, now - window), None),
                text,
                split,
                short=f"on {ref} since {_day(max(split, now - window))}",
            )
        if split is not None:
            text = f"the configured [criteria] migration = {c.migration} is after {_day(now)}"
        return Periods(
            "window",
            ref,
            None,
            on_ref.between(now - window, None),
            f"{text}: the last {c.window_days} days on {ref}, no baseline",
            short=f"on {ref} in the last {c.window_days} days",
        )
    hint = ci_image_hint(ds, config)
    history = ds.image_history if ds.image_history is not None and ds.image_history.fits(ref, hint, now) else None
    # A windowed dataset (the periods only) carries the whole history's digest changes, found in the database.
    changes = list(history.changes) if history is not None else image_digest_changes(on_ref, hint)
    if changes:
        exact, by_tag = digest_sizes(ds), tag_sizes(ds, hint)
        classified = [classify_change(ch, exact, by_tag) for ch in changes]
        chosen, later = migration_change(classified)
        change = chosen.change
        # Split at the creation of the pipeline whose job first ran the new digest, so that pipeline counts.
        if history is not None:
            split = history.split_at.get(change.pipeline_id, change.at)
        else:
            split = next((p.created_at for p in on_ref.pipelines if p.id == change.pipeline_id), change.at)
        baseline = on_ref.between(split - window, split)
        candidate = on_ref.between(max(split, now - window), None)
        skipped = (
            f"; the {later} later change{'s stay' if later != 1 else ' stays'} in the candidate as "
            f"{'rebuilds' if later != 1 else 'a rebuild'}"
            if later
            else ""
        )
        among = f"of {len(changes)} digest changes, " if len(changes) > 1 else ""
        return Periods(
            "digest",
            ref,
            baseline,
            candidate,
            f"split at the CI-image digest change on {ref} on {_day(split)} "
            f"({short_digest(change.old)} -> {short_digest(change.new)}, {_size(chosen.old_size)} -> "
            f"{_size(chosen.new_size)}, job {change.job_id}): {among}{_WHY[chosen.kind]}{skipped}",
            split,
            short=f"on {ref} since {_day(max(split, now - window))}",
            split_rule=chosen.kind,
        )
    return Periods(
        "window",
        ref,
        None,
        on_ref.between(now - window, None),
        f"no CI-image digest change on {ref}: the last {c.window_days} days",
        short=f"on {ref} in the last {c.window_days} days",
    )


# ---------------------------------------------------------------------------------------------------------------
# The criteria
# ---------------------------------------------------------------------------------------------------------------


def _result(  # noqa: PLR0917
    cid: str,
    status: Status,
    value: float | None,
    target: float,
    unit: str,
    n: int,
    evidence: str,
    comparator: str,
    **details: Any,
) -> CriterionResult:
    return CriterionResult(cid, TITLES[cid], status, value, target, unit, n, evidence, comparator, dict(details))


def eval_image_size(ds: Dataset, config: Config, periods: Periods) -> CriterionResult:
    """The size of the image the newest CI-image job ran (by digest), else of the newest tag."""
    target = config.criteria.image_size_mb
    points = image_size_history(ds, config.image.repository)
    if not points:
        return _result(
            "image_size",
            "no_data",
            None,
            target,
            "MB",
            0,
            "no CI-image tag with a registry size in the store"
            + (f" for repository {config.image.repository}" if config.image.repository else ""),
            "<=",
        )
    last: str | None
    if not periods.candidate.jobs and ds.image_history is not None:
        last = ds.image_history.last_digest()  # the dataset holds a window: the database knows the newest job
    else:
        used = ci_image_jobs(periods.candidate if periods.candidate.jobs else ds, ci_image_hint(ds, config))
        last = used[-1][1] if used else None
    chosen = None
    how = "newest tag"
    if last is not None:
        digest = last
        matching = [p for p in points if p.digest == digest]
        named = [p for p in matching if p.tag != "latest"]  # a versioned tag says more than "latest"
        if matching:
            chosen = (named or matching)[-1]
            how = "image the newest jobs ran"
    if chosen is None:
        chosen = points[-1]
    mb = chosen.size_bytes / MB
    status: Status = "pass" if mb <= target else "fail"
    when = f", created {_day(chosen.created_at)}" if chosen.created_at else ""
    digest_text = f" ({short_digest(chosen.digest)})" if chosen.digest else ""
    evidence = (
        f"{how}: `{chosen.repository}:{chosen.tag}`{digest_text} is {mb:.1f} MB (10^6 bytes){when}, "
        f"target <= {target:g} MB."
    )
    return _result("image_size", status, mb, target, "MB", 1, evidence, "<=", tag=chosen.tag, digest=chosen.digest)


def startup_values(ds: Dataset, *, include_retried: bool = False, exclude_jobs: tuple[str, ...] = ()) -> list[float]:
    """Start-up seconds of the counted jobs, without the ``exclude_jobs`` (the image-build job)."""
    return [s.seconds for s in job_startups(ds, include_retried=include_retried, exclude_jobs=exclude_jobs)]


def eval_startup(config: Config, periods: Periods, *, include_retried: bool = False, seed: int = 0) -> CriterionResult:
    """Median start-up improvement (% faster) from baseline to candidate, with a 95 % bootstrap interval."""
    target = config.criteria.startup_improvement_pct
    min_n = config.criteria.min_n
    if periods.baseline is None:
        return _result(
            "startup_improvement",
            "no_data",
            None,
            target,
            "%",
            0,
            f"no baseline: {periods.description}; set [criteria] baseline and candidate SPECs.",
            ">=",
        )
    skip = (config.image.build_job,)
    base = startup_values(periods.baseline, include_retried=include_retried, exclude_jobs=skip)
    cand = startup_values(periods.candidate, include_retried=include_retried, exclude_jobs=skip)
    n = len(base) + len(cand)
    details: dict[str, Any] = {"n_baseline": len(base), "n_candidate": len(cand), "split": periods.description}
    if len(base) < min_n or len(cand) < min_n:
        return _result(
            "startup_improvement",
            "no_data",
            None,
            target,
            "%",
            n,
            f"not enough data: {len(base)} baseline and {len(cand)} candidate job start-ups (minimum {min_n} "
            f"each); {periods.description}.",
            ">=",
            **details,
        )
    ci = bootstrap_median_change(base, cand, seed=seed)
    mb, mc = median(base), median(cand)
    if ci.change_pct is None or mb is None or mc is None:
        return _result(
            "startup_improvement",
            "no_data",
            None,
            target,
            "%",
            n,
            f"baseline median start-up is 0 s; {periods.description}.",
            ">=",
            **details,
        )
    improvement = -ci.change_pct
    status: Status = "pass" if improvement >= target else "fail"
    details.update(
        baseline_median=mb,
        candidate_median=mc,
        change_pct=ci.change_pct,
        ci_low_pct=ci.low_pct,
        ci_high_pct=ci.high_pct,
        confidence=ci.confidence,
    )
    interval = f", 95 % interval {ci.low_pct:+.0f} % to {ci.high_pct:+.0f} %" if ci.available else ""
    evidence = (
        f"median job start-up {mb:.1f} s -> {mc:.1f} s ({ci.change_pct:+.1f} %{interval}) over {len(base)} "
        f"baseline and {len(cand)} candidate job start-ups; {periods.description}."
    )
    return _result("startup_improvement", status, improvement, target, "% faster", n, evidence, ">=", **details)


def eval_build_reliability(config: Config, periods: Periods) -> CriterionResult:
    target = config.criteria.image_build_reliability_pct
    job = config.image.build_job
    r = image_build_reliability(periods.candidate, job)
    if r.n == 0 or r.first_attempt_rate is None:
        return _result(
            "image_build_reliability",
            "no_data",
            None,
            target,
            "%",
            0,
            f"no finished `{job}` job {periods.short}.",
            ">",
        )
    if r.n < config.criteria.min_n:
        return _result(
            "image_build_reliability",
            "no_data",
            None,
            target,
            "%",
            r.n,
            f"not enough data: only {r.n} pipelines ran `{job}` {periods.short} ({r.first_attempt_successes} "
            f"succeeded on the first attempt), fewer than [criteria] min_n = {config.criteria.min_n}.",
            ">",
            first_attempt_successes=r.first_attempt_successes,
        )
    status: Status = "pass" if r.first_attempt_rate > target else "fail"
    evidence = (
        f"`{job}` succeeded on the first attempt in {r.first_attempt_successes} of {r.n} pipelines "
        f"({r.first_attempt_rate:.1f} %), eventually in {r.eventual_successes}; failed attempts: "
        f"{r.failures_script} script, {r.failures_infrastructure} infrastructure, {r.failures_other} other, "
        f"{periods.short}."
    )
    return _result(
        "image_build_reliability",
        status,
        r.first_attempt_rate,
        target,
        "%",
        r.n,
        evidence,
        ">",
        eventual_rate=r.eventual_rate,
        failures_script=r.failures_script,
        failures_infrastructure=r.failures_infrastructure,
        failures_other=r.failures_other,
    )


def eval_stale_caches(config: Config, periods: Periods, *, include_retried: bool = False) -> CriterionResult:
    target = config.criteria.stale_caches_max
    ds = periods.candidate
    restoring = [
        j for j in ds.jobs if (f := ds.facts.get(j.id)) is not None and any(ev.op == "restore" for ev in f.cache)
    ]
    n = len(restoring)
    if n == 0:
        return _result(
            "stale_caches",
            "no_data",
            None,
            target,
            "events",
            0,
            f"no job restored a cache {periods.short}.",
            "<=",
        )
    events = stale_cache_events(ds, config.cache_key.files, include_retried=include_retried)
    count = len(events)
    status: Status = "pass" if count <= target else "fail"
    if not events:
        evidence = f"0 stale cache restores among {n} jobs that restored a cache {periods.short}."
    else:
        defaults = Counter(e.key for e in events if e.kind == "default_key")
        unchanged = [e for e in events if e.kind == "unchanged_key"]
        parts = []
        if defaults:
            key, uses = defaults.most_common(1)[0]
            first = min(e.at for e in events if e.kind == "default_key" and e.key == key)
            parts.append(f"key `{key}` used by {uses} jobs since {_day(first)}")
        if unchanged:
            e = unchanged[-1]
            parts.append(
                f"key `{e.key}` stayed the same while {', '.join(e.changed_files)} changed between pipelines "
                f"#{e.previous_pipeline_id} and #{e.pipeline_id} ({len(unchanged)} such events)"
            )
        evidence = f"{count} stale cache events {periods.short}: " + "; ".join(parts) + "."
    return _result(
        "stale_caches",
        status,
        float(count),
        float(target),
        "events",
        n,
        evidence,
        "<=",
        default_key_events=sum(e.kind == "default_key" for e in events),
        unchanged_key_events=sum(e.kind == "unchanged_key" for e in events),
    )


def _config_where(ds: Dataset) -> str:
    sha = f" @ {ds.ci_config_sha[:8]}" if ds.ci_config_sha else ""
    return f"the CI config of {ds.ci_config_ref or 'the default branch'}{sha}"


def eval_cache_key_files(ds: Dataset, config: Config) -> CriterionResult:
    target = config.criteria.cache_key_files_max
    if not ds.ci_config_known:
        return _result(
            "cache_key_files", "no_data", None, float(target), "files", 0, "no CI config in the store.", "<="
        )
    with_files = [c for c in ds.ci_caches if c.key_files > 0]
    if not with_files:
        return _result(
            "cache_key_files",
            "pass",
            0.0,
            float(target),
            "files",
            len(ds.ci_caches),
            f"{_config_where(ds)} has {len(ds.ci_caches)} cache entries and none uses cache:key:files.",
            "<=",
        )
    worst = max(with_files, key=lambda c: (c.key_files, c.job))
    status: Status = "pass" if worst.key_files <= target else "fail"
    line = f" (line {worst.line})" if worst.line else ""
    entries = "entry" if worst.key_files == 1 else "entries"
    evidence = (
        f"job `{worst.job}` cache {worst.index}{line} lists {worst.key_files} {entries} in cache:key:files, the most "
        f"of {len(with_files)} file-keyed caches in {_config_where(ds)}; target <= {target}."
    )
    return _result(
        "cache_key_files", status, float(worst.key_files), float(target), "files", len(with_files), evidence, "<="
    )


def eval_cache_writers(ds: Dataset, config: Config, periods: Periods) -> CriterionResult:
    target = config.criteria.cache_writers_max
    unserialised = unserialised_config_writers(ds.ci_caches) if ds.ci_config_known else []
    config_jobs = sum(len(u.jobs) for u in unserialised)
    overlaps = overlapping_writers(periods.candidate)
    from cidash.metrics import cache_writers as observed_writers

    writers = observed_writers(periods.candidate)
    n_observed = len({j.id for jobs in writers.values() for j in jobs})
    if not ds.ci_config_known and n_observed == 0:
        return _result(
            "cache_writers",
            "no_data",
            None,
            float(target),
            "writers",
            0,
            f"no CI config in the store and no cache upload observed {periods.short}.",
            "<=",
        )
    value = config_jobs + len(overlaps)
    status: Status = "pass" if value <= target else "fail"
    parts = []
    if ds.ci_config_known:
        if unserialised:
            u = unserialised[0]
            parts.append(
                f"{config_jobs} writer jobs without a resource_group share a key in {_config_where(ds)} "
                f"(e.g. `{u.key}`: {', '.join(u.jobs)})"
            )
        else:
            parts.append(f"every shared cache key in {_config_where(ds)} is written by serialised jobs")
    if overlaps:
        keys = Counter(o.key for o in overlaps)
        key, count = keys.most_common(1)[0]
        parts.append(f"{len(overlaps)} overlapping uploads observed (key `{key}`: {count})")
    else:
        parts.append(f"no overlapping uploads among {n_observed} writer jobs observed")
    evidence = "; ".join(parts) + f", {periods.short}."
    return _result(
        "cache_writers",
        status,
        float(value),
        float(target),
        "writers",
        n_observed + config_jobs,
        evidence,
        "<=",
        config_writers=config_jobs,
        observed_overlaps=len(overlaps),
    )


def eval_tools_verified(config: Config, periods: Periods) -> CriterionResult:
    job = config.image.verify_job
    out = job_outcomes(periods.candidate, job)
    if out.n == 0 or out.success_rate is None:
        return _result(
            "tools_verified",
            "no_data",
            None,
            100.0,
            "%",
            0,
            f"no finished `{job}` job {periods.short}.",
            ">=",
        )
    status: Status = "pass" if out.successes == out.n else "fail"
    evidence = (
        f"`{job}` passed {out.successes} of {out.n} runs {periods.short}, latest job {out.latest_job_id} "
        f"{out.latest_status}."
    )
    return _result("tools_verified", status, out.success_rate, 100.0, "%", out.n, evidence, ">=")


def evaluate(
    ds: Dataset,
    config: Config,
    now: datetime,
    *,
    include_retried: bool = False,
    only: tuple[str, ...] | None = None,
    seed: int = 0,
    periods: Periods | None = None,
) -> CriteriaReport:
    """Evaluate every criterion of :data:`REGISTRY` (or those in ``only``) over ``ds``, in registry order.

    ``periods``: ``choose_periods(ds, config, now)`` when the caller has it already (computed here otherwise).
    Only the history that existed at ``now`` counts (:meth:`Dataset.as_of`).
    """
    ds = ds.as_of(now)
    if periods is None:
        periods = choose_periods(ds, config, now)
    ctx = EvalContext(ds, config, periods, include_retried=include_retried, seed=seed)
    wanted = only or CRITERIA_IDS
    results = tuple(c.evaluate(ctx) for c in REGISTRY.values() if c.id in wanted)
    return CriteriaReport(
        ds.project_path, now, results, periods.description, cache_warnings(periods, include_retried=include_retried)
    )


def cache_warnings(periods: Periods, *, include_retried: bool = False) -> tuple[str, ...]:
    """A warning per cache key restored at least :data:`~cidash.metrics.NEVER_HIT_MIN_RESTORES` times in the
    candidate period without a single hit (a fallback hit counts as a hit)."""
    out = []
    for r in never_hit_keys(periods.candidate, include_retried=include_retried):
        misses = r.outcomes.get("miss", 0)
        failed = r.outcomes.get("failed", 0)
        failed_text = f" and {failed} failed" if failed else ""
        out.append(
            f"cache key `{r.group}` was restored {r.known} times {periods.short} and never hit "
            f"({misses} misses{failed_text}, 0 % hit rate): its key changes every pipeline, or nothing uploads it."
        )
    return tuple(out)


# ---------------------------------------------------------------------------------------------------------------
# Details in words (evidence views)
# ---------------------------------------------------------------------------------------------------------------

#: details key -> (label, unit) for the evidence views; keys not listed are not shown there.
DETAIL_LABELS: dict[str, tuple[str, str]] = {
    "tag": ("Image tag", ""),
    "digest": ("Image digest", ""),
    "n_baseline": ("Baseline job start-ups", ""),
    "n_candidate": ("Candidate job start-ups", ""),
    "baseline_median": ("Baseline median start-up", "s"),
    "candidate_median": ("Candidate median start-up", "s"),
    "change_pct": ("Change of the median", "%"),
    "first_attempt_successes": ("Pipelines whose first attempt succeeded", ""),
    "eventual_rate": ("Pipelines that succeeded eventually", "%"),
    "failures_script": ("Failed attempts: script", ""),
    "failures_infrastructure": ("Failed attempts: infrastructure", ""),
    "failures_other": ("Failed attempts: other", ""),
    "default_key_events": ("Restores on a default key (no key:files found)", ""),
    "unchanged_key_events": ("Key unchanged while a critical file changed", ""),
    "config_writers": ("Writer jobs without a resource_group sharing a key", ""),
    "observed_overlaps": ("Overlapping uploads observed", ""),
}


def _detail_value(value: Any, unit: str) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f} {unit}".rstrip()
    if isinstance(value, int):
        return f"{value} {unit}".rstrip()
    text = str(value)
    return short_digest(text) if text.startswith("sha256:") else text


def detail_rows(details: dict[str, Any]) -> list[tuple[str, str]]:
    """A criterion's ``details`` as labelled rows in words, for the evidence views: ``("Baseline median start-up",
    "26.8 s")``, the bootstrap interval as one row (``"95 % interval of the change", "-42.0 % to -40.1 %"``).
    Internal keys (the split, already in the sentence) are left out."""
    rows: list[tuple[str, str]] = []
    for key, (label, unit) in DETAIL_LABELS.items():
        if key in details and details[key] is not None:
            value = details[key]
            text = f"{value:+.1f} %" if key == "change_pct" and isinstance(value, float) else _detail_value(value, unit)
            rows.append((label, text))
        if key == "change_pct" and details.get("ci_low_pct") is not None and details.get("ci_high_pct") is not None:
            level = details.get("confidence") or 0.95
            rows.append(
                (
                    f"{level * 100:.0f} % interval of the change",
                    f"{details['ci_low_pct']:+.1f} % to {details['ci_high_pct']:+.1f} %",
                )
            )
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Daily series (TUI sparklines)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DailyPoint:
    day: date
    value: float | None  # None: nothing measured that day
    n: int


def criterion_daily_series(
    ds: Dataset, config: Config, criterion_id: str, *, days: int = 30, now: datetime
) -> list[DailyPoint]:
    """One point per UTC day for the last ``days`` days (oldest first) of the measure behind a criterion.

    The measures (each criterion's ``series_unit`` in :data:`REGISTRY`): ``image_size`` the size of the newest
    sized tag created up to that day; ``startup_improvement`` the day's median job start-up in seconds (the
    improvement itself needs two periods); ``image_build_reliability`` first-attempt success %; ``stale_caches``
    stale events; ``cache_writers`` overlapping uploads; ``tools_verified`` % of verify runs passed;
    ``cache_key_files`` is a property of the current CI config only, so every day carries today's value.
    All on the criteria ref.
    """
    criterion = REGISTRY.get(criterion_id)
    if criterion is None:
        raise ValueError(f"unknown criterion {criterion_id!r}")
    ref = criteria_ref(ds, config)
    on_ref = ds.on_ref(ref)
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    out: list[DailyPoint] = []
    sizes = image_size_history(ds, config.image.repository)
    starts = [datetime(d.year, d.month, d.day, tzinfo=UTC) for d in (first + timedelta(days=i) for i in range(days))]
    day_slices = on_ref.split([*starts, starts[-1] + timedelta(days=1)]) if days else []
    for i in range(days):
        value, n = criterion.day_value(DayContext(ds, day_slices[i], starts[i], config, sizes))
        out.append(DailyPoint(first + timedelta(days=i), value, n))
    return out


# ---------------------------------------------------------------------------------------------------------------
# The registry: one entry per criterion, feeding evaluation, the Health table, sparklines, evidence and exports
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalContext:
    """What a criterion is evaluated over: the whole dataset, the chosen periods and the options."""

    ds: Dataset
    config: Config
    periods: Periods
    include_retried: bool = False
    seed: int = 0

    def on_baseline(self) -> EvalContext | None:
        """This context with the baseline period as the candidate (None without a baseline with pipelines)."""
        p = self.periods
        if p.baseline is None or not p.baseline.pipelines:
            return None
        base = Periods(p.mode, p.ref, None, p.baseline, f"baseline: {p.description}")
        return EvalContext(self.ds, self.config, base, self.include_retried, self.seed)


@dataclass(frozen=True)
class DayContext:
    """One UTC day of a daily series: the whole dataset, the day's slice on the criteria ref, the day's start,
    and the image-size history (computed once per series)."""

    ds: Dataset
    day: Dataset
    start: datetime
    config: Config
    sizes: list[ImageSizePoint]


#: An evidence table: column titles and rows of cells.
EvidenceTable = tuple[tuple[str, ...], Sequence[tuple[str, ...]]]


class Criterion(Protocol):
    """One success criterion. ``unit`` is the unit of its value; ``series_unit`` that of its daily measure;
    ``measure_unit`` that of what its baseline and change are told in (the value's unit when empty)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def short_title(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def series_unit(self) -> str: ...
    @property
    def measure_unit(self) -> str: ...

    def evaluate(self, ctx: EvalContext) -> CriterionResult: ...
    def day_value(self, ctx: DayContext) -> tuple[float | None, int]: ...
    def baseline(self, ctx: EvalContext, result: CriterionResult) -> float | None: ...
    def measure(self, result: CriterionResult) -> float | None: ...
    def evidence(self, ctx: EvalContext) -> EvidenceTable: ...


def _rerun_on_baseline(crit: Criterion, ctx: EvalContext, result: CriterionResult) -> float | None:
    """The criterion's value over the baseline period (the current-state criteria)."""
    base = ctx.on_baseline()
    return crit.evaluate(base).value if base is not None else None


@dataclass(frozen=True)
class RegisteredCriterion:
    """A :class:`Criterion` made of functions (what :data:`REGISTRY` holds)."""

    id: str
    title: str
    short_title: str
    unit: str
    series_unit: str
    evaluator: Callable[[EvalContext], CriterionResult]
    day: Callable[[DayContext], tuple[float | None, int]]
    evidence_table: Callable[[EvalContext], EvidenceTable]
    baseline_of: Callable[[Criterion, EvalContext, CriterionResult], float | None] | None = _rerun_on_baseline
    measure_of: Callable[[CriterionResult], float | None] | None = None
    measure_unit: str = ""

    def evaluate(self, ctx: EvalContext) -> CriterionResult:
        return self.evaluator(ctx)

    def day_value(self, ctx: DayContext) -> tuple[float | None, int]:
        return self.day(ctx)

    def baseline(self, ctx: EvalContext, result: CriterionResult) -> float | None:
        return self.baseline_of(self, ctx, result) if self.baseline_of is not None else None

    def measure(self, result: CriterionResult) -> float | None:
        return self.measure_of(result) if self.measure_of is not None else result.value

    def evidence(self, ctx: EvalContext) -> EvidenceTable:
        return self.evidence_table(ctx)


# -- daily measures ---------------------------------------------------------------------------------------------


def _day_image_size(c: DayContext) -> tuple[float | None, int]:
    upto = [p for p in c.sizes if p.created_at is not None and p.created_at < c.start + timedelta(days=1)]
    return (upto[-1].size_bytes / MB, 1) if upto else (None, 0)


def _day_startup(c: DayContext) -> tuple[float | None, int]:
    vals = startup_values(c.day, exclude_jobs=(c.config.image.build_job,))
    return median(vals), len(vals)


def _day_build_reliability(c: DayContext) -> tuple[float | None, int]:
    r = image_build_reliability(c.day, c.config.image.build_job)
    return r.first_attempt_rate, r.n


def _day_stale_caches(c: DayContext) -> tuple[float | None, int]:
    n = len(c.day.jobs)
    return (float(len(stale_cache_events(c.day, c.config.cache_key.files))) if n else None), n


def _day_cache_writers(c: DayContext) -> tuple[float | None, int]:
    n = len(c.day.jobs)
    return (float(len(overlapping_writers(c.day))) if n else None), n


def _day_tools_verified(c: DayContext) -> tuple[float | None, int]:
    o = job_outcomes(c.day, c.config.image.verify_job)
    return o.success_rate, o.n


def _day_cache_key_files(c: DayContext) -> tuple[float | None, int]:
    value = float(max((x.key_files for x in c.ds.ci_caches), default=0)) if c.ds.ci_config_known else None
    return value, len(c.ds.ci_caches)


# -- evidence tables ------------------------------------------------------------------------------------------


def _evidence_image_size(ctx: EvalContext) -> EvidenceTable:
    rows = [
        (p.tag, short_digest(p.digest or ""), fmt_value(p.size_bytes / MB, "MB", column=True), fmt_time(p.created_at))
        for p in reversed(image_size_history(ctx.ds, ctx.config.image.repository))
    ]
    return ("tag", "digest", "size", "created"), rows


def _evidence_startup(ctx: EvalContext) -> EvidenceTable:
    """The candidate's start-ups the criterion counts (the image-build job left out), slowest first."""
    skip = (ctx.config.image.build_job,)
    counted = job_startups(ctx.periods.candidate, include_retried=ctx.include_retried, exclude_jobs=skip)
    rows = [
        (
            str(s.job_id),
            f"#{s.pipeline_id}",
            s.name,
            fmt_time(s.started_at),
            fmt_seconds(s.seconds),
            short_digest(s.image_digest or ""),
        )
        for s in sorted(counted, key=lambda s: -s.seconds)[:200]
    ]
    return ("job", "pipeline", "name", "started", "start-up", "digest"), rows


def _job_runs(ctx: EvalContext, name: str, *, keep_retried: bool) -> EvidenceTable:
    """The ``name`` jobs the criterion's sentence counts: finished runs only (a manual job nobody played is not a
    run); every attempt for the image build, runs that were not retried for the verify job."""
    from cidash.metrics import FINISHED_STATUSES

    counted = (
        j
        for j in ctx.periods.candidate.jobs
        if j.name == name and j.status in FINISHED_STATUSES and (keep_retried or not j.retried)
    )
    jobs = sorted(counted, key=lambda j: (j.created_at, j.id))
    rows = [
        (
            str(j.id),
            f"#{j.pipeline_id}",
            j.status,
            j.failure_reason or "",
            fmt_time(j.created_at),
            "yes" if j.retried else "",
        )
        for j in reversed(jobs)
    ]
    return ("job", "pipeline", "status", "reason", "created", "retried"), rows


def _evidence_stale_caches(ctx: EvalContext) -> EvidenceTable:
    events = stale_cache_events(ctx.periods.candidate, ctx.config.cache_key.files)
    rows = [(e.kind, e.key, f"#{e.pipeline_id}", fmt_time(e.at), ", ".join(e.changed_files)) for e in reversed(events)]
    return ("kind", "key", "pipeline", "at", "changed files"), rows


def _evidence_cache_key_files(ctx: EvalContext) -> EvidenceTable:
    rows = [(c.job, str(c.index), c.key or "", str(c.key_files), c.policy, str(c.line or "")) for c in ctx.ds.ci_caches]
    return ("job", "cache", "key", "key:files entries", "policy", "line"), rows


def _evidence_cache_writers(ctx: EvalContext) -> EvidenceTable:
    ds = ctx.ds
    rows: list[tuple[str, ...]] = [
        ("config: no resource_group", u.key, ", ".join(u.jobs), "", "")
        for u in (unserialised_config_writers(ds.ci_caches) if ds.ci_config_known else [])
    ]
    rows.extend(
        (
            "observed overlap",
            o.key,
            f"{o.first_job_id}, {o.second_job_id}",
            fmt_seconds(o.overlap_seconds),
            fmt_time(o.at),
        )
        for o in overlapping_writers(ctx.periods.candidate)
    )
    return ("kind", "key", "jobs", "overlap", "at"), rows


def _baseline_median(crit: Criterion, ctx: EvalContext, result: CriterionResult) -> float | None:
    value = result.details.get("baseline_median")
    return float(value) if value is not None else None


def _candidate_median(result: CriterionResult) -> float | None:
    value = result.details.get("candidate_median")
    return float(value) if value is not None else None


_CRITERIA: tuple[RegisteredCriterion, ...] = (
    RegisteredCriterion(
        "image_size",
        "CI image size",
        "CI image size",
        "MB",
        "MB",
        lambda c: eval_image_size(c.ds, c.config, c.periods),
        _day_image_size,
        _evidence_image_size,
    ),
    RegisteredCriterion(
        "startup_improvement",
        "Job start-up, candidate vs baseline",
        "Job start-up",
        "% faster",
        "s (median start-up)",
        lambda c: eval_startup(c.config, c.periods, include_retried=c.include_retried, seed=c.seed),
        _day_startup,
        _evidence_startup,
        baseline_of=_baseline_median,
        measure_of=_candidate_median,
        measure_unit="s",
    ),
    RegisteredCriterion(
        "image_build_reliability",
        "CI-image build reliability",
        "Image builds",
        "%",
        "% first-attempt success",
        lambda c: eval_build_reliability(c.config, c.periods),
        _day_build_reliability,
        lambda c: _job_runs(c, c.config.image.build_job, keep_retried=True),
    ),
    RegisteredCriterion(
        "stale_caches",
        "Stale caches",
        "Stale caches",
        "events",
        "events",
        lambda c: eval_stale_caches(c.config, c.periods, include_retried=c.include_retried),
        _day_stale_caches,
        _evidence_stale_caches,
    ),
    RegisteredCriterion(
        "cache_key_files",
        "cache:key:files entries per cache",
        "cache:key:files",
        "files",
        "files",
        lambda c: eval_cache_key_files(c.ds, c.config),
        _day_cache_key_files,
        _evidence_cache_key_files,
        baseline_of=None,  # a property of the current CI config only
    ),
    RegisteredCriterion(
        "cache_writers",
        "Unserialised cache writers",
        "Cache writers",
        "writers",
        "overlapping uploads",
        lambda c: eval_cache_writers(c.ds, c.config, c.periods),
        _day_cache_writers,
        _evidence_cache_writers,
    ),
    RegisteredCriterion(
        "tools_verified",
        "Tools verified in the CI image",
        "Tools verified",
        "%",
        "% runs passed",
        lambda c: eval_tools_verified(c.config, c.periods),
        _day_tools_verified,
        lambda c: _job_runs(c, c.config.image.verify_job, keep_retried=False),
    ),
)

#: Every criterion by id, in report order: the one place a criterion is named.
REGISTRY: Mapping[str, Criterion] = MappingProxyType({c.id: c for c in _CRITERIA})
CRITERIA_IDS: tuple[str, ...] = tuple(REGISTRY)
TITLES: Mapping[str, str] = MappingProxyType({c.id: c.title for c in REGISTRY.values()})
SERIES_UNITS: Mapping[str, str] = MappingProxyType({c.id: c.series_unit for c in REGISTRY.values()})
