"""Evaluating the registry over a dataset (the report and its warnings) and the daily series of one criterion."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from cidash.config import Config
from cidash.criteria.periods import Periods, choose_periods, criteria_ref
from cidash.criteria.protocol import DayContext, EvalContext
from cidash.criteria.registry import CRITERIA_IDS, REGISTRY
from cidash.criteria.results import CriteriaReport
from cidash.metrics import Dataset, image_size_history, never_hit_keys


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
