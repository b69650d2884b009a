"""`cidash compare --baseline SPEC --candidate SPEC`: a before/after report."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime

HELP = "before/after report of two slices of CI history"
DESCRIPTION = """\
Compare two slices of the synced CI history, e.g. before and after the CI-image migration. For each metric
(job start-up and its phases, time to first script, pipeline duration and queue, job queue) it prints the
baseline and candidate median and p90, n, the change of the median in % of the baseline and a 95 % bootstrap
confidence interval for that change (seeded: the same data always gives the same report). Value metrics (CI
image size, image-build first-attempt success, cache hit rate, stale-cache events) compare one number per side.
Rows tied to a criterion end in a verdict against its target ([criteria] in the config): PASS, FAIL, or
"not enough data" when either side has fewer than [criteria] min_n samples (default 10).

SPEC (each of --baseline and --candidate):
  2026-11-01..2026-11-14   pipelines created on those UTC days, both included (2026-11-01.. or ..2026-11-14
                           leave an end open; a single date is that day)
  #100..#200               pipeline ids 100 to 200 included (also pipelines:100..200)
  abc1234..def5678         pipelines created from the first pipeline of commit abc1234 to the last one of
                           def5678 (SHA prefixes, 7+ hex digits; also commits:abc1234..def5678)
  ref:main                 pipelines of one branch or tag
  image:sha256:DIGEST      jobs that ran in the CI image with that digest (a unique prefix of 6+ hex digits)
  image:TAG                jobs that ran in the image the registry tag points to
  A,B                      several joined by commas select what matches all, e.g. 2026-11-13..,ref:main

Quantiles are type-7 linear interpolation; the interval is a percentile bootstrap of the relative change in
median. MB = 10^6 bytes. The start-up verdict is PASS when the median improves by at least the target.

exit codes:
  0  no verdict is FAIL    1  a verdict is FAIL    2  bad SPEC, no store or project, bad config

example:
  cidash compare --baseline 2026-10-28..2026-11-12 --candidate 2026-11-13.. --format markdown
  cidash compare --baseline ..2026-11-12,ref:main --candidate 2026-11-13..,ref:main
  cidash compare --baseline image:debian-12 --candidate image:sha256:2c569366c69a
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from cidash.commands.common import add_store_args, bounded

    parser.add_argument("--baseline", required=True, metavar="SPEC", help="the 'before' slice")
    parser.add_argument("--candidate", required=True, metavar="SPEC", help="the 'after' slice")
    from cidash.commands.common import add_format_args

    add_format_args(
        parser,
        ("table", "json", "markdown"),
        default="table",
        help_extra="; markdown is made to paste into a merge request",
    )
    parser.add_argument("--include-retried", action="store_true", help="count retried jobs too (excluded by default)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="bootstrap seed (default 0)")
    parser.add_argument(
        "--resamples",
        type=bounded(1, 1_000_000, integer=True),
        default=2000,
        metavar="N",
        help="bootstrap resamples (default 2000)",
    )
    parser.add_argument("--project", metavar="PATH", help="project path or id (default: the only one in the store)")
    parser.add_argument(
        "--now", metavar="ISO", help="compare the history as it stood at this UTC time (default: everything stored)"
    )
    add_store_args(parser)


_HEXISH = re.compile(r"(?:sha256:)?[0-9a-f]{1,5}", re.IGNORECASE)


def empty_spec_hint(side: str, text: str) -> str:
    """What to say when a SPEC selects nothing: a short hex word after ``image:`` was read as a tag name,
    since a digest prefix needs ``sha256:`` and 6+ hex digits (shorter ones are ambiguous across images)."""
    from cidash.textsafe import clean

    msg = f"the {side} SPEC {clean(text)!r} matches no pipeline in the store"
    for part in text.split(","):
        value = part.strip()[len("image:") :] if part.strip().startswith("image:") else ""
        if value and _HEXISH.fullmatch(value):
            msg += f"; {clean(value)!r} was read as an image tag: a digest prefix is image:sha256: and 6+ hex digits"
    return msg


def run(args: argparse.Namespace) -> int:
    import sys

    from cidash.commands.check import parse_now
    from cidash.commands.common import (
        color_enabled,
        json_document,
        load_config_from_args,
        open_store_from_args,
        output_format,
        working,
    )
    from cidash.errors import UsageError
    from cidash.models import ExitCode
    from cidash.report import render_comparison
    from cidash.snapshot import load_snapshot
    from cidash.specs import parse_spec

    fmt = output_format(args)
    baseline = parse_spec(args.baseline)
    candidate = parse_spec(args.candidate)
    if not 1 <= args.resamples <= 100_000:
        raise UsageError("--resamples must be between 1 and 100000")
    config = load_config_from_args(args)
    now = parse_now(args.now) if args.now else None
    with open_store_from_args(args, config, readonly=True) as store, working("cidash compare"):
        # without --now a comparison of two named slices does not depend on the time (the snapshot's criteria are
        # evaluated only when asked for, so compare does not pay for them); with --now only what existed then counts
        snap = load_snapshot(
            store,
            config,
            now or datetime.now(UTC),
            project=args.project,
            include_retried=args.include_retried,
            seed=args.seed,
            evaluate_now=False,
            as_of=now is not None,
            since="window",
            specs=(baseline, candidate),  # only the slices compared are loaded when they name dates
            uploads=False,  # no writer's upload window is compared
            narrow=True,  # nor the jobs' stage, SHA, runner, URL, ...
        )
        result = snap.compare(baseline, candidate, resamples=args.resamples)  # (the bootstrap: seconds at scale)
    for side, spec, count in (
        ("baseline", baseline, result.baseline_pipelines),
        ("candidate", candidate, result.candidate_pipelines),
    ):
        if count == 0:
            print(f"cidash compare: warning: {empty_spec_hint(side, spec.text)}", file=sys.stderr)
    if fmt == "json":
        sys.stdout.write(json_document(result.as_dict()))
    else:
        color = fmt == "table" and color_enabled(sys.stdout)
        sys.stdout.write(render_comparison(result, fmt, color=color))
    return ExitCode.PROBLEMS if result.any_fail else ExitCode.OK
