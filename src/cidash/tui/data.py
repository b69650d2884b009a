"""What the dashboard shows, formatted from the one :class:`~cidash.snapshot.Snapshot` (no Textual here).

The views only format: the dataset, the periods and the criteria come from the snapshot (the same object and
evaluation as ``cidash check``, ``compare`` and ``export``), every criterion's baseline, daily series and
evidence from :data:`cidash.criteria.REGISTRY`, every other read from :mod:`cidash.queries` (the pipeline list
pages there), and the Caches tab's local panel from the function ``cidash key --gitlab`` uses. Everything here
runs in worker threads; the screens only show what these return.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cidash import queries
from cidash.config import Config
from cidash.criteria import REGISTRY, image_size_limit_mb
from cidash.dataset import gc_paused
from cidash.errors import CidashError
from cidash.formatting import (
    fmt_cache_key,
    fmt_change,
    fmt_day,
    fmt_digest,
    fmt_list,
    fmt_pct,
    fmt_result,
    fmt_seconds,
    fmt_seconds_pair,
    fmt_time,
    fmt_value,
)
from cidash.models import MB, Project
from cidash.queries import JobRow, PipelineFilter, PipelineRow
from cidash.snapshot import Snapshot, build_snapshot
from cidash.specs import parse_spec
from cidash.stats import pct_change, quantile
from cidash.store import Store
from cidash.tui.healthcache import (
    Health,
    HealthRow,
    dashboard_project,
    default_cache_dir,
    health_cache_path,
    keep_health_warm,
    load_health,
    save_health,
)

if TYPE_CHECKING:
    from cidash.compare import Comparison, ComparisonRow
    from cidash.criteria import CriterionResult

#: What the screens import from here (formatting helpers and reads re-exported from the core).
__all__ = [
    "CachesView",
    "Evidence",
    "Health",
    "HealthRow",
    "ImagesView",
    "JobRow",
    "PipelineFilter",
    "PipelineRow",
    "Snapshot",
    "StartupView",
    "caches_view",
    "comparison_cells",
    "count_pipelines",
    "dashboard_project",
    "default_cache_dir",
    "evidence_for",
    "export_markdown",
    "first_health",
    "fmt_cache_key",
    "fmt_change",
    "fmt_day",
    "fmt_digest",
    "fmt_pct",
    "fmt_seconds",
    "fmt_time",
    "fmt_value",
    "health_cache_path",
    "health_rows",
    "images_view",
    "keep_health_warm",
    "load_dashboard",
    "load_health",
    "local_key_status",
    "migration_presets",
    "pipeline_jobs",
    "query_pipelines",
    "reader",
    "run_comparison",
    "save_health",
    "startup_view",
]


# ---------------------------------------------------------------------------------------------------------------
# Reads for the paged views: cidash.queries over a read-only companion Store
# ---------------------------------------------------------------------------------------------------------------

_readers: weakref.WeakKeyDictionary[Store, Store] = weakref.WeakKeyDictionary()
_readers_lock = threading.Lock()


def reader(store: Store) -> Store:
    """A read-only :class:`Store` on ``store``'s file, opened once per store: the views' paging never waits for
    the snapshot's load or a sync holding ``store``'s lock (SQLite readers run beside them). ``store`` itself when
    the companion cannot be opened."""
    with _readers_lock:
        companion = _readers.get(store)
        if companion is None:
            try:
                companion = Store.open(store.identity, readonly=True)  # the file, or the PostgreSQL URL
            except CidashError:
                return store
            _readers[store] = companion
            weakref.finalize(store, companion.close)
        return companion


def count_pipelines(store: Store, project_id: int, filt: PipelineFilter) -> int:
    return queries.count_pipelines(reader(store), project_id, filt)


def query_pipelines(
    store: Store, project_id: int, filt: PipelineFilter, *, offset: int = 0, limit: int = 100
) -> list[PipelineRow]:
    """One page of pipelines (:func:`cidash.queries.query_pipelines`), read beside the snapshot's load."""
    return queries.query_pipelines(reader(store), project_id, filt, offset=offset, limit=limit)


def pipeline_jobs(store: Store, pipeline_id: int) -> list[JobRow]:
    return queries.pipeline_jobs(reader(store), pipeline_id)


# ---------------------------------------------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------------------------------------------


_COMPARATORS = {"<=": "≤", ">=": "≥"}


def _target_text(r: CriterionResult) -> str:
    return f"{_COMPARATORS.get(r.comparator, r.comparator)} {fmt_value(r.target, r.unit)}"


#: The baseline and change cells of a Health computed without them (:func:`first_health`), until they come.
PENDING = "…"


def health_rows(snap: Snapshot, *, complete: bool = True) -> Health:
    """The Health table of a snapshot: each criterion of its report with its baseline, change and 30-day series
    (all from the registry), formatted. ``complete`` false: the verdicts, values, targets and evidence only (the
    baseline and change cells :data:`PENDING`, no series; :func:`first_health`)."""
    report = snap.report
    rows = []
    for r in report.criteria:
        crit = REGISTRY[r.id]
        if complete:
            series: Sequence[Any] = snap.daily_series(r.id, days=30)
            base = crit.baseline(snap.context, r)
            current = crit.measure(r)
            unit = crit.measure_unit or r.unit
            baseline = fmt_seconds(base) if unit == "s" else fmt_value(base, unit)
            change = fmt_change(current - base, unit) if base is not None and current is not None else "—"
        else:
            series, baseline, change = (), PENDING, PENDING
        rows.append(
            HealthRow(
                id=r.id,
                title=r.title,
                status=r.status,
                target=_target_text(r),
                value=fmt_result(r.value, r.unit),
                baseline=baseline,
                change=change,
                evidence=r.evidence,
                n=r.n,
                series=tuple(p.value for p in series),
                short_title=crit.short_title,
            )
        )
    counts: dict[str, int] = dict(Counter(str(r.status) for r in report.criteria))
    return Health(
        report.project, snap.now, report.ok(), report.period, tuple(rows), counts, snap.last_sync, complete=complete
    )


def first_health(store: Store, config: Config, project: Project, now: datetime) -> Health:
    """The Health table's verdicts, values, targets and evidence, computed the way ``cidash check`` computes them
    (the same load and evaluation: the window the criteria judge, the baseline period's start-ups only, the
    criteria ref only, no start-up phases), without the baseline and change cells and the 30-day series, which
    need the baseline period in full and the daily slices (:func:`load_dashboard` gives them): what a dashboard
    with no cached Health shows first, about half the work of the whole table."""
    with gc_paused():
        snap = build_snapshot(store, config, project, now, since="window", phases=False, ref_only=True, narrow=True)
        return health_rows(snap, complete=False)


def load_dashboard(store: Store, config: Config, project: Project, now: datetime) -> tuple[Snapshot, Health]:
    """The snapshot (:func:`cidash.snapshot.build_snapshot`, the same load and evaluation as ``cidash check``)
    and its Health table: the work behind the Health screen."""
    with gc_paused():
        # the window the criteria judge (with the baseline in full, for the Health table's baseline column), on
        # the criteria ref only, without the start-up phases (no criterion reads them) and with only the job
        # columns a criterion or its evidence reads; the other tabs read Snapshot.widened(), the whole history,
        # loaded once the Health is on screen
        snap = build_snapshot(store, config, project, now, since="health", phases=False, ref_only=True, narrow=True)
        return snap, health_rows(snap)


# -- evidence behind one criterion ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Evidence:
    title: str
    sentence: str
    details: dict[str, Any]
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def evidence_for(snap: Snapshot, criterion_id: str) -> Evidence:
    """The pipelines/jobs/keys behind one criterion, as a small table (the registry's evidence table)."""
    result = next(r for r in snap.report.criteria if r.id == criterion_id)
    cols, rows = snap.evidence(criterion_id)
    return Evidence(result.title, result.evidence, result.details, tuple(cols), tuple(rows))


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
    """The Start-up tab: the jobs the ``startup_improvement`` criterion counts (the image-build job, which runs in
    the docker image rather than the CI image, left out), per phase, per digest and per day."""
    from cidash.metrics import STARTUP_PHASES, job_startups

    periods = snap.periods
    skip = (snap.config.image.build_job,)
    retried = snap.include_retried
    cand = job_startups(periods.candidate, include_retried=retried, exclude_jobs=skip)
    base = (
        job_startups(periods.baseline, include_retried=retried, exclude_jobs=skip)
        if periods.baseline is not None
        else []
    )
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
    all_startups = job_startups(ref_ds, include_retried=retried, exclude_jobs=skip)
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


def caches_view(snap: Snapshot, store: Store) -> CachesView:
    """The Caches tab: restore outcomes per key, and the key last seen on the criteria ref by the rule ``cidash``
    uses everywhere (:func:`cidash.actions.keys.latest_seen_key`)."""
    from cidash.actions.keys import latest_seen_key
    from cidash.metrics import (
        DEFAULT_KEY,
        cache_restore_rates,
        overlapping_writers,
        restore_outcome_totals,
        stale_cache_events,
    )

    config = snap.config
    ds = snap.dataset
    rates = cache_restore_rates(ds, "key")
    last_seen: dict[str, datetime] = {}
    ref = snap.periods.ref or ds.default_ref()
    for j in ds.jobs:
        facts = ds.facts.get(j.id)
        if facts is None or j.started_at is None:
            continue
        for ev in facts.cache:
            if ev.op == "restore" and (ev.key not in last_seen or j.started_at > last_seen[ev.key]):
                last_seen[ev.key] = j.started_at
    last_on_ref = latest_seen_key(store, snap.project.id, ref)[0] if ref else None
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
    return CachesView(tuple(rows), restore_outcome_totals(ds), last_on_ref, ref)


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


def images_view(store: Store, snap: Snapshot) -> ImagesView:
    from cidash.metrics import failure_kind, image_build_reliability, image_last_used, image_size_history

    config = snap.config
    tags = store.image_tags(snap.project.id)
    tags = sorted(tags, key=lambda t: (t.tag.created_at or t.first_seen, t.tag.name), reverse=True)
    used = image_last_used(snap.dataset)  # "last seen": when a job last ran the image, not the last registry sync
    tag_rows = tuple(
        (
            t.tag.name,
            fmt_value(t.tag.total_size / MB, "MB", column=True) if t.tag.total_size else "—",
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
    return ImagesView(tag_rows, tuple(sizes), tuple(days), image_size_limit_mb(config), reliability, failures, marker)


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


def run_comparison(snap: Snapshot, baseline: str, candidate: str) -> Comparison:
    """The snapshot's comparison of two SPECs, as ``cidash compare`` makes it (raises UsageError for a malformed
    one)."""
    return snap.compare(parse_spec(baseline), parse_spec(candidate))


def comparison_cells(r: ComparisonRow) -> tuple[str, str, str, str, str, str]:
    """metric, baseline, candidate (median / p90, or the value), n, change [95 % CI], verdict."""
    if r.kind == "distribution":
        b, c = r.baseline, r.candidate
        base = fmt_seconds_pair(b.median if b else None, b.p90 if b else None)
        cand = fmt_seconds_pair(c.median if c else None, c.p90 if c else None)
    else:
        base = fmt_value(r.baseline_value, r.unit, column=True)
        cand = fmt_value(r.candidate_value, r.unit, column=True)
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
    compute for HEAD (per ``cache:key:files`` entry of the CI file as committed at HEAD, by the function
    ``cidash key --gitlab`` uses, with the rules of the instance's ``gitlab_version``; unknown: each version's key)
    next to the key last seen in logs.

    The lines are console markup; every value in them is escaped (:func:`cidash.textsafe.markup_escape`)."""
    from cidash.actions.keys import gitlab_keys_at
    from cidash.cachekey import GitLabVersion, check_file
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
        keys = gitlab_keys_at(root, config.cache_key.ci_file, rev="HEAD", version=GitLabVersion.maybe(gitlab_version))
        head = keys.sha
        for _cache, jobs, key in keys.results[:3]:
            names = fmt_list([j.name for j in jobs], 3)
            job_text = f"job {e(names)}" if len(jobs) == 1 else f"jobs {e(names)}"
            variants = key.variants()
            if len(variants) == 1:
                when = f" ({e(variants[0].when)})" if key.version is None else ""
                lines.append(f"GitLab key for HEAD ({e(head[:8])}), {job_text}: [bold]{e(variants[0].key)}[/]{when}")
            else:
                lines.append(f"GitLab key for HEAD ({e(head[:8])}), {job_text} (GitLab version unknown):")
                lines.extend(f"  [bold]{e(v.key)}[/] ({e(v.when)})" for v in variants)
        if not keys.results:
            lines.append(f"no cache:key:files entry in {e(config.cache_key.ci_file)} at HEAD")
    except CidashError as exc:
        lines.append(f"[dim]GitLab key for HEAD: unavailable ({e(exc.one_line())})[/]")
    except OSError as exc:
        lines.append(f"[dim]GitLab key for HEAD: unavailable ({e(str(exc.strerror))})[/]")
    seen = last_seen_key or "none seen"
    lines.append(f"key last seen in logs on {e(ref or 'the default branch')}: [bold]{e(seen)}[/]")
    return lines
