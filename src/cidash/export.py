"""``cidash export``: the synced metrics as JSON, CSV, Markdown or OpenMetrics text.

OpenMetrics families (all with a ``project`` label; ``ref``/``job`` where they apply):

=====================================  =========  ==============================================================
``cidash_job_startup_seconds``         histogram  job start -> first script line, per ``ref`` and ``job``
``cidash_pipeline_duration_seconds``   histogram  pipeline running time, per ``ref``
``cidash_cache_restores``              counter    restore attempts per ``ref``, ``job``, ``outcome``
``cidash_image_builds``                counter    image-build attempts per ``ref``, ``job``, ``result``
``cidash_image_size_bytes``            gauge      registry ``total_size`` per ``repository``, ``tag``, ``digest``
``cidash_criterion_pass``              gauge      1 when the criterion passes, else 0 (``status`` label says why)
``cidash_criterion_value``             gauge      the criterion's measured value (``unit`` label), when measured
=====================================  =========  ==============================================================

Counters are totals over the exported window, not since process start. Retried jobs are excluded from start-up
and cache restores (as everywhere in cidash), but every image-build attempt counts.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cidash.criteria import CriteriaReport
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
    startup_sample,
    time_to_first_script,
)
from cidash.models import MB
from cidash.stats import QUANTILE_METHOD, summarize
from cidash.textsafe import csv_cell, md_cell, md_code, openmetrics_label

EXPORT_FORMATS: tuple[str, ...] = ("json", "csv", "markdown", "openmetrics")
STARTUP_BUCKETS: tuple[float, ...] = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
PIPELINE_BUCKETS: tuple[float, ...] = (60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200)


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


def _iso(d: datetime | None) -> str | None:
    return None if d is None else d.astimezone(UTC).isoformat().replace("+00:00", "Z")


def export_document(inp: ExportInput) -> dict[str, Any]:
    """The JSON export: every metric with its n (the other formats are views of this document)."""
    ds = inp.ds
    retried = inp.include_retried
    startups = job_startups(ds, include_retried=retried)
    per_job: dict[str, list[float]] = defaultdict(list)
    for s in startups:
        per_job[s.name].append(s.seconds)
    build = image_build_reliability(ds, inp.build_job)
    first = [f.seconds for f in time_to_first_script(ds, include_retried=retried)]
    stale = stale_cache_events(ds, inp.critical_files, include_retried=retried)
    return {
        "project": ds.project_path,
        "generated_at": _iso(inp.generated_at),
        "since": _iso(inp.since),
        "quantile_method": QUANTILE_METHOD,
        "units": {"durations": "seconds", "sizes": "bytes (MB = 10^6 bytes)"},
        "counts": {"pipelines": len(ds.pipelines), "jobs": len(ds.jobs), "jobs_with_log_facts": len(ds.facts)},
        "metrics": {
            "pipeline_duration": pipeline_durations(ds).summary().as_dict(),
            "pipeline_queue": pipeline_queue_times(ds).summary().as_dict(),
            "job_startup": summarize(s.seconds for s in startups).as_dict(),
            "job_startup_by_job": {name: summarize(v).as_dict() for name, v in sorted(per_job.items())},
            "startup_phases": {
                phase: startup_sample(ds, include_retried=retried, phase=phase).summary().as_dict()
                for phase in STARTUP_PHASES
            },
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
# OpenMetrics
# ---------------------------------------------------------------------------------------------------------------


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{openmetrics_label(v)}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _sum(values: Sequence[float]) -> float:
    """``math.fsum``, but +Inf instead of an OverflowError when huge values (1e308) add up past a float."""
    try:
        return math.fsum(values)
    except OverflowError:
        return math.inf


def _histogram(
    out: list[str],
    name: str,
    help_text: str,
    groups: dict[tuple[tuple[str, str], ...], list[float]],
    buckets: Sequence[float],
) -> None:
    out += [f"# TYPE {name} histogram", f"# UNIT {name} seconds", f"# HELP {name} {help_text}"]
    for key in sorted(groups):
        values = sorted(groups[key])
        labels = dict(key)
        for le in (*buckets, math.inf):
            count = sum(1 for v in values if v <= le)
            out.append(f"{name}_bucket{_labels({**labels, 'le': _num(float(le))})} {count}")
        out.append(f"{name}_count{_labels(labels)} {len(values)}")
        out.append(f"{name}_sum{_labels(labels)} {_num(_sum(values))}")


def to_openmetrics(inp: ExportInput) -> str:
    """OpenMetrics text exposition (``application/openmetrics-text; version=1.0.0``), ending in ``# EOF``."""
    ds = inp.ds
    project = ds.project_path
    out: list[str] = []

    startup_groups: dict[tuple[tuple[str, str], ...], list[float]] = defaultdict(list)
    for s in job_startups(ds, include_retried=inp.include_retried):
        startup_groups[(("project", project), ("ref", s.ref), ("job", s.name))].append(s.seconds)
    _histogram(out, "cidash_job_startup_seconds", "Job start to first script line.", startup_groups, STARTUP_BUCKETS)

    pipeline_groups: dict[tuple[tuple[str, str], ...], list[float]] = defaultdict(list)
    for p in ds.pipelines:
        if p.duration is not None and plausible_seconds(p.duration) and p.status in FINISHED_STATUSES:
            pipeline_groups[(("project", project), ("ref", p.ref))].append(p.duration)
    _histogram(out, "cidash_pipeline_duration_seconds", "Pipeline running time.", pipeline_groups, PIPELINE_BUCKETS)

    restores: Counter[tuple[str, str, str]] = Counter()
    for j in counted_jobs(ds, include_retried=inp.include_retried):
        facts = ds.facts.get(j.id)
        if facts is None:
            continue
        for ev in facts.cache:
            if ev.op == "restore":
                restores[(j.ref, j.name, ev.outcome)] += 1
    out += [
        "# TYPE cidash_cache_restores counter",
        "# HELP cidash_cache_restores Cache restore attempts by outcome in the exported window.",
    ]
    for (ref, job, outcome), count in sorted(restores.items()):
        labels = {"project": project, "ref": ref, "job": job, "outcome": outcome}
        out.append(f"cidash_cache_restores_total{_labels(labels)} {count}")

    builds: Counter[tuple[str, str]] = Counter()
    for j in ds.jobs:
        if j.name == inp.build_job and j.status in FINISHED_STATUSES:
            builds[(j.ref, j.status)] += 1
    out += [
        "# TYPE cidash_image_builds counter",
        "# HELP cidash_image_builds Image-build job attempts by result in the exported window.",
    ]
    for (ref, result), count in sorted(builds.items()):
        labels = {"project": project, "ref": ref, "job": inp.build_job, "result": result}
        out.append(f"cidash_image_builds_total{_labels(labels)} {count}")

    out += [
        "# TYPE cidash_image_size_bytes gauge",
        "# UNIT cidash_image_size_bytes bytes",
        "# HELP cidash_image_size_bytes Registry total_size of each CI-image tag and digest.",
    ]
    seen: set[tuple[str, str, str]] = set()
    for point in reversed(image_size_history(ds, inp.image_repository)):
        key = (point.repository, point.tag, point.digest or "")
        if key in seen:
            continue
        seen.add(key)
        labels = {"project": project, "repository": point.repository, "tag": point.tag, "digest": point.digest or ""}
        out.append(f"cidash_image_size_bytes{_labels(labels)} {point.size_bytes}")

    if inp.report is not None:
        out += [
            "# TYPE cidash_criterion_pass gauge",
            "# HELP cidash_criterion_pass 1 when the criterion passes, 0 when it fails or has no data.",
        ]
        for c in inp.report.criteria:
            labels = {"project": project, "criterion": c.id, "status": c.status}
            out.append(f"cidash_criterion_pass{_labels(labels)} {1 if c.status == 'pass' else 0}")
        out += [
            "# TYPE cidash_criterion_value gauge",
            "# HELP cidash_criterion_value The measured value of each criterion that has data.",
        ]
        for c in inp.report.criteria:
            if c.value is not None:
                labels = {"project": project, "criterion": c.id, "unit": c.unit}
                out.append(f"cidash_criterion_value{_labels(labels)} {_num(c.value)}")
    out.append("# EOF")
    return "\n".join(out) + "\n"


def render_export(inp: ExportInput, fmt: str) -> str:
    if fmt == "json":
        return to_json(inp)
    if fmt == "csv":
        return to_csv(inp)
    if fmt == "markdown":
        return to_markdown(inp)
    if fmt == "openmetrics":
        return to_openmetrics(inp)
    raise ValueError(f"unknown export format {fmt!r}")
