"""The command-line flow shared by ``cidash rebuild`` and ``cidash retry``.

plan (read-only calls) -> print it -> read-only / dry-run / confirmation -> execute -> follow the job until it
starts. Every path writes one audit row in the store. Never waits on stdin without a terminal: no terminal and
no ``--yes`` is a refusal (exit 2) with a one-line reason.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from cidash.actions.base import (
    ActionPlan,
    ActionRemote,
    ActionResult,
    execute,
    follow,
    read_only_refusal,
    record_declined,
    refuse,
    resolve_actor,
)
from cidash.errors import CidashError, UsageError
from cidash.textsafe import clean

if TYPE_CHECKING:
    from cidash.config import Config
    from cidash.models import Project

#: Asks a yes/no question; None: no terminal to ask on.
Confirm = Callable[[str], "bool | None"]
PlanFactory = Callable[[ActionRemote, "Project", "Config"], ActionPlan]

EXIT_CODES_HELP = """\
Exit codes: 0 done (or dry run); 1 you answered no at the prompt (nothing was sent);
2 refused (read-only mode, a guard, no terminal to confirm and no --yes), GitLab said no, or a
usage/config/connection error, with a one-line reason."""


def _say(text: str, *, file: TextIO) -> None:
    """Print one line of a plan or result: job names, refs and GitLab's messages cleaned for the terminal."""
    print(clean(text), file=file)


def terminal_confirm(question: str) -> bool | None:
    """Ask on the terminal; None when stdin is not a terminal (CI has no stdin: never hang)."""
    try:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        interactive = False
    if not interactive:
        return None
    # the question goes to stderr so `cidash rebuild | tee log` still shows it
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if not answer:  # end of input
        return False
    return answer.strip().lower() in ("y", "yes")


def _project_ident(args: argparse.Namespace, config: Config) -> str:
    if getattr(args, "group", None):
        raise UsageError("actions work on one project: name it with --project, not --group")
    explicit = getattr(args, "project", None) or []
    projects = list(explicit) or list(config.gitlab.projects)
    if not projects:
        import os

        from cidash.config import is_ci

        if is_ci() and os.environ.get("CI_PROJECT_PATH"):
            projects = [os.environ["CI_PROJECT_PATH"]]
    if not projects:
        raise UsageError("no project: name it with --project PATH (or [gitlab] projects in cidash.toml)")
    if len(projects) > 1:
        raise UsageError(f"several projects configured ({', '.join(projects)}): name one with --project")
    return str(projects[0])


def run_action(
    args: argparse.Namespace,
    *,
    action: str,
    target: str,
    make_plan: PlanFactory,
    confirm: Confirm | None = None,
    out: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """The whole CLI flow for one mutating action (see the module docstring)."""
    from cidash.actions.base import local_actor
    from cidash.commands.common import (
        client_from_args,
        load_config_from_args,
        open_store_from_args,
        output_format,
    )
    from cidash.errors import UsageError
    from cidash.remote.mutations import ActionsRemote
    from cidash.sync.origin import check_store_origin

    fmt = output_format(args)
    if fmt == "json" and not (args.yes or args.dry_run):
        raise UsageError("--format json never asks: give --yes (or --dry-run)", hint=f"cidash {action} --help")
    final = out or sys.stdout
    # with --format json the human lines are kept for the document's "log" and one JSON document is printed
    stream: TextIO = io.StringIO() if fmt == "json" else final
    ask = confirm or terminal_confirm
    config = load_config_from_args(args)
    ident = _project_ident(args, config)
    read_only = bool(args.read_only or config.actions.read_only)
    ro_source = "--read-only" if args.read_only else f"[actions] read_only in {', '.join(config.sources) or 'config'}"
    dry_run = bool(args.dry_run)

    def now() -> datetime:
        return datetime.now(UTC)

    with open_store_from_args(args, config) as store:
        if read_only and not dry_run:
            # refuse before any request: read-only means nothing is sent, not even the reads of a plan
            reason, hint = read_only_refusal(action, ident, source=ro_source)
            raise refuse(
                store,
                now=now(),
                actor=local_actor(),
                project=ident,
                action=action,
                target=target,
                reason=reason,
                hint=hint,
            )
        with client_from_args(args, config) as client:
            check_store_origin(store, client.connection.url)
            remote = ActionsRemote(client)
            try:
                project = remote.project(ident)
                actor = resolve_actor(remote)
                plan = make_plan(remote, project, config)
                for line in plan.lines():
                    _say(line, file=stream)
                if dry_run or plan.refused:
                    result = execute(plan, remote, store, actor=actor, now=now(), dry_run=dry_run)
                    note = " (read-only mode: it would be refused)" if read_only else ""
                    _say(f"{result.message}{note}", file=stream)
                    return _done(fmt, final, stream, plan, result, code=0)
                if not args.yes:
                    answer = ask(clean(plan.question()))
                    if answer is None:
                        raise refuse(
                            store,
                            now=now(),
                            actor=actor,
                            project=project.path,
                            action=action,
                            target=plan.target,
                            reason=f"no terminal to confirm the {action} of {project.path}; nothing was sent",
                            request="; ".join(c.line for c in plan.calls),
                            hint="pass --yes to confirm in scripts and CI, or --dry-run to only print the call",
                        )
                    if not answer:
                        record_declined(plan, store, actor=actor, now=now())
                        _say("nothing was sent", file=stream)
                        return 1
                result = execute(
                    plan, remote, store, actor=actor, now=now(), read_only=read_only, read_only_source=ro_source
                )
                _say(result.message, file=stream)
                job = result.job
                if job is None:
                    if result.pipeline is not None and result.pipeline.web_url:
                        _say(f"pipeline: {result.pipeline.web_url}", file=stream)
                    return _done(fmt, final, stream, plan, result, code=0)
                if getattr(args, "no_follow", False):
                    _say(f"job {job.id}: {job.web_url or ''}".rstrip(), file=stream)
                    return _done(fmt, final, stream, plan, result, code=0)
                code = _follow(
                    remote, project.id, job.id, timeout=args.follow_timeout, stream=stream, sleep=sleep, clock=clock
                )
                return _done(fmt, final, stream, plan, result, code=code)
            finally:
                remote.close()


def _done(fmt: str, final: TextIO, log: TextIO, plan: ActionPlan, result: ActionResult, *, code: int) -> int:
    """With ``--format json``: print the one document (docs/schemas/action.schema.json); the exit code as is."""
    if fmt != "json":
        return code
    from cidash.commands.common import json_document

    lines = log.getvalue().splitlines() if isinstance(log, io.StringIO) else []
    job, pipeline = result.job, result.pipeline
    doc = {
        "action": plan.action,
        "project": {"id": plan.project.id, "path": clean(plan.project.path)},
        "ref": clean(plan.ref) if plan.ref else None,
        "target": clean(plan.target),
        "effect": clean(plan.effect),
        "requests": [clean(call) for call in plan.shown_calls()],
        "warnings": [clean(w) for w in plan.warnings],
        "refusal": clean(plan.refusal) if plan.refusal else None,
        "dry_run": result.dry_run,
        "sent": not result.dry_run and not plan.refused,
        "message": clean(result.message),
        "job": None if job is None else {"id": job.id, "status": clean(job.status), "web_url": job.web_url},
        "pipeline": None if pipeline is None else {"id": pipeline.id, "web_url": pipeline.web_url},
        "log": [clean(line) for line in lines],
    }
    final.write(json_document(doc))
    return code


def _follow(
    remote: ActionRemote,
    project_id: int,
    job_id: int,
    *,
    timeout: float,
    stream: TextIO,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> int:
    last = None
    updates = follow(remote, project_id, job_id, timeout=timeout, sleep=sleep, clock=clock)
    while True:
        try:
            update = next(updates)
        except StopIteration:
            break
        except CidashError as exc:
            # the action itself succeeded: losing sight of the job is not a failure of the command
            _say(f"stopped following job {job_id}: {exc.one_line()}", file=stream)
            break
        job = update.job
        if update.started:
            _say(f"job {job.id} {job.status} after {update.elapsed:.0f} s: {job.web_url or ''}".rstrip(), file=stream)
        elif update.timed_out:
            _say(
                f"job {job.id} still {job.status} after {update.elapsed:.0f} s (stopped waiting): "
                f"{job.web_url or ''}".rstrip(),
                file=stream,
            )
        elif job.status != last:
            _say(f"job {job.id} {job.status}...", file=stream)
        last = job.status
    return 0
