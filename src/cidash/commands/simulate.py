"""`cidash simulate`: run the simulated GitLab in the foreground for other tools (python-gitlab, curl, glab)."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta

HELP = "run the simulated GitLab for other tools (python-gitlab, curl, glab)"
DESCRIPTION = """\
Serve the built-in simulated GitLab (the world of 'cidash demo') on 127.0.0.1 until Ctrl-C.

It speaks GitLab's REST API v4 over real HTTP: projects, pipelines, jobs, job logs, repository files,
container registry, resource groups, and the mutations (create pipeline, play, retry, cancel). The world is a
seeded 30-day story of project platform/app moving its CI image from Debian (807 MB) to Alpine (215 MB).

Tokens: 'demo-token' (Maintainer) and 'demo-readonly-token' (Reporter: mutations get 403). Any other
token gets 401. These are demo tokens, not secrets.

exit codes: 0 stopped with Ctrl-C, 2 the port is in use or an option is invalid.

Example:
  cidash simulate --port 8080
  curl -H 'PRIVATE-TOKEN: demo-token' http://127.0.0.1:8080/api/v4/projects/platform%2Fapp/pipelines
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from cidash.commands.common import bounded

    parser.add_argument(
        "--port",
        type=bounded(0, 65_535, integer=True),
        metavar="P",
        default=8080,
        help="TCP port on 127.0.0.1 (default 8080; 0 picks a free one)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=7,
        metavar="S",
        help="scenario seed (default 7): the same seed serves byte-identical data",
    )
    parser.add_argument(
        "--latency-ms",
        type=bounded(0, 60_000),
        metavar="L",
        default=0.0,
        help="answer each request L milliseconds after it arrived (its own computation included)",
    )
    parser.add_argument(
        "--jitter-ms",
        type=bounded(0, 60_000),
        metavar="J",
        default=0.0,
        help="add a random 0..J milliseconds on top (deterministic with the seed)",
    )
    parser.add_argument(
        "--pipelines",
        type=bounded(1, 1_000_000, integer=True),
        metavar="N",
        default=None,
        help="total pipelines in the history instead of ~12 a day",
    )
    parser.add_argument(
        "--days", type=bounded(1, 3_650, integer=True), metavar="D", default=30, help="days of history (default 30)"
    )
    parser.add_argument(
        "--time-scale",
        type=bounded(0, 100_000, low_ok=False),
        default=1.0,
        metavar="X",
        help="simulated seconds per real second for new pipelines (default 1)",
    )
    parser.add_argument(
        "--rate-limit",
        type=bounded(1, 1_000_000, integer=True),
        metavar="N",
        default=None,
        help="answer 429 + Retry-After past N requests a minute (default: no limit)",
    )
    parser.add_argument(
        "--no-ratelimit-headers",
        action="store_true",
        help="send no RateLimit-* headers, as a self-managed GitLab with its throttles off (the default there); "
        "without it every answer carries GitLab.com's (2,000 requests a minute)",
    )
    parser.add_argument(
        "--capacity",
        type=bounded(1, 10_000, integer=True),
        metavar="N",
        default=None,
        help="serve at most N requests at once, as a GitLab of N Puma threads: the others wait their turn, and "
        "their latency counts from then (default: no queue)",
    )
    parser.add_argument(
        "--group-projects",
        type=bounded(1, 5_000, integer=True),
        metavar="N",
        default=None,
        help="serve group 'platform' of N small projects (3 days of 3 pipelines each, in the group and its "
        "subgroups) instead of the migration story (see docs/demo.md)",
    )
    parser.add_argument(
        "--hostile-strings",
        action="store_true",
        help="terminal escapes, markup, formulas and non-UTF-8 bytes in names, refs, tags and logs "
        "(see docs/security.md)",
    )


def banner(
    url: str,
    token: str,
    readonly_token: str | None,
    project_path: str,
    project_id: int,
    *,
    since: str | None = None,
    group_path: str | None = None,
    advertised: bool = True,
) -> str:
    """What the simulator is and commands that work when pasted. ``since`` (an ISO date a week before the
    simulated clock) keeps the suggested first sync under the 2,000 requests a minute the simulator advertises,
    as GitLab.com does; ``group_path`` suggests a group sync instead of the project; ``advertised`` False: it
    sends no RateLimit-* headers (``--no-ratelimit-headers``)."""
    encoded = project_path.replace("/", "%2F")
    lines = [
        f"Simulated GitLab serving {project_path} (id {project_id}) at {url}",
        f"  demo token (Maintainer): {token}",
    ]
    if readonly_token:
        lines.append(f"  read-only token (Reporter): {readonly_token}")
    lines += [
        "",
        "Try it:",
        f"  curl -H 'PRIVATE-TOKEN: {token}' '{url}/api/v4/projects/{encoded}/pipelines?per_page=5'",
        "",
        "  python - <<'EOF'   # with python-gitlab installed (pip install python-gitlab): cidash does not need it",
        "  import gitlab",
        f"  gl = gitlab.Gitlab('{url}', private_token='{token}')",
        f"  project = gl.projects.get('{project_path}')",
        "  for p in project.pipelines.list(per_page=5, get_all=False):",
        "      print(p.id, p.ref, p.status)",
        "  EOF",
        "",
    ]
    env = f"GITLAB_URL={url} GITLAB_TOKEN={token}"
    if group_path is not None:
        lines += [
            f"  cidash against it (every project of group {group_path}):",
            f"    {env} cidash sync --group {group_path}",
            f"    {env} cidash tui --group {group_path}",
        ]
    else:
        window = f" --since {since}" if since else ""
        lines += [
            "  cidash against it" + (" (the last 7 days of the story: a few seconds)" if since else "") + ":",
            f"    {env} cidash sync --project {project_path}{window}",
            f"    {env} cidash tui --project {project_path}",
        ]
        if since and advertised:
            lines += [
                "  The whole story (--since all) can take more requests than the 2,000 a minute this simulator",
                "  advertises (GitLab.com's limit, in RateLimit-* headers): that first sync waits for one reset.",
            ]
    if not advertised:
        lines += [
            "  No RateLimit-* headers (as a self-managed GitLab with its throttles off): a sync starts at 16",
            "  requests in flight and takes more, up to its concurrency, while the answers keep their pace",
            "  (--capacity N serves at most N at once); a concurrency you choose holds from the start.",
        ]
    lines += [
        "",
        "Request counts: " + url + "/__sim/stats   Stop with Ctrl-C.",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from cidash.errors import UsageError
    from cidash.sim import Scenario, SimulatedGitLab

    if args.port < 0 or args.port > 65535:
        raise UsageError(f"--port must be 0..65535, not {args.port}")
    if args.pipelines is not None and args.pipelines < 1:
        raise UsageError("--pipelines must be at least 1")
    if args.days < 1:
        raise UsageError("--days must be at least 1")
    if args.no_ratelimit_headers and args.rate_limit is not None:
        raise UsageError(
            "--rate-limit and --no-ratelimit-headers contradict each other: an enforced limit is announced in the "
            "RateLimit-* headers",
            hint="keep one of the two",
        )
    if args.time_scale < 0:
        raise UsageError("--time-scale must not be negative")
    migration_day = max(1, min(16, args.days // 2 + 1))
    scenario = Scenario(
        seed=args.seed,
        days=args.days,
        total_pipelines=args.pipelines,
        migration_day=migration_day,
        hostile_strings=args.hostile_strings,
    )
    world = None
    if args.group_projects is not None:
        from cidash.sim.group import build_group_world

        world = build_group_world(args.group_projects, seed=args.seed, time_scale=args.time_scale)
    sim = SimulatedGitLab(
        None if world is not None else scenario,
        world=world,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        rate_limit=args.rate_limit,
        rate_limit_advertised=None if args.no_ratelimit_headers else 2000,
        capacity=args.capacity,
        time_scale=args.time_scale,
        port=args.port,
    )
    try:
        sim.start()
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from exc
    since = (sim.now() - timedelta(days=7)).date().isoformat()
    print(
        banner(
            sim.url,
            sim.token,
            sim.readonly_token,
            sim.project_path,
            sim.project_id,
            since=since,
            group_path=None if world is None else world.group_path,
            advertised=not args.no_ratelimit_headers,
        ),
        flush=True,
    )
    if world is not None:
        print(
            f"Group {world.group_path} (id {world.group_id}): {len(world.projects)} projects, "
            f"{len(world.subgroups)} subgroups.",
            flush=True,
        )
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
    finally:
        sim.stop()
    return 0
