"""`cidash doctor`: where every setting comes from, and whether cidash can work with it."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from cidash.commands.common import CONNECTION_HELP, add_connection_args, add_format_args, add_store_args

if TYPE_CHECKING:
    from cidash.config import Config
    from cidash.connection import Connection
    from cidash.remote import GitLabClient

HELP = "where config, URL and token come from; token scopes and expiry, GitLab version, TLS, store"
DESCRIPTION = f"""\
Check the set-up and say, one line each, where every setting comes from and whether it works:

  config      the cidash.toml files read (user, project or --config/CIDASH_CONFIG), in order
  url, token  where the GitLab URL and the token come from (the token itself is never printed)
  tls         certificate verification in effect, and from where (a CA bundle, or off)
  gitlab      the instance's version (GET /version): is it reachable, is the token accepted
  scopes      the token's scopes, state and expiry (GET /personal_access_tokens/self, GitLab >= 15.5,
              personal, project and group access tokens)
  rate-limit  the headroom GitLab reports (RateLimit-Remaining of RateLimit-Limit); when it reports
              none, how many requests a sync holds in flight ([gitlab] concurrency)
  store       the store's path and where it comes from (--db, CIDASH_DB, [store] path), backend,
              schema version and size; the GitLab it was synced from (origin)
  projects    the projects cidash syncs

Every problem comes with its fix in one line. Nothing is written, no project data is read.

{CONNECTION_HELP}
exit codes: 0 nothing wrong (warnings allowed unless --strict); 1 something is wrong (or, with --strict,
a warning); 2 bad usage.

examples:
  cidash doctor
  cidash doctor --format json | jq '.checks[] | select(.status != "ok")'
"""

Status = Literal["ok", "info", "warn", "fail"]

#: A token expiring within this many days is a warning.
EXPIRY_WARNING_DAYS = 14


@dataclass
class Check:
    id: str
    status: Status
    message: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "message": self.message, "fix": self.fix}


@dataclass
class Diagnosis:
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, id: str, status: Status, message: str, fix: str | None = None) -> Check:
        check = Check(id, status, message, fix)
        self.checks.append(check)
        return check

    def ok(self, *, strict: bool = False) -> bool:
        bad: tuple[str, ...] = ("fail", "warn") if strict else ("fail",)
        return not any(c.status in bad for c in self.checks)


def configure(parser: argparse.ArgumentParser) -> None:
    add_store_args(parser)
    add_connection_args(parser)
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    add_format_args(parser, ("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from cidash.commands.common import color_enabled, json_document, output_format

    fmt = output_format(args)
    diagnosis = diagnose(args, os.environ, today=date.today())
    ok = diagnosis.ok(strict=args.strict)
    if fmt == "json":
        doc = {"ok": ok, "checks": [c.as_dict() for c in diagnosis.checks], **diagnosis.facts}
        sys.stdout.write(json_document(doc))
    else:
        sys.stdout.write(render_text(diagnosis, color=color_enabled(sys.stdout)))
    return 0 if ok else 1


_MARKS: dict[str, tuple[str, str]] = {
    "ok": ("ok", "32"),
    "info": ("--", "36"),
    "warn": ("WARN", "33"),
    "fail": ("FAIL", "31"),
}


_UNPRINTABLE = "[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"


def clean(text: str) -> str:
    """Text for the terminal: control characters and bidi overrides (e.g. in a version GitLab sent) dropped."""
    import re

    return re.sub(_UNPRINTABLE, "", text)


def render_text(diagnosis: Diagnosis, *, color: bool = False) -> str:
    lines: list[str] = []
    for check in diagnosis.checks:
        mark, code = _MARKS[check.status]
        shown = f"\x1b[{code}m{mark:<4}\x1b[0m" if color else f"{mark:<4}"
        lines.append(f"{shown}  {check.id:<10}  {clean(check.message)}")
        if check.fix and check.status in ("warn", "fail"):
            lines.append(f"{'':<4}  {'':<10}  fix: {clean(check.fix)}")
    problems = sum(c.status == "fail" for c in diagnosis.checks)
    warnings = sum(c.status == "warn" for c in diagnosis.checks)
    if problems or warnings:
        lines.append(f"\n{problems} problem{'s' * (problems != 1)}, {warnings} warning{'s' * (warnings != 1)}")
    else:
        lines.append("\nno problems found")
    return "\n".join(lines) + "\n"


def diagnose(args: argparse.Namespace, env: Mapping[str, str], *, today: date) -> Diagnosis:
    """Run every check (no exception escapes: each problem is a :class:`Check` with its fix)."""
    from cidash.commands.common import connection_from_args, load_config_from_args
    from cidash.config import Config
    from cidash.errors import CidashError

    d = Diagnosis()
    try:
        config = load_config_from_args(args)
        d.add("config", "ok", ", ".join(config.sources) if config.sources else "no cidash.toml: built-in defaults")
    except CidashError as exc:
        config = Config()
        d.add("config", "fail", exc.message, exc.hint or "fix the file named above")
    d.facts["config"] = {"files": list(config.sources)}

    connection: Connection | None = None
    try:
        connection = connection_from_args(args, config, require_project=False)
    except CidashError as exc:
        d.add("connection", "fail", exc.message, exc.hint or "see 'cidash doctor --help' for where settings come from")
    if connection is not None:
        _describe_connection(d, connection)
        _check_tls(d, connection)
        _check_remote(d, connection, today)
    _check_store(d, args, config, env, connection)
    return d


def _describe_connection(d: Diagnosis, c: Connection) -> None:
    src = c.sources
    d.add("url", "ok", f"{c.url} (from {src.get('url', '?')})")
    token_from = src.get("token_detail") or src.get("token")
    if c.token is None:
        d.add(
            "token",
            "warn",
            "no token: only public projects are visible",
            "set GITLAB_TOKEN, pass --token-file FILE, or set [gitlab] token_file (a token with read_api)",
        )
    else:
        d.add("token", "ok", f"{c.token_kind} token (from {token_from})")
    if c.projects:
        d.add("projects", "ok", f"{', '.join(c.projects)} (from {src.get('projects', '?')})")
    elif c.group:
        d.add("projects", "ok", f"every project of group {c.group} (from {src.get('group', '?')})")
    else:
        d.add("projects", "warn", "no project configured", "pass --project PATH, or set [gitlab] projects")
    d.facts["gitlab"] = {
        "url": c.url,
        "url_source": src.get("url"),
        "token_kind": c.token_kind if c.token is not None else None,
        "token_source": token_from,
        "projects": list(c.projects),
        "group": c.group,
    }


def _is_loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def _check_tls(d: Diagnosis, c: Connection) -> None:
    from pathlib import Path

    origin = c.sources.get("tls", "default")
    facts: dict[str, Any] = {"verify": c.verify_tls if isinstance(c.verify_tls, bool) else True, "ca_bundle": None}
    if c.url.startswith("http://"):
        facts["verify"] = None
        if c.token is not None and not _is_loopback(c.url):
            d.add("tls", "warn", "http:// sends the token unencrypted", "use the https:// URL of the instance")
        else:
            d.add("tls", "info", "not used (http://)")
    elif c.verify_tls is False:
        d.add(
            "tls",
            "warn",
            f"certificate verification is off (from {origin})",
            "remove verify_tls = false / ssl_verify = false, or name the CA bundle that signed the server certificate",
        )
    elif isinstance(c.verify_tls, str):
        facts["ca_bundle"] = c.verify_tls
        if Path(c.verify_tls).exists():
            d.add("tls", "ok", f"verified against CA bundle {c.verify_tls} (from {origin})")
        else:
            d.add("tls", "fail", f"CA bundle {c.verify_tls} does not exist (from {origin})", "point it at a PEM file")
    else:
        d.add("tls", "ok", "verified against the system's CA certificates")
    d.facts["tls"] = facts


def _check_remote(d: Diagnosis, c: Connection, today: date) -> None:
    from cidash.errors import AuthError, CidashError, ConnectError
    from cidash.remote import GitLabClient

    gitlab: dict[str, Any] = d.facts.setdefault("gitlab", {})
    with GitLabClient(c) as client:
        try:
            version = client.http.get_json("/version")
        except AuthError:
            if c.token is None:
                d.add(
                    "gitlab",
                    "fail",
                    f"GitLab at {c.url} requires a token (401 to a request sent without one)",
                    "set GITLAB_TOKEN, pass --token-file FILE or set [gitlab] token_file (a token with read_api)",
                )
            else:
                d.add(
                    "gitlab",
                    "fail",
                    f"GitLab at {c.url} rejected the token (401)",
                    f"create a new token with read_api and update {c.sources.get('token', 'its source')}",
                )
            return
        except ConnectError as exc:
            d.add("gitlab", "fail", exc.message, exc.hint or "check the URL, the network and any proxy")
            return
        except CidashError as exc:
            d.add("gitlab", "fail", exc.message, exc.hint or "check the URL points at a GitLab instance")
            return
        text = str(version.get("version")) if isinstance(version, dict) and version.get("version") else "unknown"
        gitlab["version"] = text
        d.add("gitlab", "ok", f"GitLab {text} at {c.url}")
        if c.token is not None:
            _check_token(d, client, c, today)
            _check_graphql(d, client, c)
        state = client.limiter.state
        gitlab["rate_limit"] = {"limit": state.limit, "remaining": state.remaining}
        if state.remaining is None:
            d.add("rate-limit", "info", f"not reported by this instance: {_unadvertised_window(c)}")
        elif state.limit and state.remaining < state.limit * 0.1:
            d.add(
                "rate-limit",
                "warn",
                f"{state.remaining} of {state.limit} requests left in this window",
                "wait for the window to reset, or lower [gitlab] max_rps",
            )
        else:
            limit = state.limit if state.limit is not None else "?"
            d.add("rate-limit", "ok", f"{state.remaining} of {limit} requests left in this window")


def _unadvertised_window(c: Connection) -> str:
    """How many requests a sync holds in flight against a server that publishes no rate limit (see
    :data:`cidash.remote.policy.PROBE_STEP`)."""
    from cidash.remote.policy import unadvertised_window

    start = unadvertised_window(c.concurrency, chosen=c.concurrency_chosen)
    if c.concurrency_chosen or start >= c.concurrency:
        return f"a sync holds up to {start} requests in flight ({c.sources.get('concurrency', 'concurrency')})"
    return (
        f"a sync starts at {start} requests in flight and takes up to {c.concurrency} while the answers keep their "
        "pace (set [gitlab] concurrency to hold one number)"
    )


def _check_graphql(d: Diagnosis, client: GitLabClient, c: Connection) -> None:
    """Whether the sync can ask for the pipelines' details by GraphQL, 30 a request (else one REST request each)."""
    from cidash.errors import CidashError
    from cidash.remote.pipelines import GRAPHQL_PIPELINES, GraphQLRefused, graphql_probe

    rest = "the sync asks for each pipeline's details in a REST request of its own"
    if c.token_kind == "job":
        d.add("graphql", "info", f"not used with a CI job token, which GitLab's GraphQL API does not take: {rest}")
        return
    path = next((p for p in c.projects if not p.isdigit()), None)
    if path is None:
        d.add("graphql", "info", "not checked without a project given by its path (--project group/name)")
        return
    try:
        graphql_probe(client.http, path)
    except (CidashError, GraphQLRefused) as exc:
        why = exc.one_line() if isinstance(exc, CidashError) else str(exc)
        d.add("graphql", "info", f"{why}: {rest}")
        return
    d.add("graphql", "ok", f"shows {clean(path)}: the sync asks for pipelines' details {GRAPHQL_PIPELINES} a request")


def _check_token(d: Diagnosis, client: GitLabClient, c: Connection, today: date) -> None:
    from cidash.errors import CidashError

    gitlab: dict[str, Any] = d.facts.setdefault("gitlab", {})
    if c.token_kind != "private":
        d.add("scopes", "info", f"not checked for a {c.token_kind} token")
        return
    try:
        info = client.http.get_json("/personal_access_tokens/self")
    except CidashError as exc:
        status = getattr(exc, "status", None)
        d.add("scopes", "info", f"token details not available ({status or exc.message}; GitLab < 15.5?)")
        return
    if not isinstance(info, dict):
        d.add("scopes", "info", "token details not available (unexpected answer)")
        return
    scopes = [str(s) for s in info.get("scopes") or []]
    expires = info.get("expires_at")
    gitlab["token_scopes"] = scopes
    gitlab["token_expires_at"] = expires
    where = c.sources.get("token", "its source")
    if info.get("revoked") or info.get("active") is False:
        d.add("scopes", "fail", "the token is revoked or inactive", f"create a new token and update {where}")
        return
    if not {"api", "read_api"} & set(scopes):
        d.add(
            "scopes",
            "fail",
            f"the token has scopes {', '.join(scopes) or 'none'}: cidash needs read_api (api to rebuild/retry)",
            f"create a token with read_api (or api) and update {where}",
        )
    elif "api" not in scopes:
        d.add("scopes", "ok", f"{', '.join(scopes)} (rebuild and retry need api)")
    else:
        d.add("scopes", "ok", ", ".join(scopes))
    if not expires:
        d.add("expiry", "ok", "the token never expires")
        return
    try:
        expiry = date.fromisoformat(str(expires)[:10])
    except ValueError:
        d.add("expiry", "info", "the expiry date GitLab sent cannot be read")
        return
    days = (expiry - today).days
    if days < 0:
        d.add("expiry", "fail", f"the token expired on {expiry}", f"create a new token and update {where}")
    elif days <= EXPIRY_WARNING_DAYS:
        d.add(
            "expiry",
            "warn",
            f"the token expires on {expiry} (in {days} day{'s' * (days != 1)})",
            f"rotate it before then and update {where}",
        )
    else:
        d.add("expiry", "ok", f"expires on {expiry} (in {days} days)")


def _check_store(
    d: Diagnosis, args: argparse.Namespace, config: Config, env: Mapping[str, str], connection: Connection | None = None
) -> None:
    from pathlib import Path

    from cidash.config import store_path_source
    from cidash.errors import CidashError
    from cidash.store import SCHEMA_VERSION, Store
    from cidash.sync.origin import store_origin

    db = getattr(args, "db", None)
    if _check_pg_store(d, db, config, env, connection):
        return
    path, origin = (Path(db).expanduser(), "--db") if db else store_path_source(config, env)
    facts: dict[str, Any] = {
        "path": str(path),
        "source": origin,
        "backend": "sqlite",
        "exists": path.is_file(),
        "schema_version": None,
        "supported_schema_version": SCHEMA_VERSION,
        "size_bytes": None,
    }
    d.facts["store"] = facts
    if not path.exists():
        d.add("store", "info", f"{path} (from {origin}) does not exist yet: 'cidash sync' creates it")
        return
    older = Store.older_schema(path)
    if older is not None:
        facts.update(schema_version=older)
        d.add(
            "store",
            "warn",
            f"{path} (from {origin}): sqlite, schema version {older}, older than this cidash's {SCHEMA_VERSION}",
            "the next cidash command that opens it upgrades it, once (a user who can write the file)",
        )
        return
    try:
        with Store.open(path, readonly=True) as store:
            version = store.schema_version
            recorded = store_origin(store)
    except CidashError as exc:
        d.add("store", "fail", f"{exc.message} (from {origin})", exc.hint or "use another --db")
        return
    size = sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.is_file())
    facts.update(schema_version=version, size_bytes=size)
    d.add("store", "ok", f"{path} (from {origin}): sqlite, schema version {version}, {size / 1e6:.1f} MB")
    _check_origin(d, recorded, connection)


def _check_origin(d: Diagnosis, recorded: str | None, connection: Connection | None) -> None:
    """Whether the store holds the configured GitLab's history (see cidash.sync.origin)."""
    from cidash.sync.origin import instance_url

    if recorded is None:
        return
    if connection is None or instance_url(connection.url) == recorded:
        d.add("origin", "ok", f"the store holds the history of {recorded}")
        return
    d.add(
        "origin",
        "fail",
        f"the store holds the history of {recorded}, not of the configured {instance_url(connection.url)}: "
        "'cidash sync' refuses to mix two instances' ids",
        "use a store per GitLab (--db, CIDASH_DB, [store] path), or 'cidash sync --accept-origin' if the instance "
        "moved",
    )


def _check_pg_store(
    d: Diagnosis, db: str | None, config: Config, env: Mapping[str, str], connection: Connection | None = None
) -> bool:
    """The store check for a PostgreSQL store (False: the store is an SQLite file, checked by the caller)."""
    from cidash.config import is_store_url, store_target_source
    from cidash.errors import CidashError
    from cidash.store import SCHEMA_VERSION, Store
    from cidash.store_pg import redact_url
    from cidash.sync.origin import store_origin

    target, origin = (db, "--db") if db else store_target_source(config, env)
    if not is_store_url(target):
        return False
    shown = redact_url(target)
    facts: dict[str, Any] = {
        "path": shown,
        "source": origin,
        "backend": "postgresql",
        "exists": False,
        "schema_version": None,
        "supported_schema_version": SCHEMA_VERSION,
        "size_bytes": None,
    }
    d.facts["store"] = facts
    try:
        with Store.open(target, readonly=True) as store:
            version = store.schema_version
            recorded = store_origin(store)
    except CidashError as exc:
        d.add("store", "fail", f"{exc.message} (from {origin})", exc.hint or "check [store] url / --db")
        return True
    facts.update(exists=True, schema_version=version)
    d.add("store", "ok", f"{shown} (from {origin}): postgresql, schema version {version}")
    _check_origin(d, recorded, connection)
    return True
