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

The package, one module per idea, each importing only those below it (``.importlinter``):
:mod:`~cidash.criteria.engine` (:func:`evaluate`, the cache warnings, :func:`criterion_daily_series`) over
:mod:`~cidash.criteria.registry` (:data:`REGISTRY`: the one place a criterion is named) over the criteria's parts,
:mod:`~cidash.criteria.measures` (daily measures) and :mod:`~cidash.criteria.evidence` (evidence tables), over
:mod:`~cidash.criteria.evaluators` (each criterion's evaluation), over :mod:`~cidash.criteria.protocol` (the
:class:`Criterion` protocol and its contexts), over :mod:`~cidash.criteria.periods` (baseline and candidate) and
:mod:`~cidash.criteria.results` (:class:`CriterionResult`, :class:`CriteriaReport`, details in words) and
:mod:`~cidash.criteria.targets` (each target and how a value meets it: :func:`meets`, also for ``compare``). Every name
stays importable from ``cidash.criteria``.
"""

from __future__ import annotations

from cidash.criteria.engine import DailyPoint, cache_warnings, criterion_daily_series, evaluate
from cidash.criteria.evaluators import (
    eval_build_reliability,
    eval_cache_key_files,
    eval_cache_writers,
    eval_image_size,
    eval_stale_caches,
    eval_startup,
    eval_tools_verified,
    startup_values,
)
from cidash.criteria.periods import (
    CHANGE_PREFERENCE,
    REBUILD_SIZE_TOLERANCE,
    ChangeKind,
    ClassifiedChange,
    Periods,
    choose_periods,
    ci_image_hint,
    classify_change,
    criteria_ref,
    migration_change,
)
from cidash.criteria.protocol import Criterion, DayContext, EvalContext, EvidenceTable, RegisteredCriterion
from cidash.criteria.registry import CRITERIA_IDS, REGISTRY, SERIES_UNITS, TITLES
from cidash.criteria.results import DETAIL_LABELS, CriteriaReport, CriterionResult, Status, detail_rows
from cidash.criteria.targets import TARGETS, Target, image_size_limit_mb, meets

__all__ = [
    "CHANGE_PREFERENCE",
    "CRITERIA_IDS",
    "DETAIL_LABELS",
    "REBUILD_SIZE_TOLERANCE",
    "REGISTRY",
    "SERIES_UNITS",
    "TARGETS",
    "TITLES",
    "ChangeKind",
    "ClassifiedChange",
    "CriteriaReport",
    "Criterion",
    "CriterionResult",
    "DailyPoint",
    "DayContext",
    "EvalContext",
    "EvidenceTable",
    "Periods",
    "RegisteredCriterion",
    "Status",
    "Target",
    "cache_warnings",
    "choose_periods",
    "ci_image_hint",
    "classify_change",
    "criteria_ref",
    "criterion_daily_series",
    "detail_rows",
    "eval_build_reliability",
    "eval_cache_key_files",
    "eval_cache_writers",
    "eval_image_size",
    "eval_stale_caches",
    "eval_startup",
    "eval_tools_verified",
    "evaluate",
    "image_size_limit_mb",
    "meets",
    "migration_change",
    "startup_values",
]
