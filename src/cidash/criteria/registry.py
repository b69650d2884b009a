"""The registry: one entry per criterion, feeding evaluation, the Health table, sparklines, evidence and exports."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from cidash.criteria.evaluators import (
    eval_build_reliability,
    eval_cache_key_files,
    eval_cache_writers,
    eval_image_size,
    eval_stale_caches,
    eval_startup,
    eval_tools_verified,
)
from cidash.criteria.evidence import (
    _evidence_cache_key_files,
    _evidence_cache_writers,
    _evidence_image_size,
    _evidence_stale_caches,
    _evidence_startup,
    _job_runs,
)
from cidash.criteria.measures import (
    _day_build_reliability,
    _day_cache_key_files,
    _day_cache_writers,
    _day_image_size,
    _day_stale_caches,
    _day_startup,
    _day_tools_verified,
)
from cidash.criteria.protocol import Criterion, EvalContext, RegisteredCriterion
from cidash.criteria.results import CriterionResult


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
        gitlab_page="registry",
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
