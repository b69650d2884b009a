"""Options and helpers shared by the commands that read config, open the store or talk to GitLab.

Use in a command module::

    def configure(parser):
        add_store_args(parser)        # --db, --config
        add_connection_args(parser)   # --url, --project, --token-file, --group, --python-gitlab-section

    def run(args):
        config = load_config_from_args(args)
        with open_store_from_args(args, config, readonly=True) as store:
            ...
        client = client_from_args(args, config)   # a cidash.remote.GitLabClient; close() it (or use `with`)

Heavy modules (python-gitlab, httpx, sqlite) are imported inside the helpers, so ``cidash --help`` stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from cidash.config import Config
    from cidash.connection import Connection
    from cidash.remote import GitLabClient
    from cidash.store import Store


CONNECTION_HELP = """\
connection (first found wins; 'cidash doctor' shows which):
  URL     --url, GITLAB_URL, GITLAB_HOST/GL_HOST, CI_SERVER_URL (when CI=true), [gitlab] url, python-gitlab section
  token   --token-file, GITLAB_TOKEN, CI_JOB_TOKEN (when CI=true), [gitlab] token_file, python-gitlab section,
          glab's token for the host
  project --project (repeatable), [gitlab] projects, CI_PROJECT_PATH (when CI=true); or --group
"""


#: ``--db``'s help, the same in every command that takes it.
DB_HELP = (
    "the store: an SQLite file or a postgresql:// URL (default: [store] url or path, else <user data dir>/cidash.db)"
)


def add_store_args(parser: argparse.ArgumentParser) -> None:
    """``--db FILE`` and ``--config FILE``."""
    parser.add_argument("--db", metavar="FILE|URL", help=DB_HELP)
    parser.add_argument(
        "--config", metavar="FILE", help="read this cidash.toml instead of ./cidash.toml / pyproject [tool.cidash]"
    )


def add_connection_args(parser: argparse.ArgumentParser, *, projects: bool = True) -> None:
    """``--url``, ``--token-file``, ``--python-gitlab-section`` and (unless ``projects=False``) ``--project``,
    ``--group``."""
    parser.add_argument("--url", metavar="URL", help="GitLab URL, e.g. https://gitlab.example.com")
    parser.add_argument("--token-file", metavar="FILE", help="read the API token from the first line of FILE")
    parser.add_argument(
        "--python-gitlab-section", metavar="NAME", help="take URL and token from this python-gitlab config section"
    )
    if projects:
        parser.add_argument(
            "--project",
            metavar="PATH",
            action="append",
            default=None,
            help="project path (group/name) or numeric id; repeat for several",
        )
        parser.add_argument("--group", metavar="PATH", help="every project of this group (and its subgroups)")


def load_config_from_args(args: argparse.Namespace) -> Config:
    from cidash.config import load_config

    return load_config(getattr(args, "config", None))


def store_path_from_args(args: argparse.Namespace, config: Config) -> str:
    """The store to open: ``--db`` (an SQLite file or a ``postgresql://`` URL), else the config's
    (:meth:`cidash.config.Config.store_target`)."""
    db = getattr(args, "db", None)
    return str(db) if db else config.store_target()


def store_label(target: str) -> str:
    """A store for messages: the path, or the PostgreSQL URL without its password."""
    from cidash.config import is_store_url

    if is_store_url(target):
        from cidash.store_pg import redact_url

        return redact_url(target)
    return target


def open_store_from_args(args: argparse.Namespace, config: Config | None = None, *, readonly: bool = False) -> Store:
    """Open the store named by ``--db`` / ``[store] url`` / ``[store] path`` (``readonly``: must exist, never
    written)."""
    from cidash.store import Store

    config = config or load_config_from_args(args)
    target = store_path_from_args(args, config)
    upgrade_store(target)
    return Store.open(target, readonly=readonly)


def upgrade_store(target: str) -> None:
    """Migrate an SQLite store written by an older cidash before a command opens it, saying so on stderr (it
    takes a few seconds on a large store, once): a reader (``check``, ``compare``, ``export``) would otherwise
    refuse it and ask for a sync. A file this process may not write is left alone (the reader then says to run
    ``cidash sync`` as a user who can); a PostgreSQL store is migrated by its next writer."""
    import os
    import sys
    from pathlib import Path

    from cidash.store import SCHEMA_VERSION, Store

    version = Store.older_schema(target)
    if version is None:
        return
    path = Path(target).expanduser()
    if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        return
    print(
        f"cidash: upgrading the store {path} from schema version {version} to {SCHEMA_VERSION} "
        "(once; a few seconds on a large store)",
        file=sys.stderr,
        flush=True,
    )
    Store.open(path).close()


def connection_from_args(
    args: argparse.Namespace, config: Config | None = None, *, require_project: bool = True
) -> Connection:
    from cidash.connection import resolve_connection

    config = config or load_config_from_args(args)
    return resolve_connection(
        config,
        url=getattr(args, "url", None),
        projects=getattr(args, "project", None) or (),
        token_file=getattr(args, "token_file", None),
        group=getattr(args, "group", None),
        python_gitlab_section=getattr(args, "python_gitlab_section", None),
        max_rps=getattr(args, "max_rps", None),
        concurrency=getattr(args, "concurrency", None),
        require_project=require_project,
    )


def client_from_args(
    args: argparse.Namespace, config: Config | None = None, *, require_project: bool = True
) -> GitLabClient:
    """A connected :class:`cidash.remote.GitLabClient` (no request is made until it is used)."""
    from cidash.remote import GitLabClient

    return GitLabClient(connection_from_args(args, config, require_project=require_project))


@contextmanager
def working(label: str, stream: TextIO | None = None, *, after: float = 1.0) -> Iterator[None]:
    """A transient line on a terminal while a command computes without printing (``check``, ``compare`` and
    ``export`` reading a big store): ``cidash export: working... 4 s`` on stderr from ``after`` seconds on,
    redrawn every second, erased when the block ends (or is interrupted), so the answer prints on a clean line.
    Nothing where stderr is no terminal, in CI (``CI=true``) or with ``TERM=dumb``. The text is cidash's own."""
    import sys
    import threading
    import time

    out = sys.stderr if stream is None else stream
    if not live_terminal(out):
        yield
        return
    done = threading.Event()
    shown = False
    start = time.monotonic()

    def draw() -> None:
        nonlocal shown
        if done.wait(after):
            return
        while True:
            out.write(f"\r{label}: working... {time.monotonic() - start:.0f} s\x1b[K")
            out.flush()
            shown = True
            if done.wait(1.0):
                return

    thread = threading.Thread(target=draw, name="cidash-working", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        if shown:
            out.write("\r\x1b[K")
            out.flush()


def live_terminal(stream: object) -> bool:
    """True when transient lines (a progress bar, a redrawn status) may be drawn on ``stream``: it is a terminal,
    not in CI (:func:`cidash.config.is_ci`) and not ``TERM=dumb`` (no cursor movement)."""
    import os

    from cidash.config import is_ci

    if is_ci() or os.environ.get("TERM", "").strip().lower() == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def has_terminal() -> bool:
    """True when both stdin and stdout are a terminal: the dashboard can run and a prompt can be answered."""
    import sys

    return bool(sys.stdin and sys.stdin.isatty() and sys.stdout and sys.stdout.isatty())


# -- output: --format, JSON documents, colour ----------------------------------------------------------------

#: Every JSON document a command prints carries ``"schema_version": JSON_SCHEMA_VERSION`` (docs/schemas/).
JSON_SCHEMA_VERSION = 1


def add_format_args(
    parser: argparse.ArgumentParser, formats: tuple[str, ...], *, default: str, help_extra: str = ""
) -> None:
    """``--format a|b|json`` and ``--json`` (an alias of ``--format json``)."""
    parser.add_argument(
        "--format", choices=formats, default=None, help=f"output format (default {default}){help_extra}"
    )
    parser.add_argument("--json", action="store_true", help="the same as --format json")
    parser.set_defaults(_format_default=default)


def output_format(args: argparse.Namespace) -> str:
    """The format asked for: ``--json`` is ``--format json``; both with another format is a usage error."""
    from cidash.errors import UsageError

    chosen: str | None = getattr(args, "format", None)
    if getattr(args, "json", False):
        if chosen not in (None, "json"):
            raise UsageError(f"--json and --format {chosen} contradict each other", hint="give one of them")
        return "json"
    return chosen or str(getattr(args, "_format_default", "text"))


def json_document(doc: Mapping[str, Any]) -> str:
    """A JSON document as cidash prints it: ``schema_version`` first, indented, one trailing newline."""
    import json

    from cidash.formatting import tidy

    body = {k: tidy(v) for k, v in doc.items() if k != "schema_version"}
    return json.dumps({"schema_version": JSON_SCHEMA_VERSION, **body}, indent=2) + "\n"


def color_enabled(stream: object = None) -> bool:
    """Colour only on a terminal, and never with ``NO_COLOR`` set (https://no-color.org) or ``TERM=dumb``."""
    import os
    import sys

    stream = sys.stdout if stream is None else stream
    if "NO_COLOR" in os.environ and os.environ["NO_COLOR"] != "":
        return False
    if os.environ.get("TERM", "").strip().lower() == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def bounded(low: float, high: float, *, integer: bool = False, low_ok: bool = True) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number in ``[low, high]`` (``(low, high]`` without ``low_ok``):
    ``nan``, ``inf``, ``-1`` or ``1e9`` become a one-line usage error naming the option, never a crash later."""
    import math

    kind = "an integer" if integer else "a number"
    low_text = f">= {low:g}" if low_ok else f"> {low:g}"

    def parse(text: str) -> float:
        try:
            value: float = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not math.isfinite(value) or value > high or value < low or (value == low and not low_ok):
            raise argparse.ArgumentTypeError(f"{text!r}: must be {kind} {low_text} and <= {high:g}")
        return value

    parse.__name__ = "integer" if integer else "number"  # argparse names the type in its messages
    return parse
