"""`cidash export`: the synced metrics for other tools."""

from __future__ import annotations

import argparse
from datetime import datetime

HELP = "the synced metrics as json, csv, markdown, openmetrics or prometheus text"
DESCRIPTION = """\
Export the metrics cidash computes from the store, so other tools can take over: pipeline duration and queue,
job start-up and its phases, time to first script, cache restore outcomes per key/job/ref, CI-image sizes per
tag and digest, image-build reliability, stale-cache events, overlapping cache writers, and the criteria.

formats (--format, default json):
  json          one object: {"project", "generated_at", "since", "quantile_method", "units", "counts",
                "metrics": {...each with its n...}, "criteria": [same objects as 'cidash check --format json']}
  csv           long format, one measurement a row: project,metric,scope,statistic,value,n
  markdown      tables to paste into an issue or merge request
  openmetrics   OpenMetrics text for Prometheus (e.g. via node_exporter's textfile collector); the same
                families as 'cidash serve' serves on /metrics (reference: docs/team.md), per project:
                  cidash_job_startup_seconds        histogram  {project, job_name, image}
                  cidash_pipeline_duration_seconds  histogram  {project, ref}
                  cidash_cache_restores_total       counter    {project, ref, job_name, stage, key, outcome}
                  cidash_image_builds_total         counter    {project, ref, job_name, attempt, result}
                  cidash_cache_hit_ratio_window     gauge      {project, key}   (and other *_window gauges)
                  cidash_image_size_bytes           gauge      {project, repository, tag, digest}
                  cidash_criterion_status           stateset   {project, criterion}
                  cidash_criterion_value/_target    gauge      {project, criterion, unit}
                counters and histograms are running totals kept in the store: they never fall (not after
                'cidash prune', not after a restart); *_window gauges cover --since.
  prometheus    the same series in the Prometheus text format 0.0.4

exit codes:
  0  exported    2  no store or project, bad option or config

examples:
  cidash export --format openmetrics --output /var/lib/node_exporter/cidash.prom
  cidash export --format csv --since 2026-11-01 > metrics.csv
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from cidash.commands.common import add_format_args, add_store_args

    add_format_args(parser, ("json", "csv", "markdown", "openmetrics", "prometheus"), default="json")
    parser.add_argument(
        "--since",
        metavar="DAYS|DATE",
        help='only pipelines created since then: "30d", "12h", "2026-11-01" or "all" (default: [criteria] window_days)',
    )
    parser.add_argument("--ref", metavar="REF", help="only this ref (default: all refs)")
    parser.add_argument("--include-retried", action="store_true", help="count retried jobs too (excluded by default)")
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="write to FILE instead of standard output: a regular file or a new path, replaced atomically; "
        "a device, FIFO, socket or directory is refused; - is standard output",
    )
    parser.add_argument("--now", metavar="ISO", help="as of this UTC time (default: now)")
    parser.add_argument("--project", metavar="PATH", help="project path or id (default: the only one in the store)")
    add_store_args(parser)


def parse_since(text: str | None, now: datetime, default_days: int) -> datetime | None:
    import re
    from datetime import UTC, date, timedelta

    from cidash.errors import UsageError

    if not text:
        return now - timedelta(days=default_days)
    if text.strip().lower() == "all":
        return None
    if m := re.fullmatch(r"(\d+)([dh])", text.strip()):
        amount = int(m[1])
        try:
            return now - (timedelta(days=amount) if m[2] == "d" else timedelta(hours=amount))
        except OverflowError:  # 99999999d: before year 1
            raise UsageError(
                f"--since {text.strip()!r} reaches back before year 1", hint="use e.g. 30d or all"
            ) from None
    try:
        d = date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--since {text!r} is neither DAYS (30d, 12h), a date (2026-11-01) nor all") from None
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    from cidash.commands.check import parse_now
    from cidash.commands.common import (
        json_document,
        load_config_from_args,
        open_store_from_args,
        output_format,
        working,
    )
    from cidash.dataset import resolve_project
    from cidash.errors import StoreError
    from cidash.export import export_document, render_export, update_running_totals
    from cidash.models import ExitCode
    from cidash.outfile import write_text
    from cidash.snapshot import build_snapshot

    fmt = output_format(args)
    now = parse_now(args.now)
    config = load_config_from_args(args)
    since = parse_since(args.since, now, config.criteria.window_days)
    # the store must exist: export never creates one
    with open_store_from_args(args, config, readonly=True) as store, working("cidash export"):
        project = resolve_project(store, args.project, config.gitlab.projects)
        fold = fmt in ("openmetrics", "prometheus")
        if not fold:
            inp = build_snapshot(  # (narrow: these formats read no job's stage, SHA, runner, URL, ...)
                store, config, project, now, include_retried=args.include_retried, since=since, narrow=True
            ).export_input(store, since=since, ref=args.ref)
    if fold:
        # The counters' running totals catch up with the store first (see docs/team.md); a store this user may
        # only read is exported with the totals it already holds.
        try:
            writable = open_store_from_args(args, config)
        except StoreError:
            writable = open_store_from_args(args, config, readonly=True)
        with writable as store, working("cidash export"):
            if not store.readonly:
                update_running_totals(store, project, config.image.build_job)
            inp = build_snapshot(
                store, config, project, now, include_retried=args.include_retried, since=since
            ).export_input(store, since=since, ref=args.ref)
    text = json_document(export_document(inp)) if fmt == "json" else render_export(inp, fmt)
    # a regular file or a new path, replaced atomically (a scraper never reads half a file); "-": stdout
    write_text(args.output or "-", text, option="--output")
    return ExitCode.OK
