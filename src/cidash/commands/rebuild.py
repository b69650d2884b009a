"""`cidash rebuild`: trigger a CI-image rebuild on a ref, guarded, confirmed and audited."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cidash.actions import ActionPlan, ActionRemote
    from cidash.config import Config
    from cidash.models import Project

HELP = "trigger a CI-image rebuild: play the manual image-build job, or create a pipeline (guarded, confirmed)"
DESCRIPTION = """\
Trigger a rebuild of the CI image on a ref (default: [actions] rebuild_ref, else the project's
default branch):

  - if the latest pipeline on the ref has a manual image-build job ([image] build_job, default
    build-ci-image), play it (POST /api/v4/projects/:id/jobs/:job_id/play);
  - otherwise create a pipeline on the ref with the rebuild variables (POST /api/v4/projects/:id/pipeline),
    [actions] rebuild_variables (default FORCE_CI_IMAGE_REBUILD=true) plus every --var (a --var with the
    same key replaces the configured value). When a manual job is played, only the --var values are sent,
    as job variables.

Guard against races and duplicates: when an image-build job for that ref is already created, pending,
running or waiting for its resource group, cidash refuses and prints that job's URL; --force triggers
anyway. It then shows the plan (project, ref, effect, the exact HTTP call), asks for confirmation, sends
it, and waits (polling with back-off, at most --follow-timeout seconds) until the job starts, printing its
URL. Every attempt, refusal, dry run and answer is recorded in the store's audit table (who: your GitLab
username, else the local user; never a token).

Examples:
  cidash rebuild --dry-run
  cidash rebuild --ref main --var FORCE_CI_IMAGE_REBUILD=true --yes
  cidash rebuild --project platform/app --force

Errors in words: a token without the api scope or the Developer role (403), a job that is no longer
manual (400), a conflict or lock (409/423), rate limiting (429, retried up to 3 times first).

exit codes: 0 done (or dry run); 1 you answered no at the prompt (nothing was sent);
2 refused (read-only mode, the duplicate guard, no terminal to confirm and no --yes), GitLab said no,
or a usage/config/connection error, with a one-line reason.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ref", metavar="REF", help="the ref (default: [actions] rebuild_ref, else default branch)")
    parser.add_argument(
        "--var",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="a pipeline variable (repeatable; keys: letters, digits, _); overrides [actions] rebuild_variables",
    )
    parser.add_argument(
        "--show-values",
        action="store_true",
        help="print variable values in the plan (default: KEY=***; values may be secrets, the audit keeps names only)",
    )
    parser.add_argument("--force", action="store_true", help="trigger even if an image build is already on its way")
    add_action_args(parser)


def positive_seconds(text: str) -> float:
    """An argparse ``type``: a finite number of seconds > 0 (``0``, ``-1``, ``nan``, ``inf`` are usage errors)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0 or value > 86_400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds between 0 and 86400")
    return value


def add_action_args(parser: argparse.ArgumentParser, *, follow_job: bool = True) -> None:
    """``--dry-run --yes --read-only`` (+ ``--no-follow --follow-timeout``), the store and connection options.

    Shared by rebuild and retry; kept here, not in :mod:`cidash.actions`, so ``cidash --help`` imports nothing
    heavy."""
    from cidash.commands.common import add_connection_args, add_format_args, add_store_args

    add_format_args(
        parser, ("text", "json"), default="text", help_extra="; json: one document at the end, needs --yes or --dry-run"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan and the exact HTTP call; send nothing (allowed in read-only mode)",
    )
    parser.add_argument("-y", "--yes", action="store_true", help="do not ask (needed without a terminal, e.g. in CI)")
    parser.add_argument(
        "--read-only", action="store_true", help="refuse every mutating action (also [actions] read_only)"
    )
    if follow_job:
        parser.add_argument("--no-follow", action="store_true", help="do not wait for the job to start")
        parser.add_argument(
            "--follow-timeout",
            type=positive_seconds,
            default=120.0,
            metavar="SECONDS",
            help="stop waiting for the job to start after this long (default 120)",
        )
    add_store_args(parser)
    add_connection_args(parser)


def run(args: argparse.Namespace) -> int:
    from cidash.actions import merge_variables, parse_variable, plan_rebuild
    from cidash.commands.action_flow import run_action

    extra = [parse_variable(v) for v in args.var]  # validated before any request

    def make_plan(remote: ActionRemote, project: Project, config: Config) -> ActionPlan:
        return plan_rebuild(
            remote,
            project,
            ref=args.ref or config.actions.rebuild_ref,
            variables=merge_variables(config.actions.rebuild_variables, extra),
            play_variables=tuple(extra),
            build_job=config.image.build_job,
            force=args.force,
            show_values=args.show_values,
        )

    return run_action(args, action="rebuild", target=f"ref {args.ref or '(default)'}", make_plan=make_plan)
