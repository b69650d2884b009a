"""``cidash export``: the synced metrics as JSON, CSV, Markdown, OpenMetrics or Prometheus text.

OpenMetrics / Prometheus families (the full reference with labels is ``docs/team.md``; :data:`FAMILIES` lists
them): counters and histograms (``cidash_job_startup_seconds``, ``cidash_pipeline_duration_seconds``,
``cidash_cache_restores_total``, ``cidash_image_builds_total``, ``cidash_sync_errors_total``, ...) are running
totals kept in the store: they never fall, across ``prune`` and restarts. Values over the criteria window are
gauges named ``..._window``; the criteria are a stateset ``cidash_criterion_status`` plus value/target gauges.
Labels never use Prometheus' own ``job``/``instance`` (``job_name`` instead). ``cidash serve`` serves the same
families on ``/metrics`` plus its self-metrics.

Retried jobs are excluded from the window gauges (as everywhere in cidash); the running totals count every
attempt, since a retried job did restore its cache and did build.
"""

from __future__ import annotations

import io
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import UTC, datetime
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from cidash.criteria import CriteriaReport
from cidash.formatting import tidy, tidy_number
from cidash.metrics import (
    FINISHED_STATUSES,
    STARTUP_PHASES,
    Dataset,
    cache_restore_rates,
    counted_jobs,
    image_build_reliability,
    image_size_history,
    job_startups,
    overlapping_writers,
    pipeline_durations,
    pipeline_queue_times,
    plausible_seconds,
    stale_cache_events,
    startup_samples,
    time_to_first_script,
)
from cidash.models import MB, Job, Project
from cidash.stats import QUANTILE_METHOD, summarize, summarize_split
from cidash.textsafe import csv_cell, md_cell, md_code, openmetrics_label

if TYPE_CHECKING:
    from cidash.store import Store

EXPORT_FORMATS: tuple[str, ...] = ("json", "csv", "markdown", "openmetrics", "prometheus")
STARTUP_BUCKETS: tuple[float, ...] = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
PIPELINE_BUCKETS: tuple[float, ...] = (60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200)

Labels = dict[str, str]
#: {(sample name, labels as canonical JSON): value}
Increments = dict[tuple[str, str], float]


@dataclass(frozen=True)
class ExportInput:
    """What an export covers: the dataset (already cut to the window), the criteria, and the context."""

    ds: Dataset
    report: CriteriaReport | None
    generated_at: datetime
    since: datetime | None
    build_job: str
    critical_files: tuple[str, ...]
    image_repository: str | None = None
    include_retried: bool = False
    #: Running totals from the store (see :func:`update_running_totals`); None: count the whole dataset.
    totals: Increments | None = None
    last_sync: datetime | None = None


_job_id = attrgetter("id")


def _iso(d: datetime | None) -> str | None:
    return None if d is None else d.astimezone(UTC).isoformat().replace("+00:00", "Z")


def export_document(inp: ExportInput) -> dict[str, Any]:
    """The JSON export: every metric with its n (the other formats are views of this document). Computed with
    the cyclic garbage collector paused (:func:`cidash.dataset.gc_paused`: a window's hundred thousand jobs are
    alive meanwhile, and a full collection walks them all; none of this makes reference cycles)."""
    from cidash.dataset import gc_paused

    with gc_paused():
        return _export_document(inp)


def _export_document(inp: ExportInput) -> dict[str, Any]:
    ds = inp.ds
    retried = inp.include_retried
    # the start-up values in one pass (no JobStartup per job): each summary sorts its values, so their order is moot
    startups = startup_samples(ds, include_retried=retried)
    names = sorted(startups.by_job)
    startup, by_job = summarize_split(startups.seconds, [startups.by_job[name] for name in names])
    build = image_build_reliability(ds, inp.build_job)
    first = [f.seconds for f in time_to_first_script(ds, include_retried=retried)]
    stale = stale_cache_events(ds, inp.critical_files, include_retried=retried)
    return tidy(
        {
            "project": ds.project_path,
            "generated_at": _iso(inp.generated_at),
            "since": _iso(inp.since),
            "quantile_method": QUANTILE_METHOD,
            "units": {"durations": "seconds", "sizes": "bytes (MB = 10^6 bytes)"},
            "counts": {
                "pipelines": len(ds.pipelines),
                "jobs": len(ds.jobs),
                "jobs_with_log_facts": sum(map(ds.facts.__contains__, map(_job_id, ds.jobs))),  # (no loop in Python)
            },
            "metrics": {
                "pipeline_duration": pipeline_durations(ds).summary().as_dict(),
                "pipeline_queue": pipeline_queue_times(ds).summary().as_dict(),
                "job_startup": startup.as_dict(),
                "job_startup_by_job": {name: s.as_dict() for name, s in zip(names, by_job, strict=True)},
                "startup_phases": {phase: summarize(startups.phases[phase]).as_dict() for phase in STARTUP_PHASES},
                "time_to_first_script": summarize(first).as_dict(),
                "cache_restores_by_key": [
                    {"key": r.group, "n": r.n, "outcomes": dict(r.outcomes), "hit_rate_pct": r.hit_rate}
                    for r in cache_restore_rates(ds, "key", include_retried=retried)
                ],
                "cache_restores_by_job": [
                    {"job": r.group, "n": r.n, "outcomes": dict(r.outcomes), "hit_rate_pct": r.hit_rate}
                    for r in cache_restore_rates(ds, "job", include_retried=retried)
                ],
                "cache_restores_by_ref": [
                    {"ref": r.group, "n": r.n, "outcomes": dict(r.outcomes), "hit_rate_pct": r.hit_rate}
                    for r in cache_restore_rates(ds, "ref", include_retried=retried)
                ],
                "image_sizes": [
                    {
                        "repository": p.repository,
                        "tag": p.tag,
                        "digest": p.digest,
                        "size_bytes": p.size_bytes,
                        "created_at": _iso(p.created_at),
                    }
                    for p in image_size_history(ds, inp.image_repository)
                ],
                "image_build": {
                    "job": build.job_name,
                    "n": build.n,
                    "attempts": build.attempts,
                    "first_attempt_success_pct": build.first_attempt_rate,
                    "eventual_success_pct": build.eventual_rate,
                    "failures": {
                        "script": build.failures_script,
                        "infrastructure": build.failures_infrastructure,
                        "other": build.failures_other,
                    },
                },
                "stale_cache_events": {
                    "n": len(stale),
                    "default_key": sum(e.kind == "default_key" for e in stale),
                    "unchanged_key": sum(e.kind == "unchanged_key" for e in stale),
                },
                "overlapping_cache_writers": {"n": len(overlapping_writers(ds))},
            },
            "criteria": [c.as_dict() for c in inp.report.criteria] if inp.report else [],
        }
    )


def to_json(inp: ExportInput) -> str:
    return json.dumps(export_document(inp), indent=2) + "\n"


def _rows(doc: dict[str, Any]) -> Iterable[tuple[str, str, str, Any, int | None]]:
    """(metric, scope, statistic, value, n) rows of the export document."""
    m = doc["metrics"]
    for name in ("pipeline_duration", "pipeline_queue", "job_startup", "time_to_first_script"):
        s = m[name]
        for stat in ("median", "p90", "p95", "mean", "min", "max"):
            yield name, "all", stat, s[stat], s["n"]
    for job, s in m["job_startup_by_job"].items():
        for stat in ("median", "p90"):
            yield "job_startup", f"job={job}", stat, s[stat], s["n"]
    for phase, s in m["startup_phases"].items():
        for stat in ("median", "p90"):
            yield f"startup_{phase}", "all", stat, s[stat], s["n"]
    for group, field in (
        ("key", "cache_restores_by_key"),
        ("job", "cache_restores_by_job"),
        ("ref", "cache_restores_by_ref"),
    ):
        for r in m[field]:
            yield "cache_hit_rate_pct", f"{group}={r[group]}", "rate", r["hit_rate_pct"], r["n"]
            for outcome, count in sorted(r["outcomes"].items()):
                yield "cache_restores", f"{group}={r[group]}", outcome, count, r["n"]
    for p in m["image_sizes"]:
        yield "image_size_bytes", f"{p['repository']}:{p['tag']}@{p['digest']}", "value", p["size_bytes"], 1
    b = m["image_build"]
    yield "image_build_first_attempt_pct", f"job={b['job']}", "rate", b["first_attempt_success_pct"], b["n"]
    yield "image_build_eventual_pct", f"job={b['job']}", "rate", b["eventual_success_pct"], b["n"]
    for kind, count in b["failures"].items():
        yield "image_build_failures", f"job={b['job']}", kind, count, b["attempts"]
    yield "stale_cache_events", "all", "count", m["stale_cache_events"]["n"], None
    yield "overlapping_cache_writers", "all", "count", m["overlapping_cache_writers"]["n"], None
    for c in doc["criteria"]:
        yield f"criterion:{c['id']}", c["status"], "value", c["value"], c["n"]


def to_csv(inp: ExportInput) -> str:
    """Long format: ``metric,scope,statistic,value,n`` (one measurement a row; empty value = not measured)."""
    import csv  # (here: the other formats do without it)

    doc = export_document(inp)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["project", "metric", "scope", "statistic", "value", "n"])
    for metric, scope, stat, value, n in _rows(doc):
        w.writerow([csv_cell(c) for c in (doc["project"], metric, scope, stat, value, n)])
    return buf.getvalue()


def _md_num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def to_markdown(inp: ExportInput) -> str:
    doc = export_document(inp)
    m = doc["metrics"]
    lines = [
        f"### cidash metrics: {md_cell(doc['project'])}",
        "",
        f"{doc['counts']['pipelines']} pipelines, {doc['counts']['jobs']} jobs since {doc['since'] or 'the start'}; "
        f"quantiles: {doc['quantile_method']}; seconds unless stated.",
        "",
        "| metric | n | median | p90 | p95 |",
        "|---|---|---|---|---|",
    ]
    for name in ("pipeline_duration", "pipeline_queue", "job_startup", "time_to_first_script"):
        s = m[name]
        lines.append(f"| {name} | {s['n']} | {_md_num(s['median'])} | {_md_num(s['p90'])} | {_md_num(s['p95'])} |")
    for phase, s in m["startup_phases"].items():
        lines.append(
            f"| startup: {phase} | {s['n']} | {_md_num(s['median'])} | {_md_num(s['p90'])} | {_md_num(s['p95'])} |"
        )
    lines += ["", "| cache key | restores | hit rate |", "|---|---|---|"]
    for r in m["cache_restores_by_key"][:20]:
        lines.append(f"| {md_code(r['key'])} | {r['n']} | {_md_num(r['hit_rate_pct'])} % |")
    b = m["image_build"]
    lines += [
        "",
        f"Image build {md_code(b['job'])}: first-attempt success {_md_num(b['first_attempt_success_pct'])} % "
        f"(n={b['n']}), eventual {_md_num(b['eventual_success_pct'])} %; failures: "
        f"{b['failures']['script']} script, {b['failures']['infrastructure']} infrastructure, "
        f"{b['failures']['other']} other.",
        f"Stale-cache events: {m['stale_cache_events']['n']}; overlapping cache writers: "
        f"{m['overlapping_cache_writers']['n']}.",
    ]
    if m["image_sizes"]:
        lines += ["", "| image tag | digest | size (MB = 10^6 bytes) |", "|---|---|---|"]
        for p in m["image_sizes"][-10:]:
            lines.append(f"| {md_code(p['tag'])} | {md_code((p['digest'] or '')[:19])} | {p['size_bytes'] / MB:.1f} |")
    if doc["criteria"]:
        lines += ["", "| criterion | status | value | n |", "|---|---|---|---|"]
        for c in doc["criteria"]:
            lines.append(f"| `{c['id']}` | {c['status']} | {_md_num(c['value'])} {md_cell(c['unit'])} | {c['n']} |")
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# OpenMetrics / Prometheus text
# ---------------------------------------------------------------------------------------------------------------
#
# One set of families, two encodings (``exposition(families, fmt)``). Counters and histograms are running totals
# kept in the store (``update_running_totals``): they only grow, across prune and restarts, so Prometheus' rate()
# never sees a reset. Everything computed over the criteria window is a gauge whose name ends in ``_window``.
# No label is called ``job`` or ``instance`` (Prometheus renames those to ``exported_*`` on every scrape).


@dataclass(frozen=True)
class FamilySpec:
    """A metric family: name (without ``_total`` for counters), type, help text and unit."""

    name: str
    type: str  # "counter" | "gauge" | "histogram" | "info" | "stateset"
    help: str
    unit: str = ""


@dataclass
class Family:
    spec: FamilySpec
    samples: list[tuple[str, Labels, float]] = dc_field(default_factory=list)

    def add(self, suffix: str, labels: Labels, value: float) -> None:
        self.samples.append((self.spec.name + suffix, labels, value))


_F = FamilySpec
#: Every family cidash exposes (``cidash serve`` adds the self-metrics marked serve-only). The reference table in
#: docs/team.md and the Grafana test read this.
FAMILIES: dict[str, FamilySpec] = {
    f.name: f
    for f in (
        # running totals (counters and histograms): monotonic
        _F("cidash_job_startup_seconds", "histogram", "Job start to first script line, every attempt.", "seconds"),
        _F("cidash_pipeline_duration_seconds", "histogram", "Running time of finished pipelines.", "seconds"),
        _F("cidash_cache_restores", "counter", "Cache restore attempts by key and outcome, every job attempt."),
        _F("cidash_image_builds", "counter", "Image-build job attempts by result (attempt=first|retry)."),
        _F("cidash_sync_errors", "counter", "Syncs that failed, by error kind."),
        _F("cidash_syncs", "counter", "Syncs finished, by result."),
        _F("cidash_gitlab_requests", "counter", "Requests made to GitLab, by endpoint kind (serve-only)."),
        _F("cidash_webhooks", "counter", "Webhook deliveries received, by event and result (serve-only)."),
        # gauges over the criteria window
        _F("cidash_cache_restores_window", "gauge", "Cache restores in the window by key and outcome (no retries)."),
        _F("cidash_cache_hit_ratio_window", "gauge", "Share of cache restores that hit, in the window, by key."),
        _F("cidash_job_startup_quantile_window_seconds", "gauge", "Start-up quantiles in the window, by job."),
        _F("cidash_image_build_first_attempt_ratio_window", "gauge", "First-attempt success of the image build."),
        _F("cidash_window_seconds", "gauge", "Length of the window the *_window gauges and criteria cover."),
        # current state
        _F("cidash_image_size_bytes", "gauge", "Registry total_size of each CI-image tag and digest.", "bytes"),
        _F("cidash_criterion_status", "stateset", "Status of each success criterion."),
        _F("cidash_criterion_pass", "gauge", "1 when the criterion passes, 0 when it fails or has no data."),
        _F("cidash_criterion_value", "gauge", "The measured value of each criterion that has data (unit label)."),
        _F("cidash_criterion_target", "gauge", "The target of each criterion (unit label)."),
        _F("cidash_last_sync_success_timestamp_seconds", "gauge", "When the project's last sync completed."),
        _F("cidash_gitlab_rate_limit_remaining", "gauge", "GitLab's RateLimit-Remaining, last seen (serve-only)."),
        _F("cidash_up_to_date", "gauge", "1 once the project had a complete sync since serve started (serve-only)."),
        _F("cidash_build", "info", "The running cidash (serve-only)."),
    )
}
#: Counter/histogram families whose values are running totals in the store.
TOTAL_FAMILIES: tuple[str, ...] = tuple(n for n, f in FAMILIES.items() if f.type in ("counter", "histogram"))
_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_info")


def labels_key(labels: Labels) -> str:
    """The canonical JSON of a label set (how the store keys a running total)."""
    return json.dumps(sorted(labels.items()), ensure_ascii=False, separators=(",", ":"))


def family_of(sample: str) -> str | None:
    """The family a sample name belongs to (``cidash_syncs_total`` -> ``cidash_syncs``), None when unknown."""
    if sample in FAMILIES:
        return sample
    for suffix in _SUFFIXES:
        if sample.endswith(suffix) and sample[: -len(suffix)] in FAMILIES:
            return sample[: -len(suffix)]
    return None


def _observe(out: Increments, name: str, labels: Labels, value: float, buckets: Sequence[float]) -> None:
    for le in (*buckets, math.inf):
        if value <= le:
            key = (f"{name}_bucket", labels_key({**labels, "le": _num(float(le))}))
            out[key] = out.get(key, 0.0) + 1
    for sample, amount in ((f"{name}_count", 1.0), (f"{name}_sum", value)):
        key = (sample, labels_key(labels))
        out[key] = out.get(key, 0.0) + amount


def _bump(out: Increments, sample: str, labels: Labels, amount: float = 1.0) -> None:
    key = (sample, labels_key(labels))
    out[key] = out.get(key, 0.0) + amount


def counter_increments(
    ds: Dataset,
    build_job: str,
    *,
    pipeline_ids: Iterable[int] | None = None,
    job_ids: Iterable[int] | None = None,
    log_ids: Iterable[int] | None = None,
) -> Increments:
    """What the running totals gain from the finished pipelines, finished jobs and parsed logs of ``ds`` (only
    the given ids of each when given). Every attempt counts (a retried job did restore its cache); the
    ``*_window`` gauges exclude retried jobs as the rest of cidash does."""
    project = ds.project_path
    out: Increments = {}
    p_ids = None if pipeline_ids is None else set(pipeline_ids)
    j_ids = None if job_ids is None else set(job_ids)
    l_ids = None if log_ids is None else set(log_ids)
    for p in ds.pipelines:
        if (p_ids is not None and p.id not in p_ids) or p.finished_at is None:
            continue
        if p.status in FINISHED_STATUSES and p.duration is not None and plausible_seconds(p.duration):
            labels = {"project": project, "ref": p.ref}
            _observe(out, "cidash_pipeline_duration_seconds", labels, p.duration, PIPELINE_BUCKETS)
    builds: dict[int, list[Job]] = defaultdict(list)
    for j in ds.jobs:
        if j.name == build_job:
            builds[j.pipeline_id].append(j)
    for attempts in builds.values():
        attempts.sort(key=lambda j: (j.created_at, j.id))
        for i, j in enumerate(attempts):
            if (j_ids is not None and j.id not in j_ids) or j.finished_at is None or j.status not in FINISHED_STATUSES:
                continue
            labels = {"project": project, "ref": j.ref, "job_name": j.name, "attempt": "first" if i == 0 else "retry"}
            _bump(out, "cidash_image_builds_total", {**labels, "result": j.status})
    logged = ds if l_ids is None else ds.restrict(job_ok=lambda j: j.id in l_ids)
    for s in job_startups(logged, include_retried=True):
        facts = ds.facts.get(s.job_id)
        image = facts.image.name if facts is not None and facts.image is not None and facts.image.name else ""
        labels = {"project": project, "job_name": s.name, "image": image}
        _observe(out, "cidash_job_startup_seconds", labels, s.seconds, STARTUP_BUCKETS)
    for j in counted_jobs(logged, include_retried=True):
        facts = ds.facts.get(j.id)
        for ev in facts.cache if facts is not None else ():
            if ev.op == "restore":
                labels = {"project": project, "ref": j.ref, "job_name": j.name, "stage": j.stage, "key": ev.key}
                _bump(out, "cidash_cache_restores_total", {**labels, "outcome": ev.outcome})
    return out


#: Items folded per transaction (keeps every ``IN (...)`` list far below SQLite's variable limit).
FOLD_BATCH = 4000


def update_running_totals(store: Store, project: Project, build_job: str) -> int:
    """Add what is new in the store (finished pipelines and jobs, parsed logs not counted yet) to the project's
    running totals, atomically per batch; returns how many items were counted. Call before pruning and before
    exporting; ``cidash serve`` calls it after every sync."""
    from cidash.metrics import Dataset as _Dataset

    total = 0
    while True:
        with store.transaction():  # BEGIN IMMEDIATE: two processes never count the same item twice
            p_ids = store.uncounted_ids(project.id, "pipeline")[:FOLD_BATCH]
            j_ids = store.uncounted_ids(project.id, "job")[:FOLD_BATCH]
            l_ids = store.uncounted_ids(project.id, "log")[:FOLD_BATCH]
            if not (p_ids or j_ids or l_ids):
                return total
            jobs_now = store.jobs(project.id, ids=sorted({*j_ids, *l_ids})) if (j_ids or l_ids) else []
            pipeline_ids = sorted({*p_ids, *(j.pipeline_id for j in jobs_now)})
            pipelines = tuple(store.pipelines(project.id, ids=pipeline_ids))
            # Every attempt of the build job in those pipelines, to tell first attempts from retries.
            siblings = store.jobs(project.id, pipeline_ids=pipeline_ids, name=build_job) if pipeline_ids else []
            jobs = tuple({j.id: j for j in (*jobs_now, *siblings)}.values())
            ds = _Dataset(project=project, pipelines=pipelines, jobs=jobs, facts=store.job_facts(l_ids))
            increments = counter_increments(ds, build_job, pipeline_ids=p_ids, job_ids=j_ids, log_ids=l_ids)
            counted = [("pipeline", i) for i in p_ids] + [("job", i) for i in j_ids] + [("log", i) for i in l_ids]
            store.add_metric_totals(project.id, increments, counted)
        total += len(counted)


def totals_from_store(store: Store, project_id: int | None) -> Increments:
    """The stored running totals of one project (``None``: of every project; id 0 holds serve's own)."""
    return {(name, labels): value for _, name, labels, value in store.metric_totals(project_id)}


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{openmetrics_label(v)}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(tidy_number(float(value)))


def _le_key(labels: Labels) -> float:
    le = labels.get("le", "")
    return math.inf if le == "+Inf" else float(le) if le else -1.0


def families_from_totals(totals: Increments) -> dict[str, Family]:
    """Families for stored running totals, samples in a stable order (histogram buckets ascending by ``le``)."""
    out: dict[str, Family] = {}
    rows: list[tuple[str, str, Labels, float]] = []
    for (sample, key), value in totals.items():
        name = family_of(sample)
        if name is None:
            continue  # a family this version no longer exposes
        rows.append((name, sample, dict(json.loads(key)), value))
    for name, sample, labels, value in sorted(
        rows,
        key=lambda r: (
            r[0],
            sorted((k, v) for k, v in r[2].items() if k != "le"),
            {"_bucket": 0, "_count": 1, "_sum": 2}.get(r[1][len(r[0]) :], 0),
            _le_key(r[2]),
        ),
    ):
        fam = out.setdefault(name, Family(FAMILIES[name]))
        fam.samples.append((sample, labels, value))
    return out


def window_families(inp: ExportInput) -> dict[str, Family]:
    """The gauges of the current state and of the window, computed by the same metrics as ``check``/``export``."""
    ds = inp.ds
    project = ds.project_path
    fams = {n: Family(FAMILIES[n]) for n in FAMILIES if FAMILIES[n].type in ("gauge", "stateset")}
    for r in cache_restore_rates(ds, "key", include_retried=inp.include_retried):
        for outcome, count in sorted(r.outcomes.items()):
            labels = {"project": project, "key": r.group, "outcome": outcome}
            fams["cidash_cache_restores_window"].add("", labels, count)
        if r.hit_rate is not None:
            fams["cidash_cache_hit_ratio_window"].add("", {"project": project, "key": r.group}, r.hit_rate / 100)
    per_job: dict[str, list[float]] = defaultdict(list)
    for s in job_startups(ds, include_retried=inp.include_retried):
        per_job[s.name].append(s.seconds)
    for name, values in sorted(per_job.items()):
        summary = summarize(values)
        for q, v in (("0.5", summary.median), ("0.9", summary.p90)):
            if v is not None:
                fams["cidash_job_startup_quantile_window_seconds"].add(
                    "", {"project": project, "job_name": name, "quantile": q}, v
                )
    build = image_build_reliability(ds, inp.build_job)
    if build.first_attempt_rate is not None:
        fams["cidash_image_build_first_attempt_ratio_window"].add(
            "", {"project": project, "job_name": build.job_name}, build.first_attempt_rate / 100
        )
    if inp.since is not None:
        fams["cidash_window_seconds"].add("", {"project": project}, (inp.generated_at - inp.since).total_seconds())
    seen: set[tuple[str, str, str]] = set()
    for point in reversed(image_size_history(ds, inp.image_repository)):
        key = (point.repository, point.tag, point.digest or "")
        if key in seen:
            continue
        seen.add(key)
        labels = {"project": project, "repository": point.repository, "tag": point.tag, "digest": point.digest or ""}
        fams["cidash_image_size_bytes"].add("", labels, point.size_bytes)
    if inp.report is not None:
        for c in inp.report.criteria:
            base = {"project": project, "criterion": c.id}
            for state in ("pass", "fail", "no_data"):
                fams["cidash_criterion_status"].add("", {**base, "cidash_criterion_status": state}, c.status == state)
            fams["cidash_criterion_pass"].add("", base, 1 if c.status == "pass" else 0)
            if c.value is not None:
                fams["cidash_criterion_value"].add("", {**base, "unit": c.unit}, c.value)
            fams["cidash_criterion_target"].add("", {**base, "unit": c.unit}, c.target)
    if inp.last_sync is not None:
        fams["cidash_last_sync_success_timestamp_seconds"].add("", {"project": project}, inp.last_sync.timestamp())
    return {n: f for n, f in fams.items() if f.samples}


def project_families(inp: ExportInput) -> dict[str, Family]:
    """Every family of one project: running totals (from the store, else counted over the whole dataset) and
    the window/state gauges."""
    totals = inp.totals
    if totals is None:
        totals = counter_increments(inp.ds, inp.build_job)
    return merge_families([families_from_totals(totals), window_families(inp)])


def merge_families(parts: Iterable[dict[str, Family]]) -> dict[str, Family]:
    """Families of several sources (projects) merged by name, in :data:`FAMILIES` order."""
    merged: dict[str, Family] = {}
    for part in parts:
        for name, fam in part.items():
            merged.setdefault(name, Family(fam.spec)).samples.extend(fam.samples)
    order = {n: i for i, n in enumerate(FAMILIES)}
    return {n: merged[n] for n in sorted(merged, key=lambda n: order.get(n, len(order)))}


OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def exposition(families: dict[str, Family], fmt: str = "openmetrics") -> str:
    """The text exposition: ``openmetrics`` (OpenMetrics 1.0, ends in ``# EOF``) or ``prometheus`` (text 0.0.4).

    Both carry the same series names: a counter family ``x`` has samples ``x_total``; the info family
    ``cidash_build`` has ``cidash_build_info``; a stateset is a gauge per state in Prometheus text."""
    if fmt not in ("openmetrics", "prometheus"):
        raise ValueError(f"unknown exposition format {fmt!r}")
    om = fmt == "openmetrics"
    out: list[str] = []
    for fam in families.values():
        spec = fam.spec
        if om:
            out.append(f"# TYPE {spec.name} {spec.type}")
            if spec.unit:
                out.append(f"# UNIT {spec.name} {spec.unit}")
            out.append(f"# HELP {spec.name} {spec.help}")
        else:
            kind = {"info": "gauge", "stateset": "gauge"}.get(spec.type, spec.type)
            name = {"counter": f"{spec.name}_total", "info": f"{spec.name}_info"}.get(spec.type, spec.name)
            out.append(f"# HELP {name} {spec.help}")
            out.append(f"# TYPE {name} {kind}")
        for sample, labels, value in fam.samples:
            out.append(f"{sample}{_labels(labels)} {_num(float(value))}")
    if om:
        out.append("# EOF")
    return "\n".join(out) + "\n"


def to_openmetrics(inp: ExportInput) -> str:
    """OpenMetrics text exposition (``application/openmetrics-text; version=1.0.0``), ending in ``# EOF``."""
    return exposition(project_families(inp), "openmetrics")


def to_prometheus(inp: ExportInput) -> str:
    """Prometheus text exposition 0.0.4: the same series as :func:`to_openmetrics`."""
    return exposition(project_families(inp), "prometheus")


def render_export(inp: ExportInput, fmt: str) -> str:
    """``inp`` in the export format ``fmt``, computed with the cyclic garbage collector paused (as
    :func:`export_document`)."""
    from cidash.dataset import gc_paused

    with gc_paused():
        return _render_export(inp, fmt)


def _render_export(inp: ExportInput, fmt: str) -> str:
    if fmt == "json":
        return to_json(inp)
    if fmt == "csv":
        return to_csv(inp)
    if fmt == "markdown":
        return to_markdown(inp)
    if fmt == "openmetrics":
        return to_openmetrics(inp)
    if fmt == "prometheus":
        return to_prometheus(inp)
    raise ValueError(f"unknown export format {fmt!r}")
