"""`cidash retry JOB_ID`: retry one job through the project-jobs endpoint, confirmed and audited."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cidash.actions import ActionPlan, ActionRemote
    from cidash.config import Config
    from cidash.models import Project

HELP = "retry a job (e.g. a failed CI-image build) by id: confirmed, audited, followed until it starts"
DESCRIPTION = """\
Retry one job of the project: POST /api/v4/projects/:id/jobs/:job_id/retry. GitLab creates a new
attempt of the job in the same pipeline; cidash then waits (polling with back-off, at most
--follow-timeout seconds) until it starts and prints its URL.

cidash reads the job first and refuses, without sending anything, when the job is still created,
pending or running, is a manual job that never ran (play it: cidash rebuild), or was already retried.
It shows the plan (project, ref, effect, the exact HTTP call) and asks for confirmation. Every attempt,
refusal, dry run and answer is recorded in the store's audit table (never a token).

Examples:
  cidash retry 10342 --dry-run
  cidash retry 10342 --project platform/app --yes

Errors in words: a token without the api scope or the Developer role (403), a job GitLab will not
retry, a job that does not exist (404), rate limiting (429, retried up to 3 times first).

exit codes: 0 done (or dry run); 1 you answered no at the prompt (nothing was sent);
2 refused (read-only mode, a job that cannot be retried, no terminal to confirm and no --yes), GitLab
said no, or a usage/config/connection error, with a one-line reason.
"""


def _job_id(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"not a job id: {text!r} (a positive number, e.g. 10342)")
    return int(text)


def configure(parser: argparse.ArgumentParser) -> None:
    from cidash.commands.rebuild import add_action_args

    parser.add_argument("job_id", type=_job_id, metavar="JOB_ID", help="the job to retry")
    add_action_args(parser)


def run(args: argparse.Namespace) -> int:
    from cidash.actions import plan_retry
    from cidash.commands.action_flow import run_action

    def make_plan(remote: ActionRemote, project: Project, config: Config) -> ActionPlan:
        del config
        return plan_retry(remote, project, args.job_id)

    return run_action(args, action="retry", target=f"job {args.job_id}", make_plan=make_plan)
