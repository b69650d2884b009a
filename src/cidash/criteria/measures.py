"""Each criterion's daily measure (the Health table's sparklines): a value and its ``n`` for one UTC day."""

from __future__ import annotations

from datetime import timedelta

from cidash.criteria.evaluators import startup_values
from cidash.criteria.protocol import DayContext
from cidash.metrics import image_build_reliability, job_outcomes, overlapping_writers, stale_cache_events
from cidash.models import MB
from cidash.stats import median


def _day_image_size(c: DayContext) -> tuple[float | None, int]:
    upto = [p for p in c.sizes if p.created_at is not None and p.created_at < c.start + timedelta(days=1)]
    return (upto[-1].size_bytes / MB, 1) if upto else (None, 0)


def _day_startup(c: DayContext) -> tuple[float | None, int]:
    vals = startup_values(c.day, exclude_jobs=(c.config.image.build_job,), ordered=False)  # (median sorts them)
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
