"""Each criterion's evaluation: PASS, FAIL or NO DATA with the value, the target, ``n`` and a sentence of evidence.

Called through :data:`~cidash.criteria.REGISTRY`, which titles the results."""

from __future__ import annotations

from collections import Counter
from typing import Any

from cidash.config import Config
from cidash.criteria.periods import Periods, _day, ci_image_hint
from cidash.criteria.results import CriterionResult, Status
from cidash.criteria.targets import TARGETS, meets
from cidash.metrics import (
    Dataset,
    image_build_reliability,
    image_size_history,
    job_outcomes,
    last_ci_image_digest,
    overlapping_writers,
    restores_a_cache,
    stale_cache_events,
    startup_seconds,
    unserialised_config_writers,
)
from cidash.models import MB
from cidash.specs import short_digest
from cidash.stats import bootstrap_median_change, median, sorted_unless_nan


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
    """A result without its title: the registry gives it (:meth:`RegisteredCriterion.evaluate`), so the titles
    live in one place and these functions stay below the registry that is built from them."""
    return CriterionResult(cid, "", status, value, target, unit, n, evidence, comparator, dict(details))


def eval_image_size(ds: Dataset, config: Config, periods: Periods) -> CriterionResult:
    """The size of the image the newest CI-image job ran (by digest), else of the newest tag."""
    target = TARGETS["image_size"].of(config)
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
        last = last_ci_image_digest(periods.candidate if periods.candidate.jobs else ds, ci_image_hint(ds, config))
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
    status: Status = "pass" if meets("image_size", mb, config) else "fail"
    when = f", created {_day(chosen.created_at)}" if chosen.created_at else ""
    digest_text = f" ({short_digest(chosen.digest)})" if chosen.digest else ""
    evidence = (
        f"{how}: `{chosen.repository}:{chosen.tag}`{digest_text} is {mb:.1f} MB (10^6 bytes){when}, "
        f"target <= {target:g} MB."
    )
    return _result("image_size", status, mb, target, "MB", 1, evidence, "<=", tag=chosen.tag, digest=chosen.digest)


def startup_values(
    ds: Dataset, *, include_retried: bool = False, exclude_jobs: tuple[str, ...] = (), ordered: bool = True
) -> list[float]:
    """Start-up seconds of the counted jobs, without the ``exclude_jobs`` (the image-build job); oldest first, or
    (``ordered`` false) in an order whose sort is the same (:func:`~cidash.metrics.startup_seconds`)."""
    return startup_seconds(ds, include_retried=include_retried, exclude_jobs=exclude_jobs, ordered=ordered)


def eval_startup(config: Config, periods: Periods, *, include_retried: bool = False, seed: int = 0) -> CriterionResult:
    """Median start-up improvement (% faster) from baseline to candidate, with a 95 % bootstrap interval."""
    target = TARGETS["startup_improvement"].of(config)
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
    # in any order that sorts the same, then sorted once: the bootstrap and the medians read them sorted (each
    # sorts them again, in one pass)
    base = sorted_unless_nan(
        startup_values(periods.baseline, include_retried=include_retried, exclude_jobs=skip, ordered=False)
    )
    cand = sorted_unless_nan(
        startup_values(periods.candidate, include_retried=include_retried, exclude_jobs=skip, ordered=False)
    )
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
    status: Status = "pass" if meets("startup_improvement", improvement, config) else "fail"
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
    target = TARGETS["image_build_reliability"].of(config)
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
    status: Status = "pass" if meets("image_build_reliability", r.first_attempt_rate, config) else "fail"
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
    target = TARGETS["stale_caches"].of(config)
    ds = periods.candidate
    # the jobs that restored a cache, counted per object of cache events (a window's jobs share a few thousand
    # tuples of them: each asked once, no call per job)
    facts_of = ds.facts.get
    caches = [f.cache for j in ds.jobs if (f := facts_of(j.id)) is not None]  # (alive: no id reused meanwhile)
    shared = {id(c): c for c in caches}
    n = sum(count for ident, count in Counter(map(id, caches)).items() if restores_a_cache(shared[ident]))
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
    status: Status = "pass" if meets("stale_caches", count, config) else "fail"
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
    target = TARGETS["cache_key_files"].of(config)
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
    status: Status = "pass" if meets("cache_key_files", worst.key_files, config) else "fail"
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
    target = TARGETS["cache_writers"].of(config)
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
    status: Status = "pass" if meets("cache_writers", value, config) else "fail"
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
