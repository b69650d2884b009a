"""`cidash check`: evaluate the success criteria over the store; exit 1 if any fails."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cidash.config import Config

HELP = "evaluate the criteria; exit 1 if any fails"
DESCRIPTION = """\
Evaluate cidash's success criteria over the synced history in the store and print a verdict per criterion:
PASS, FAIL or NO DATA (never PASS without data), with the measured value, the target, the sample size n and
one sentence of evidence.

criteria (ids, default targets; configure them in [criteria], job names in [image], files in [cache_key]):
  image_size               CI image size (registry total_size, MB = 10^6 bytes) <= 215 MB
  startup_improvement      median job start-up (job start -> first script line), candidate vs baseline,
                           >= 30 % faster; baseline/candidate = [criteria] baseline/candidate SPECs, else history
                           on the criteria ref split at the most recent CI-image digest change
  image_build_reliability  first-attempt success of the image-build job > 99 %
  stale_caches             restores whose key did not change although critical files did, or whose key fell
                           back to "default": 0
  cache_key_files          entries in any cache:key:files list <= 2
  cache_writers            writer jobs sharing a key without a resource_group + overlapping uploads seen: 0
  tools_verified           every run of the image-verification job passed

JSON (--format json), a stable contract:
  {"ok": bool, "project": str, "generated_at": str,
   "criteria": [{"id", "status": "pass"|"fail"|"no_data", "value", "target", "unit", "n", "evidence",
                 "title", "comparator", "details": {...}}]}
  "ok" is false whenever a criterion fails (and, with --strict, when one has no data).

exit codes:
  0  no criterion fails (criteria without data do not fail the check unless --strict)
  1  at least one criterion fails (or, with --strict, has no data)
  2  cannot evaluate: no store, no project, bad config or SPEC, connection error with --sync

examples:
  cidash check
  cidash check --format json | jq '.criteria[] | select(.status != "pass")'
  cidash check --format junit > cidash-criteria.xml
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from cidash.commands.common import add_connection_args, add_format_args, add_store_args

    add_format_args(parser, ("table", "json", "markdown", "junit"), default="table")
    parser.add_argument("--strict", action="store_true", help="exit 1 also when a criterion has no data")
    parser.add_argument("--include-retried", action="store_true", help="count retried jobs too (excluded by default)")
    parser.add_argument("--criterion", action="append", metavar="ID", help="evaluate only this criterion (repeatable)")
    parser.add_argument(
        "--now", metavar="ISO", help="evaluate as of this UTC time (default: now), for reproducible reports"
    )
    parser.add_argument(
        "--sync",
        action="store_true",
        help="refresh the store from GitLab first (needs a connection, see 'cidash sync --help')",
    )
    add_store_args(parser)
    add_connection_args(parser)


def parse_now(text: str | None) -> datetime:
    """``--now`` as an aware UTC datetime (naive input is taken as UTC)."""
    from datetime import UTC

    from cidash.errors import UsageError

    if not text:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--now {text!r} is not an ISO date or time", hint="e.g. 2026-11-27T12:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def sync_first(args: argparse.Namespace, config: Config, now: datetime) -> None:
    """``--sync``: refresh the store through the sync engine before evaluating (one line on stderr)."""
    import sys

    from cidash.commands.common import client_from_args, open_store_from_args
    from cidash.sync import SyncOptions, sync_projects

    options = SyncOptions.from_config(config, now=now)
    with client_from_args(args, config) as client, open_store_from_args(args, config) as store:
        reports = sync_projects(
            client,
            store,
            projects=client.connection.projects,
            group=client.connection.group,
            options=options,
            now=now,
        )
    for report in reports:
        if report.error is not None:
            print(f"cidash: warning: {report.summary()}", file=sys.stderr)
            continue
        print(
            f"cidash: synced {report.project.path}: {report.pipelines} pipelines, {report.jobs} jobs", file=sys.stderr
        )


def run(args: argparse.Namespace) -> int:
    import sys

    from cidash.commands.common import (
        color_enabled,
        json_document,
        load_config_from_args,
        open_store_from_args,
        output_format,
        working,
    )
    from cidash.criteria import CRITERIA_IDS
    from cidash.errors import UsageError
    from cidash.models import ExitCode
    from cidash.report import render_criteria
    from cidash.snapshot import load_snapshot
    from cidash.textsafe import clean

    fmt = output_format(args)
    only = tuple(args.criterion or ())
    unknown = [c for c in only if c not in CRITERIA_IDS]
    if unknown:
        raise UsageError(f"unknown criterion {unknown[0]!r}", hint=f"known: {', '.join(CRITERIA_IDS)}")
    now = parse_now(args.now)
    config = load_config_from_args(args)
    if args.sync:
        sync_first(args, config, now)
    projects = tuple(args.project or ()) or config.gitlab.projects
    if args.project and len(args.project) > 1:
        raise UsageError("cidash check evaluates one project at a time", hint="give --project once")
    with open_store_from_args(args, config, readonly=True) as store, working("cidash check"):
        snap = load_snapshot(
            store,
            config,
            now,
            project=projects[0] if len(projects) == 1 else None,
            configured=projects,
            include_retried=args.include_retried,
            only=only or None,
            since="window",  # only the periods the criteria judge are loaded
            phases=False,  # and no start-up phase sections: no criterion reads them
            ref_only=True,  # of the criteria ref only: every criterion judges it
            narrow=True,  # and only the job columns a criterion reads (check shows no evidence table)
        )
    report = snap.report
    for warning in report.warnings:
        print(f"cidash: warning: {clean(warning)}", file=sys.stderr)
    if fmt == "json":
        sys.stdout.write(json_document(report.as_dict(strict=args.strict)))
    else:
        color = fmt == "table" and color_enabled(sys.stdout)
        sys.stdout.write(render_criteria(report, fmt, strict=args.strict, color=color))
    return ExitCode.OK if report.ok(strict=args.strict) else ExitCode.PROBLEMS
