"""`cidash trace FILE [--json]`: parse one GitLab job log."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cidash.models import TraceFacts

HELP = "parse one job log: sections, start-up, image, cache events"
DESCRIPTION = """\
Parse one GitLab job log (the raw trace, as `GET /projects/:id/jobs/:id/trace` or the job page's
"raw" button returns it) and print what it says about start-up, the job image and the cache.

The log is read in chunks, never whole: multi-gigabyte logs are fine. Every runner generation is understood
(old `build_script` logs, ANSI colours, per-line timestamps, docker, kubernetes and shell executors, Windows
line endings), and so are saved copies whose \\r became newlines (browser saves, copy-paste). No input makes it
fail: a value it cannot use (a timestamp of month 13, ...) is unknown. Logs cut off by the runner's output limit
or still running are reported as truncated, and a cache attempt whose result never appears is "unknown", never
"miss".

JSON (--format json, or --json), one object (schema: docs/schemas/trace.schema.json):
  {"schema_version": 1, "runner_version", "executor", "truncated",
   "sections": [{"name", "start", "end", "duration"}],   (unix seconds; end/duration null if open)
   "startup_seconds",                                     (first section start -> step_script start)
   "image": {"name", "id", "digest", "pulled"} | null,
   "cache": [{"op": "restore"|"archive", "key", "outcome", "fallback"}],
   "restores": [{"key", "outcome", "keys", "via_fallback_key"}]}
  outcome: hit, miss, failed, skipped, created, up_to_date, empty, unknown
  executor: the runner's own name (docker, docker+machine, docker-autoscaler, kubernetes, shell, ...)
  fallback: a restore attempt on a fallback key; restores: one per cache the job restored (a miss then a
  fallback hit is one restore that hit via_fallback_key)

exit codes:
  0  the log was parsed (whatever it says)
  2  the file is missing or unreadable

examples:
  cidash trace job-1234.log
  curl -s --header "PRIVATE-TOKEN: $GITLAB_TOKEN" "$GITLAB_URL/api/v4/projects/42/jobs/1234/trace" \\
    | cidash trace - --json
"""

_CHUNK = 1 << 16


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help='the log file; "-" reads standard input')
    from cidash.commands.common import add_format_args

    add_format_args(parser, ("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    import sys

    from cidash.commands.common import json_document, output_format
    from cidash.errors import InputError
    from cidash.logparse import facts_to_dict, parse_stream

    path: str = args.file
    fmt = output_format(args)
    try:
        if path == "-":
            facts = parse_stream(sys.stdin.buffer, _CHUNK)
        else:
            with open(path, "rb") as fh:
                facts = parse_stream(fh, _CHUNK)
    except IsADirectoryError:
        raise InputError(f"cannot read {path}: it is a directory") from None
    except FileNotFoundError:
        raise InputError(f"cannot read {path}: no such file") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if fmt == "json":
        sys.stdout.write(json_document(facts_to_dict(facts)))
    else:
        print(summary(facts))
    return 0


def _seconds(value: float) -> str:
    import datetime

    import humanize

    text: str = humanize.precisedelta(datetime.timedelta(seconds=value), minimum_unit="seconds", format="%0.1f")
    return text


def summary(facts: TraceFacts) -> str:
    """The human summary ``cidash trace`` prints without ``--json``."""
    from cidash.logparse import phase_durations, restores
    from cidash.textsafe import clean

    lines: list[str] = []
    runner = f"gitlab-runner {facts.runner_version}" if facts.runner_version else "unknown runner"
    executor = f"{facts.executor} executor" if facts.executor else "unknown executor"
    lines.append(f"runner:   {runner}, {executor}")
    if facts.image is None:
        lines.append("image:    (not in the log)")
    else:
        image = facts.image
        how = {True: "pulled", False: "found locally", None: "pull not reported"}[image.pulled]
        extra = f", {image.digest}" if image.digest else (f", {image.id}" if image.id else "")
        lines.append(f"image:    {image.name} ({how}{extra})")
    if facts.startup_seconds is None:
        lines.append("start-up: unknown (no step_script/build_script section)")
    else:
        lines.append(f"start-up: {_seconds(facts.startup_seconds)} (first section to the job script)")
    phases = phase_durations(facts)
    if phases:
        lines.append("phases:")
        lines.extend(f"  {phase:<10} {_seconds(seconds)}" for phase, seconds in phases.items())
    open_sections = [s.name for s in facts.sections if s.end is None]
    if facts.cache:
        lines.append("cache:")
        for event in facts.cache:
            key = event.key if event.key else '""'
            detail = f" ({event.detail})" if event.detail else ""
            lines.append(f"  {event.op:<8} {event.outcome:<10} {key}{detail}")
        for restore in restores(facts):
            if len(restore.keys) > 1:
                how = f"via fallback key {restore.via_fallback_key}" if restore.via_fallback_key else "no fallback hit"
                key = restore.key if restore.key else '""'
                lines.append(f"  = restore of {key}: {restore.outcome} {how}")
    else:
        lines.append("cache:    no cache lines")
    if facts.truncated:
        where = f" (open: {', '.join(open_sections)})" if open_sections else ""
        lines.append(f"truncated: the log was cut off or is still running{where}")
    # names, keys and image references come from the log: nothing a terminal would act on gets through
    return "\n".join(clean(line, keep_tabs=True) for line in lines)
