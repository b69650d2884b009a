"""`cidash prune`: delete old pipelines (and their jobs and log facts) from the store."""

from __future__ import annotations

import argparse

from cidash.commands.common import add_store_args

HELP = "delete pipelines older than a date (with their jobs and log facts) from the store"
DESCRIPTION = """\
Delete from the local store every pipeline created before --before, with its jobs, parsed log facts, cache
events, and the file checksums and CI files of commits no newer pipeline uses. Image-tag history, resource
groups, sync cursors and the audit log are kept, so a later sync does not fetch the pruned history again.

--before takes an ISO date/time (2026-05-01, 2026-05-01T12:00Z) or an age (90d, 12w).

examples:
  cidash prune --before 2026-01-01 --dry-run
  cidash prune --before 90d --project platform/app

exit codes: 0 done; 2 bad date, unknown project, or store error.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    add_store_args(parser)
    parser.add_argument("--before", required=True, metavar="DATE", help="ISO date/time or age (e.g. 90d)")
    parser.add_argument("--project", metavar="PATH", help="only this project (path or id); default all")
    parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    from cidash.commands.common import add_format_args

    add_format_args(parser, ("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from cidash.commands.common import json_document, load_config_from_args, open_store_from_args, output_format
    from cidash.errors import UsageError
    from cidash.sync import parse_since

    fmt = output_format(args)
    now = datetime.now(UTC)
    try:
        before = parse_since(args.before, now=now)
    except UsageError:  # its message names --since
        raise UsageError(
            f"cannot read --before {args.before!r}",
            hint="use an ISO date/time such as 2026-05-01 or an age such as 90d",
        ) from None
    if before is None:
        raise UsageError("--before needs a date or an age, not 'all'")
    config = load_config_from_args(args)
    with open_store_from_args(args, config) as store:
        project_id = None
        if args.project:
            project = store.project(args.project)
            if project is None:
                raise UsageError(f"project {args.project} is not in the store {store.location}")
            project_id = project.id
        if not args.dry_run:
            # Fold what is about to go into the running totals first: exported counters never fall on a prune.
            from cidash.export import update_running_totals

            for p in store.projects():
                if project_id is None or p.id == project_id:
                    update_running_totals(store, p, config.image.build_job)
        counts = store.prune(before, project_id=project_id, dry_run=args.dry_run)
    if fmt == "json":
        import sys

        doc = {"dry_run": args.dry_run, "before": before.isoformat(), "deleted": dict(counts)}
        sys.stdout.write(json_document(doc))
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    detail = ", ".join(f"{n} {table}" for table, n in counts.items() if n)
    print(f"{verb} {detail or 'nothing'} (before {before.strftime('%Y-%m-%d %H:%M UTC')})")
    return 0
