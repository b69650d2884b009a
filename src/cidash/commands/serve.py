"""`cidash serve`: the long-running team mode (scheduled syncs, webhooks, /metrics for Prometheus)."""

from __future__ import annotations

import argparse

HELP = "sync many projects on a schedule and serve /metrics, /healthz, /readyz and webhooks"
DESCRIPTION = """\
Run the incremental sync for every configured project (or every project of --group) on a schedule, accept
GitLab webhooks as triggers, and serve the metrics for Prometheus. One process for a team; see docs/team.md.

schedule:
  each project syncs every --interval seconds while it changes; an idle sync (nothing new) doubles its interval
  up to --max-interval, so an idle project costs one request per --max-interval. Every wait is jittered by
  +-(--jitter x 100) %. Never two syncs of one project at once (also across processes: the store's lease).

HTTP (--listen, default 127.0.0.1:9717; give 0.0.0.0:9717 to be reachable from other hosts):
  GET  /metrics   OpenMetrics when Accept asks for application/openmetrics-text, else Prometheus text 0.0.4
  GET  /healthz   200 while the scheduler runs
  GET  /readyz    200 once every project had a complete sync since start, else 503 with the pending ones
  POST /webhook   GitLab "Pipeline Hook" / "Job Hook": X-Gitlab-Token must equal the secret (constant-time);
                  syncs that project --debounce seconds later. 401 bad token, 400 malformed body, 202 accepted
                  or ignored (unknown project, other events), 404 when no secret is configured. The body is only
                  read for the project id, never stored or logged.

SIGTERM or Ctrl-C stops within seconds: a running sync ends at its last commit (nothing half-written).

exit codes:
  0  stopped by a signal    2  bad option or config, port in use, no project, GitLab unreachable at start

examples:
  cidash serve --group platform --webhook-secret-file /run/secrets/cidash-webhook
  cidash serve --project platform/app --listen 0.0.0.0:9717 --log-format json
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from cidash.commands.common import add_connection_args, add_store_args
    from cidash.serve.http import DEFAULT_LISTEN

    parser.add_argument(
        "--listen", metavar="HOST:PORT", default=DEFAULT_LISTEN, help=f"where to serve (default {DEFAULT_LISTEN})"
    )
    parser.add_argument(
        "--interval",
        metavar="SECONDS",
        type=float,
        default=60.0,
        help="sync interval of a changing project (default 60)",
    )
    parser.add_argument(
        "--max-interval", metavar="SECONDS", type=float, default=900.0, help="interval of an idle project (default 900)"
    )
    parser.add_argument(
        "--jitter", metavar="FRACTION", type=float, default=0.1, help="random spread of every wait (default 0.1)"
    )
    parser.add_argument(
        "--debounce",
        metavar="SECONDS",
        type=float,
        default=5.0,
        help="delay from a webhook to its sync; deliveries in between add nothing (default 5)",
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        type=int,
        default=None,
        help="projects synced at the same time, sharing one request ceiling (default [sync] project_concurrency, 8)",
    )
    parser.add_argument(
        "--webhook-secret-file",
        metavar="FILE",
        help="the webhook's secret token (first line); or CIDASH_WEBHOOK_SECRET",
    )
    parser.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="one line per event on stderr (default text)"
    )
    add_store_args(parser)
    add_connection_args(parser)


def read_secret(path: str | None) -> str | None:
    """The webhook secret from ``--webhook-secret-file`` or ``CIDASH_WEBHOOK_SECRET`` (None: webhooks off)."""
    import os
    from pathlib import Path

    from cidash.errors import ConfigError, register_secret

    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigError(f"cannot read --webhook-secret-file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"--webhook-secret-file {path} is not UTF-8 text") from None
        secret = lines[0].strip() if lines else ""
        if not secret:
            raise ConfigError(f"--webhook-secret-file {path} is empty")
    else:
        secret = os.environ.get("CIDASH_WEBHOOK_SECRET", "").strip() or ""
        if not secret:
            return None
    register_secret(secret)  # never in a log line or an error message
    return secret


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from cidash.commands.common import connection_from_args, load_config_from_args, store_path_from_args
    from cidash.errors import UsageError
    from cidash.serve.app import ServeApp, ServeOptions
    from cidash.serve.eventlog import EventLog
    from cidash.serve.http import parse_listen

    for name in ("interval", "max_interval", "debounce"):
        if (getattr(args, name) <= 0 and name != "debounce") or getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive number of seconds")
    if not 0 <= args.jitter < 1:
        raise UsageError("--jitter must be a fraction in [0, 1)")
    if args.workers is not None and not 1 <= args.workers <= 64:
        raise UsageError("--workers must be between 1 and 64")
    listen = parse_listen(args.listen)
    config = load_config_from_args(args)
    secret = read_secret(args.webhook_secret_file)
    connection = connection_from_args(args, config)
    options = ServeOptions(
        listen=listen,
        interval=args.interval,
        max_interval=args.max_interval,
        jitter=args.jitter,
        debounce=args.debounce,
        workers=args.workers if args.workers is not None else config.sync.project_concurrency,
        webhook_secret=secret,
    )
    log = EventLog(args.log_format)
    app = ServeApp(config, connection, store_path_from_args(args, config), options, log)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log("signal", name=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        app.start()
        while not stop.wait(0.5):
            pass
        app.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
