"""What the dashboard shows, computed from the store with cidash's core functions (no Textual here).

Every function runs in a worker thread (they read SQLite and crunch a :class:`~cidash.metrics.Dataset`);
the screens only format what these return. There is no second data path: criteria come from
:func:`cidash.criteria.evaluate`, series from :func:`cidash.criteria.criterion_daily_series`, everything else
from :mod:`cidash.metrics` and :mod:`cidash.stats` over the dataset :func:`cidash.dataset.load_dataset` reads.

The pipeline list is the exception that makes 10,000-pipeline stores fluid: it pages through the documented
read-only SQL schema of :mod:`cidash.store` (``LIMIT``/``OFFSET`` on indexed columns) instead of loading
everything.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cidash.config import Config
from cidash.dataset import gc_paused
from cidash.models import MB, PHASES, Job, Pipeline, Project, StoredJobFacts
from cidash.specs import parse_spec, short_digest
from cidash.stats import pct_change, quantile
from cidash.store import PIPELINE_COLUMNS, Store, pipeline_from_row

if TYPE_CHECKING:
    from cidash.compare import Comparison, ComparisonRow
    from cidash.criteria import CriteriaReport, CriterionResult, Periods
    from cidash.metrics import Dataset


# ---------------------------------------------------------------------------------------------------------------
# Formatting helpers shared by the screens
# ---------------------------------------------------------------------------------------------------------------


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 120:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


def fmt_pct(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.1f} %" if signed else f"{value:.1f} %"


def fmt_time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else "—"


_SINGULAR = {"files": "file", "events": "event", "writers": "writer", "runs": "run", "keys": "key"}


def fmt_day(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d") if value else "—"


def fmt_value(value: float | None, unit: str) -> str:
    """``3 files``, ``1 file``, ``214.6 MB``, ``99.5 %``; ``—`` for no value."""
    if value is None:
        return "—"
    number = f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    if abs(value) == 1:
        unit = _SINGULAR.get(unit, unit)
    return f"{number} {unit}".strip()


def fmt_change(delta: float | None, unit: str) -> str:
    """A signed change in the criterion's unit: ``+4.3 pts`` for percentages (percentage points: the
    difference of two percentages is not a percent), ``-592.2 MB``, ``±0 events`` when nothing changed."""
    if delta is None:
        return "—"
    unit = "pts" if unit == "%" else unit
    if round(delta, 1) == 0:
        return f"±0 {unit}".strip()
    number = f"{delta:+.0f}" if float(delta).is_integer() else f"{delta:+.1f}"
    if abs(delta) == 1:
        unit = _SINGULAR.get(unit, unit)
    return f"{number} {unit}".strip()


def fmt_digest(digest: str | None) -> str:
    """A digest for a table cell: its first 12 hex digits (``sha256:`` dropped; full digests in the details)."""
    if not digest:
        return "—"
    return digest.removeprefix("sha256:")[:12]


_LONG_HEX = re.compile(r"[0-9a-f]{16,}")


def fmt_cache_key(key: str, keep: int = 8) -> str:
    """A cache key for a table cell: long hex runs (``key:files`` digests, 40 hex) cut to their first ``keep``
    digits and ``…``: ``0-7dda6dd4…-protected``. The full key stays in the details."""
    return _LONG_HEX.sub(lambda m: m.group(0)[:keep] + "…", key)


# ---------------------------------------------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthRow:
    """One criterion as the Health screen shows it (all strings formatted, plus the sparkline values)."""

    id: str
    title: str
    status: str  # pass | fail | no_data
    target: str
    value: str
    baseline: str
    change: str
    evidence: str
    n: int
    series: tuple[float | None, ...]
    series_unit: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "series": list(self.series)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HealthRow:
        return cls(**{**d, "series": tuple(d.get("series", ()))})


@dataclass(frozen=True)
class Health:
    project: str
    generated_at: datetime
    ok: bool
    period: str
    rows: tuple[HealthRow, ...]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        fails = [r.title for r in self.rows if r.status == "fail"]
        no_data = sum(r.status == "no_data" for r in self.rows)
        if fails:
            return f"FAIL: {len(fails)} of {len(self.rows)} criteria fail ({', '.join(fails)})"
        if no_data:
            return f"PASS with gaps: no criterion fails, {no_data} without data"
        return f"PASS: all {len(self.rows)} criteria pass"

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "generated_at": self.generated_at.isoformat(),
            "ok": self.ok,
            "period": self.period,
            "rows": [r.as_dict() for r in self.rows],
            "counts": self.counts,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Health:
        return cls(
            d["project"],
            datetime.fromisoformat(d["generated_at"]),
            bool(d["ok"]),
            d["period"],
            tuple(HealthRow.from_dict(r) for r in d["rows"]),
            dict(d.get("counts", {})),
        )


@dataclass(frozen=True)
class Snapshot:
    """Everything the tabs read, computed once per refresh."""

    project: Project
    now: datetime
    dataset: Dataset
    periods: Periods
    report: CriteriaReport
    health: Health
    last_sync: datetime | None

    def __repr__(self) -> str:  # the dataclass repr would print every pipeline and job (Textual logs reprs)
        return f"Snapshot({self.project.path!r}, now={self.now.isoformat()}, {len(self.dataset.jobs)} jobs)"


def dataset_since(config: Config, now: datetime) -> datetime:
    """How far back the dashboard loads: two criteria windows (baseline before the split + candidate) and a week."""
    return now - timedelta(days=2 * config.criteria.window_days + 7)


_COMPARATORS = {"<=": "≤", ">=": "≥"}


def _target_text(r: CriterionResult) -> str:
    return f"{_COMPARATORS.get(r.comparator, r.comparator)} {fmt_value(r.target, r.unit)}"


def _baseline_periods(periods: Periods) -> Periods | None:
    from cidash.criteria import Periods

    if periods.baseline is None:
        return None
    return Periods(periods.mode, periods.ref, None, periods.baseline, f"baseline: {periods.description}")


def _baseline_value(cid: str, ds: Dataset, config: Config, periods: Periods, r: CriterionResult) -> float | None:
    """The criterion's measure over the baseline period (None when there is no baseline)."""
    from cidash.criteria import (
        eval_build_reliability,
        eval_cache_writers,
        eval_image_size,
        eval_stale_caches,
        eval_tools_verified,
    )

    if cid == "startup_improvement":
        value = r.details.get("baseline_median")
        return float(value) if value is not None else None
    base = _baseline_periods(periods)
    if base is None or not base.candidate.pipelines:
        return None
    if cid == "image_size":
        return eval_image_size(ds, config, base).value
    if cid == "image_build_reliability":
        return eval_build_reliability(config, base).value
    if cid == "stale_caches":
        return eval_stale_caches(config, base).value
    if cid == "cache_writers":
        return eval_cache_writers(ds, config, base).value
    if cid == "tools_verified":
        return eval_tools_verified(config, base).value
    return None


def health_rows(ds: Dataset, config: Config, report: CriteriaReport, periods: Periods, now: datetime) -> Health:
    from cidash.criteria import criterion_daily_series

    rows = []
    # The series only look at pipelines created in the last 30 UTC days: slice once instead of 7 x 30 times.
    today = now.astimezone(UTC).date() - timedelta(days=29)
    recent = ds.between(datetime(today.year, today.month, today.day, tzinfo=UTC), None)
    for r in report.criteria:
        series = criterion_daily_series(recent, config, r.id, days=30, now=now)
        base = _baseline_value(r.id, ds, config, periods, r)
        if r.id == "startup_improvement":
            baseline = fmt_seconds(base)
            cand = r.details.get("candidate_median")
            value = f"{fmt_pct(r.value)} faster" if r.value is not None else "—"
            change = fmt_change(cand - base, "s") if base is not None and cand is not None else "—"
        else:
            baseline = fmt_value(base, r.unit)
            value = fmt_value(r.value, r.unit)
            change = fmt_change(r.value - base, r.unit) if base is not None and r.value is not None else "—"
        rows.append(
            HealthRow(
                id=r.id,
                title=r.title,
                status=r.status,
                target=_target_text(r),
                value=value,
                baseline=baseline,
                change=change,
                evidence=r.evidence,
                n=r.n,
                series=tuple(p.value for p in series),
            )
        )
    counts: dict[str, int] = dict(Counter(str(r.status) for r in report.criteria))
    return Health(report.project, now, report.ok(), report.period, tuple(rows), counts)


def load_snapshot(store: Store, config: Config, project: Project, now: datetime) -> Snapshot:
    """Load the dataset and evaluate the criteria (the work behind the Health screen): the same dataset and
    evaluation as ``cidash check``, so both always agree."""
    from cidash.criteria import choose_periods, evaluate
    from cidash.dataset import load_dataset

    with gc_paused():
        ds = load_dataset(store, project, config_ref=config.criteria.ref)
        periods = choose_periods(ds, config, now)
        report = evaluate(ds, config, now, periods=periods)
        health = health_rows(ds, config, report, periods, now)
    return Snapshot(project, now, ds, periods, report, health, store.last_sync(project.id))


# -- the cached Health (shown at start before the first computation finishes) -----------------------------------


def health_cache_path(cache_dir: Path, store_path: Path, project_id: int) -> Path:
    digest = hashlib.sha1(str(store_path.resolve()).encode(), usedforsecurity=False).hexdigest()[:12]
    return cache_dir / f"health-{digest}-{project_id}.json"


def save_health(path: Path, health: Health) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(health.as_dict()), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # a cache: losing it only costs a slower next start


def load_health(path: Path) -> Health | None:
    try:
        return Health.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- evidence behind one criterion ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    title: str
    sentence: str
    details: dict[str, Any]
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def evidence_jobs(ds: Dataset, name: str, criterion_id: str) -> list[Job]:
    """The ``name`` jobs behind ``image_build_reliability`` (every finished attempt) or ``tools_verified``
    (finished runs that were not retried), as the criteria count them."""
    from cidash.metrics import FINISHED_STATUSES

    keep_retried = criterion_id == "image_build_reliability"
    return [j for j in ds.jobs if j.name == name and j.status in FINISHED_STATUSES and (keep_retried or not j.retried)]


def evidence_for(snap: Snapshot, criterion_id: str, config: Config) -> Evidence:
    """The pipelines/jobs/keys behind one criterion, as a small table."""
    from cidash.metrics import (
        image_size_history,
        job_startups,
        overlapping_writers,
        stale_cache_events,
        unserialised_config_writers,
    )

    result = next(r for r in snap.report.criteria if r.id == criterion_id)
    cand = snap.periods.candidate
    ds = snap.dataset
    cols: tuple[str, ...] = ()
    rows: list[tuple[str, ...]] = []
    if criterion_id == "image_size":
        cols = ("tag", "digest", "size", "created")
        for p in reversed(image_size_history(ds, config.image.repository)):
            rows.append(
                (p.tag, short_digest(p.digest or ""), fmt_value(p.size_bytes / MB, "MB"), fmt_time(p.created_at))
            )
    elif criterion_id == "startup_improvement":
        cols = ("job", "pipeline", "name", "started", "start-up", "digest")
        for s in sorted(job_startups(cand), key=lambda s: -s.seconds)[:200]:
            rows.append(
                (
                    str(s.job_id),
                    f"#{s.pipeline_id}",
                    s.name,
                    fmt_time(s.started_at),
                    fmt_seconds(s.seconds),
                    short_digest(s.image_digest or ""),
                )
            )
    elif criterion_id in ("image_build_reliability", "tools_verified"):
        name = config.image.build_job if criterion_id == "image_build_reliability" else config.image.verify_job
        cols = ("job", "pipeline", "status", "reason", "created", "retried")
        # the jobs the sentence counts: finished runs (never-played manual jobs are not runs)
        counted = evidence_jobs(cand, name, criterion_id)
        for j in sorted(counted, key=lambda j: (j.created_at, j.id), reverse=True):
            rows.append(
                (
                    str(j.id),
                    f"#{j.pipeline_id}",
                    j.status,
                    j.failure_reason or "",
                    fmt_time(j.created_at),
                    "yes" if j.retried else "",
                )
            )
    elif criterion_id == "stale_caches":
        cols = ("kind", "key", "pipeline", "at", "changed files")
        for e in reversed(stale_cache_events(cand, config.cache_key.files)):
            rows.append((e.kind, e.key, f"#{e.pipeline_id}", fmt_time(e.at), ", ".join(e.changed_files)))
    elif criterion_id == "cache_key_files":
        cols = ("job", "cache", "key", "key:files entries", "policy", "line")
        for c in ds.ci_caches:
            rows.append((c.job, str(c.index), c.key or "", str(c.key_files), c.policy, str(c.line or "")))
    elif criterion_id == "cache_writers":
        cols = ("kind", "key", "jobs", "overlap", "at")
        for u in unserialised_config_writers(ds.ci_caches) if ds.ci_config_known else []:
            rows.append(("config: no resource_group", u.key, ", ".join(u.jobs), "", ""))
        for o in overlapping_writers(cand):
            rows.append(
                (
                    "observed overlap",
                    o.key,
                    f"{o.first_job_id}, {o.second_job_id}",
                    fmt_seconds(o.overlap_seconds),
                    fmt_time(o.at),
                )
            )
    return Evidence(result.title, result.evidence, result.details, cols, tuple(rows))


# ---------------------------------------------------------------------------------------------------------------
# Pipelines (paged straight from SQL)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipelineFilter:
    """``/`` filter text: ``ref:X status:Y source:Z`` terms and bare words (matching any of the three)."""

    ref: str | None = None
    status: str | None = None
    source: str | None = None
    words: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> PipelineFilter:
        ref = status = source = None
        words = []
        for term in text.split():
            key, sep, value = term.partition(":")
            if sep and key in ("ref", "status", "source") and value:
                if key == "ref":
                    ref = value
                elif key == "status":
                    status = value
                else:
                    source = value
            else:
                words.append(term)
        return cls(ref, status, source, tuple(words))

    def sql(self) -> tuple[str, list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        for col, value in (("ref", self.ref), ("status", self.status), ("source", self.source)):
            if value is not None:
                where.append(f"{col} LIKE ?")
                params.append(_like(value))
        for w in self.words:
            where.append("(ref LIKE ? OR status LIKE ? OR source LIKE ? OR CAST(id AS TEXT) = ?)")
            params.extend([_like(w), _like(w), _like(w), w.lstrip("#")])
        return " AND ".join(where), params


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class PipelineRow:
    pipeline: Pipeline
    jobs: int
    startup_median: float | None
    image: str
    cache_hits: int
    cache_misses: int
    cache_other: int

    @property
    def cache_summary(self) -> str:
        total = self.cache_hits + self.cache_misses + self.cache_other
        if total == 0:
            return "—"
        parts = [f"{self.cache_hits} hit"]
        if self.cache_misses:
            parts.append(f"{self.cache_misses} miss")
        if self.cache_other:
            parts.append(f"{self.cache_other} other")
        return ", ".join(parts)


def read_connection(store: Store) -> Any:
    """A read-only connection of this thread to the store's file (the documented ``mode=ro`` contract), so paging
    queries in workers never share the Store's connection with a running sync."""
    conns: dict[str, Any] = _local.__dict__.setdefault("conns", {})
    key = store.identity
    conn = conns.get(key)
    if conn is None:
        conn = store.open_reader()  # sqlite3 mode=ro, or a read-only PostgreSQL session
        conns[key] = conn
    return conn


_local = threading.local()


def count_pipelines(store: Store, project_id: int, filt: PipelineFilter) -> int:
    where, params = filt.sql()
    sql = "SELECT count(*) FROM pipelines WHERE project_id = ?" + (f" AND {where}" if where else "")
    return int(read_connection(store).execute(sql, [project_id, *params]).fetchone()[0])


def query_pipelines(
    store: Store, project_id: int, filt: PipelineFilter, *, offset: int = 0, limit: int = 100
) -> list[PipelineRow]:
    """One page of pipelines, newest first, with per-pipeline start-up, image and cache summaries."""
    where, params = filt.sql()
    sql = (
        f"SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE project_id = ?"
        + (f" AND {where}" if where else "")
        + " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
    )
    conn = read_connection(store)
    pipelines = [pipeline_from_row(r) for r in conn.execute(sql, [project_id, *params, limit, offset])]
    if not pipelines:
        return []
    ids = [p.id for p in pipelines]
    marks = ",".join("?" * len(ids))
    startups: dict[int, list[float]] = defaultdict(list)
    images: dict[int, Counter[str]] = defaultdict(Counter)
    njobs: Counter[int] = Counter()
    for pid, startup, image_name in conn.execute(
        "SELECT j.pipeline_id, f.startup_seconds, f.image_name FROM jobs j LEFT JOIN job_facts f ON f.job_id = j.id "
        f"WHERE j.project_id = ? AND j.pipeline_id IN ({marks}) AND j.retried = 0",
        [project_id, *ids],
    ):
        njobs[pid] += 1
        if startup is not None:
            startups[pid].append(float(startup))
        if image_name:
            label = image_name.rsplit("/", 1)[-1]
            images[pid][label] += 1
    cache: dict[int, Counter[str]] = defaultdict(Counter)
    for pid, outcome, count in conn.execute(
        "SELECT j.pipeline_id, c.outcome, count(*) FROM jobs j JOIN cache_events c ON c.job_id = j.id "
        f"WHERE j.project_id = ? AND j.pipeline_id IN ({marks}) AND c.op = 'restore' GROUP BY 1, 2",
        [project_id, *ids],
    ):
        cache[pid][outcome] += count
    rows = []
    for p in pipelines:
        c = cache.get(p.id, Counter())
        rows.append(
            PipelineRow(
                p,
                njobs[p.id],
                quantile(startups[p.id], 0.5) if startups.get(p.id) else None,
                images[p.id].most_common(1)[0][0] if images.get(p.id) else "—",
                c.get("hit", 0),
                c.get("miss", 0),
                sum(v for k, v in c.items() if k not in ("hit", "miss")),
            )
        )
    return rows


@dataclass(frozen=True)
class JobRow:
    job: Job
    facts: StoredJobFacts | None

    def phases(self) -> dict[str, float | None]:
        f = self.facts
        if f is None:
            return {}
        return {
            "prepare": f.prepare_seconds,
            "sources": f.sources_seconds,
            "cache": f.cache_seconds,
            "artifacts": f.artifacts_seconds,
            "script": f.script_seconds,
            "upload": f.upload_seconds,
        }


def pipeline_jobs(store: Store, pipeline_id: int) -> list[JobRow]:
    jobs = store.jobs(pipeline_id=pipeline_id)
    jobs.sort(key=lambda j: (j.created_at, j.id))
    facts = store.stored_job_facts([j.id for j in jobs])
    return [JobRow(j, facts.get(j.id)) for j in jobs]


assert set(PHASES) >= {"prepare", "script"}


# ---------------------------------------------------------------------------------------------------------------
# Start-up
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartupView:
    phase_rows: tuple[tuple[str, ...], ...]  # phase, base p50, base p90, cand p50, cand p90, change
    digest_rows: tuple[tuple[str, ...], ...]  # digest, n, p50, p90, first…last day seen (MM-DD)
    daily: tuple[float | None, ...]
    days: tuple[str, ...]
    marker: int | None
    split: str


def _daily_medians(
    points: Sequence[tuple[datetime, float]], start: datetime, now: datetime
) -> tuple[list[float | None], list[str]]:
    by_day: dict[str, list[float]] = defaultdict(list)
    for at, value in points:
        by_day[at.astimezone(UTC).date().isoformat()].append(value)
    days: list[str] = []
    values: list[float | None] = []
    d = start.astimezone(UTC).date()
    end = now.astimezone(UTC).date()
    while d <= end:
        key = d.isoformat()
        days.append(key)
        values.append(quantile(by_day[key], 0.5) if by_day.get(key) else None)
        d += timedelta(days=1)
    return values, days


def startup_view(snap: Snapshot) -> StartupView:
    from cidash.metrics import STARTUP_PHASES, job_startups

    periods = snap.periods
    cand = job_startups(periods.candidate)
    base = job_startups(periods.baseline) if periods.baseline is not None else []
    phase_rows = []
    for phase in (*STARTUP_PHASES, "total"):

        def vals(items: Sequence[Any], phase: str = phase) -> list[float]:
            if phase == "total":
                return [s.seconds for s in items]
            return [s.phases[phase] for s in items if phase in s.phases]

        b, c = vals(base), vals(cand)
        b50, c50 = quantile(b, 0.5), quantile(c, 0.5)
        phase_rows.append(
            (
                phase,
                fmt_seconds(b50),
                fmt_seconds(quantile(b, 0.9)),
                fmt_seconds(c50),
                fmt_seconds(quantile(c, 0.9)),
                fmt_pct(pct_change(b50, c50), signed=True),
                f"{len(b)}/{len(c)}",
            )
        )
    ref_ds = snap.dataset.on_ref(periods.ref) if periods.ref else snap.dataset
    all_startups = job_startups(ref_ds)
    by_digest: dict[str, list[Any]] = defaultdict(list)
    for s in all_startups:
        by_digest[s.image_digest or "unknown"].append(s)
    digest_rows = []
    for digest, items in sorted(by_digest.items(), key=lambda kv: kv[1][0].started_at):
        values = [s.seconds for s in items]
        digest_rows.append(
            (
                fmt_digest(digest) if digest != "unknown" else "unknown",
                str(len(values)),
                fmt_seconds(quantile(values, 0.5)),
                fmt_seconds(quantile(values, 0.9)),
                f"{items[0].started_at.astimezone(UTC):%m-%d}…{items[-1].started_at.astimezone(UTC):%m-%d}",
            )
        )
    start = snap.now - timedelta(days=60)
    if all_startups:
        start = max(start, all_startups[0].started_at)
    daily, days = _daily_medians([(s.started_at, s.seconds) for s in all_startups], start, snap.now)
    marker = None
    if periods.split_at is not None:
        split_day = periods.split_at.astimezone(UTC).date().isoformat()
        marker = days.index(split_day) if split_day in days else None
    return StartupView(tuple(phase_rows), tuple(digest_rows), tuple(daily), tuple(days), marker, periods.description)


# ---------------------------------------------------------------------------------------------------------------
# Caches
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CachesView:
    key_rows: tuple[
        tuple[str, ...], ...
    ]  # key, restores, hit, miss, failed, hit rate, last seen, default, stale, overlaps
    totals: dict[str, int]
    last_key_on_ref: str | None
    ref: str | None


def caches_view(snap: Snapshot, config: Config) -> CachesView:
    from cidash.metrics import (
        DEFAULT_KEY,
        cache_restore_rates,
        overlapping_writers,
        restore_outcome_totals,
        stale_cache_events,
    )

    ds = snap.dataset
    rates = cache_restore_rates(ds, "key")
    last_seen: dict[str, datetime] = {}
    last_on_ref: tuple[datetime, str] | None = None
    ref = snap.periods.ref or ds.default_ref()
    for j in ds.jobs:
        facts = ds.facts.get(j.id)
        if facts is None or j.started_at is None:
            continue
        for ev in facts.cache:
            if ev.op != "restore":
                continue
            if ev.key not in last_seen or j.started_at > last_seen[ev.key]:
                last_seen[ev.key] = j.started_at
            main_key = ev.detail is None or "fallback" not in ev.detail
            if j.ref == ref and main_key and (last_on_ref is None or j.started_at >= last_on_ref[0]):
                last_on_ref = (j.started_at, ev.key)
    stale = Counter(e.key for e in stale_cache_events(ds, config.cache_key.files))
    overlaps = Counter(o.key for o in overlapping_writers(ds))
    rows = []
    for r in rates:
        rows.append(
            (
                r.group,
                str(r.n),
                str(r.outcomes.get("hit", 0)),
                str(r.outcomes.get("miss", 0)),
                str(r.outcomes.get("failed", 0)),
                fmt_pct(r.hit_rate),
                fmt_time(last_seen.get(r.group)),
                "yes" if DEFAULT_KEY.search(r.group) else "",
                str(stale.get(r.group, 0) or ""),
                str(overlaps.get(r.group, 0) or ""),
            )
        )
    return CachesView(tuple(rows), restore_outcome_totals(ds), last_on_ref[1] if last_on_ref else None, ref)


# ---------------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImagesView:
    tag_rows: tuple[tuple[str, ...], ...]  # tag, size, digest, created, last seen
    sizes: tuple[float | None, ...]  # MB per day: the newest sized tag created by then, oldest first
    size_days: tuple[str, ...]  # the UTC day of each value in sizes
    target_mb: float
    reliability: str
    failures: tuple[tuple[str, ...], ...]  # job, pipeline, when, reason, kind
    size_marker: int | None = None  # index into size_days of the migration (the periods' split), if any


def images_view(store: Store, snap: Snapshot, config: Config) -> ImagesView:
    from cidash.metrics import failure_kind, image_build_reliability, image_last_used, image_size_history

    tags = store.image_tags(snap.project.id)
    tags = sorted(tags, key=lambda t: (t.tag.created_at or t.first_seen, t.tag.name), reverse=True)
    used = image_last_used(snap.dataset)  # "last seen": when a job last ran the image, not the last registry sync
    tag_rows = tuple(
        (
            t.tag.name,
            fmt_value(t.tag.total_size / MB, "MB") if t.tag.total_size else "—",
            fmt_digest(t.tag.digest),
            fmt_day(t.tag.created_at),
            fmt_day(used.get(t.tag.digest or "")),
        )
        for t in tags
    )
    points = [p for p in image_size_history(snap.dataset, config.image.repository) if p.created_at is not None]
    sizes: list[float | None] = []
    days: list[str] = []
    if points:
        assert points[0].created_at is not None
        day = points[0].created_at.astimezone(UTC).date()
        end = max(snap.now.astimezone(UTC).date(), day)
        i, current = 0, None
        while day <= end:
            while i < len(points) and (points[i].created_at or snap.now).astimezone(UTC).date() <= day:
                current = points[i].size_bytes / MB
                i += 1
            sizes.append(current)
            days.append(day.isoformat())
            day += timedelta(days=1)
    job = config.image.build_job
    parts = []
    for label, ds in (("candidate", snap.periods.candidate), ("baseline", snap.periods.baseline)):
        if ds is None:
            continue
        r = image_build_reliability(ds, job)
        if r.n:
            parts.append(
                f"{label}: first attempt {fmt_pct(r.first_attempt_rate)} ({r.first_attempt_successes}/{r.n}), "
                f"eventually {fmt_pct(r.eventual_rate)}; failures {r.failures_script} script, "
                f"{r.failures_infrastructure} infrastructure, {r.failures_other} other"
            )
    reliability = "\n".join(parts) or f"no finished `{job}` job in the store"
    failed = [j for j in snap.dataset.jobs if j.name == job and j.status == "failed"]
    failed.sort(key=lambda j: (j.created_at, j.id), reverse=True)
    failures = tuple(
        (
            str(j.id),
            f"#{j.pipeline_id}",
            fmt_time(j.finished_at or j.created_at),
            j.failure_reason or "unknown",
            failure_kind(j.failure_reason),
        )
        for j in failed[:20]
    )
    marker = None
    if snap.periods.split_at is not None:
        split_day = snap.periods.split_at.astimezone(UTC).date().isoformat()
        marker = days.index(split_day) if split_day in days else None
    return ImagesView(tag_rows, tuple(sizes), tuple(days), config.criteria.image_size_mb, reliability, failures, marker)


# ---------------------------------------------------------------------------------------------------------------
# Compare
# ---------------------------------------------------------------------------------------------------------------


def migration_presets(snap: Snapshot) -> tuple[str, str] | None:
    """Baseline/candidate SPECs before/after the migration (the detected CI-image digest change)."""
    split = snap.periods.split_at
    if split is None:
        return None
    day = split.astimezone(UTC).date()
    window = timedelta(days=30)
    before_start = (day - window).isoformat()
    before_end = (day - timedelta(days=1)).isoformat()
    on_ref = f",ref:{snap.periods.ref}" if snap.periods.ref else ""
    return f"{before_start}..{before_end}{on_ref}", f"{day.isoformat()}..{on_ref}"


def run_comparison(ds: Dataset, config: Config, baseline: str, candidate: str) -> Comparison:
    """:func:`cidash.compare.compare` over two SPECs (raises UsageError for a malformed one)."""
    from cidash.compare import compare

    return compare(ds, parse_spec(baseline), parse_spec(candidate), config)


def comparison_cells(r: ComparisonRow) -> tuple[str, str, str, str, str, str]:
    """metric, baseline, candidate (median / p90, or the value), n, change [95 % CI], verdict."""
    if r.kind == "distribution":
        b, c = r.baseline, r.candidate
        base = f"{fmt_seconds(b.median if b else None)} / {fmt_seconds(b.p90 if b else None)}"
        cand = f"{fmt_seconds(c.median if c else None)} / {fmt_seconds(c.p90 if c else None)}"
    else:
        base, cand = fmt_value(r.baseline_value, r.unit), fmt_value(r.candidate_value, r.unit)
    change = r.change_text(1) if r.change_pts is not None else fmt_pct(r.change_pct, signed=True)
    if r.ci_low_pct is not None and r.ci_high_pct is not None:
        change += f" [{r.ci_low_pct:+.0f}, {r.ci_high_pct:+.0f}]"
    return r.title, base, cand, f"{r.n_baseline}/{r.n_candidate}", change, r.verdict or ""


def export_markdown(snap: Snapshot, comparison: Comparison | None) -> str:
    """The Markdown ``e`` writes: the criteria report, and the comparison when there is one."""
    from cidash.report import comparison_markdown, criteria_markdown

    text = criteria_markdown(snap.report)
    if comparison is not None:
        text = text.rstrip("\n") + "\n\n" + comparison_markdown(comparison)
    return text


# ---------------------------------------------------------------------------------------------------------------
# The local checkout (Caches tab's local panel)
# ---------------------------------------------------------------------------------------------------------------


def local_key_status(
    config: Config, root: Path, last_seen_key: str | None, ref: str | None, gitlab_version: str | None = None
) -> list[str]:
    """Lines for the local panel: ``.cache-key`` up to date or which file changed, and the key GitLab will
    compute for HEAD (per ``cache:key:files`` entry of the local CI file, with the rules of the instance's
    ``gitlab_version``; unknown: each version's key) next to the key last seen in logs.

    The lines are console markup; every value in them is escaped (:func:`cidash.textsafe.markup_escape`)."""
    from cidash.cachekey import GitLabVersion, check_file, gitlab_key
    from cidash.errors import CidashError
    from cidash.textsafe import markup_escape as e

    lines: list[str] = []
    files = list(config.cache_key.files)
    try:
        result = check_file(root / config.cache_key.file, files, root)
        if result.ok:
            n = len(files)
            lines.append(f"[green]{e(config.cache_key.file)} is up to date[/] with {n} critical file{'s' * (n != 1)}")
        else:
            lines.append(f"[red]{e(config.cache_key.file)} is stale[/]:")
            lines.extend(f"  {e(line)}" for line in result.describe())
    except CidashError as exc:
        lines.append(f"[yellow]{e(config.cache_key.file)}: cannot check[/] ({e(exc.one_line())})")
    try:
        from cidash.ciconfig import load_ci
        from cidash.gitrepo import GitRepo

        repo = GitRepo.discover(root)
        ci = load_ci(repo.root / config.cache_key.ci_file, repo_root=repo.root)
        head = repo.resolve("HEAD")
        provider = repo.provider(head)
        shown = 0
        for job, cache in ci.cache_entries():
            if not cache.key_files:
                continue
            key = gitlab_key(
                list(cache.key_files),
                provider,
                prefix=cache.prefix,
                index=cache.index,
                files_commits=cache.files_commits,
                rev=head,
                version=GitLabVersion.maybe(gitlab_version),
            )
            variants = key.variants()
            if len(variants) == 1:
                when = f" ({e(variants[0].when)})" if key.version is None else ""
                lines.append(
                    f"GitLab key for HEAD ({e(head[:8])}), job {e(job.name)}: [bold]{e(variants[0].key)}[/]{when}"
                )
            else:
                lines.append(f"GitLab key for HEAD ({e(head[:8])}), job {e(job.name)} (GitLab version unknown):")
                lines.extend(f"  [bold]{e(v.key)}[/] ({e(v.when)})" for v in variants)
            shown += 1
            if shown >= 3:
                break
        if not shown:
            lines.append(f"no cache:key:files entry in {e(config.cache_key.ci_file)}")
    except CidashError as exc:
        lines.append(f"[dim]GitLab key for HEAD: unavailable ({e(exc.one_line())})[/]")
    except OSError as exc:
        lines.append(f"[dim]GitLab key for HEAD: unavailable ({e(str(exc.strerror))})[/]")
    seen = last_seen_key or "none seen"
    lines.append(f"key last seen in logs on {e(ref or 'the default branch')}: [bold]{e(seen)}[/]")
    return lines
