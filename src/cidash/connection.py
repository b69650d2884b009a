"""Where GitLab is and how to authenticate: URL, token, projects, from flags, environment and config.

Resolution order, first found wins (each value resolved on its own):

- **URL**: ``--url``; ``GITLAB_URL``; ``CI_SERVER_URL`` when ``CI=true``; ``[gitlab] url``; the python-gitlab
  config section's ``url``; else an error.
- **Token**: ``--token-file FILE``; ``GITLAB_TOKEN``; ``CI_JOB_TOKEN`` when ``CI=true`` (a job token); ``[gitlab]
  token_file``; the python-gitlab section's ``private_token`` / ``job_token`` / ``oauth_token``. No token is
  allowed (public projects), but most instances need one.
- **Projects**: ``--project`` (repeatable); ``[gitlab] projects``; ``CI_PROJECT_PATH`` when ``CI=true``.
- **Group**: ``--group``; ``[gitlab] group``. Its projects are listed through the API by the sync.

- **TLS**: ``[gitlab] verify_tls = false`` turns verification off (one warning line per run); else the CA bundle is
  ``[gitlab] ca_file``, the python-gitlab section's ``ssl_verify`` path, ``SSL_CERT_FILE``, ``SSL_CERT_DIR``,
  ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, else certifi's bundle; every HTTP path uses the same one
  (:func:`tls_verify`).

The python-gitlab section comes from ``[gitlab] python_gitlab_section`` (or ``--python-gitlab-section``), read
from ``PYTHON_GITLAB_CFG`` or the first of ``~/.python-gitlab.cfg``, ``~/.config/python-gitlab.cfg``,
``/etc/python-gitlab.cfg``.

The token lives in a :class:`Secret` whose ``repr``/``str`` never show it, and is registered with
:func:`cidash.errors.register_secret` so no message can leak it.
"""

from __future__ import annotations

import configparser
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cidash.config import Config
from cidash.errors import ConfigError, register_secret

TokenKind = Literal["private", "job", "oauth"]


class Secret:
    """A token. ``str()``/``repr()`` print ``'***'``; only :meth:`reveal` gives the value (to HTTP headers)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> str:  # never pickled into a file by accident
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class Connection:
    """Everything needed to talk to one GitLab instance. Safe to print: the token is a :class:`Secret`."""

    url: str
    token: Secret | None = None
    token_kind: TokenKind = "private"
    projects: tuple[str, ...] = ()
    group: str | None = None
    verify_tls: bool | str = True
    timeout: float = 30.0
    max_rps: float = 20.0
    concurrency: int = 8
    #: Human-readable origins, for ``--verbose``: e.g. {"url": "GITLAB_URL", "token": "--token-file /x"}.
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return self.url.rstrip("/") + "/api/v4"

    def auth_headers(self) -> dict[str, str]:
        if self.token is None:
            return {}
        value = self.token.reveal()
        if self.token_kind == "job":
            return {"JOB-TOKEN": value}
        if self.token_kind == "oauth":
            return {"Authorization": f"Bearer {value}"}
        return {"PRIVATE-TOKEN": value}

    def tls_verify(self, env: Mapping[str, str] | None = None) -> Literal[False] | str:
        """What every HTTP path verifies the server with (see :func:`tls_verify`)."""
        return tls_verify(self.verify_tls, env)

    def describe(self) -> str:
        """One line for ``--verbose``: where each setting came from, never the token."""
        parts = [f"url {self.url} (from {self.sources.get('url', '?')})"]
        if self.token is None:
            parts.append("no token")
        else:
            parts.append(f"{self.token_kind} token (from {self.sources.get('token', '?')})")
        if self.projects:
            parts.append(f"projects {', '.join(self.projects)} (from {self.sources.get('projects', '?')})")
        if self.group:
            parts.append(f"group {self.group} (from {self.sources.get('group', '?')})")
        return "; ".join(parts)


#: Environment variables naming a CA bundle (file or directory), in the order they are looked at.
CA_ENV_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def tls_verify(verify: bool | str, env: Mapping[str, str] | None = None) -> Literal[False] | str:
    """False (no verification) or the CA file/directory to verify GitLab's certificate with.

    One answer for the python-gitlab (requests), http.client and httpx paths alike: ``verify`` as a path wins,
    then the first of :data:`CA_ENV_VARS` that is set, then certifi's bundle.
    """
    if verify is False:
        return False
    if isinstance(verify, str):
        return os.path.expanduser(verify)
    env = os.environ if env is None else env
    for name in CA_ENV_VARS:
        if env.get(name):
            return env[name]
    import certifi

    return str(certifi.where())


_warned_insecure: set[str] = set()
_warned_lock = threading.Lock()


def warn_if_insecure(connection: Connection) -> None:
    """One line on stderr, once per process and URL, when TLS verification is off for an https URL (urllib3's
    own per-request warnings are silenced instead)."""
    if connection.verify_tls is not False or not connection.url.lower().startswith("https://"):
        return
    import warnings

    import urllib3.exceptions

    warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    with _warned_lock:
        if connection.url in _warned_insecure:
            return
        _warned_insecure.add(connection.url)
    print(
        f"cidash: warning: TLS certificate verification is off for {connection.url} ([gitlab] verify_tls = false)",
        file=sys.stderr,
    )


def _is_ci(env: Mapping[str, str]) -> bool:
    return env.get("CI", "").strip().lower() in ("1", "true", "yes")


def read_token_file(path: str | Path) -> str:
    """The first non-empty line of a token file (a missing or empty file is a :class:`ConfigError`)."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"token file {p} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"token file {p} cannot be read: {exc.strerror}") from None
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    raise ConfigError(f"token file {p} is empty")


def python_gitlab_config_files(env: Mapping[str, str]) -> list[Path]:
    if env.get("PYTHON_GITLAB_CFG"):
        return [Path(p).expanduser() for p in env["PYTHON_GITLAB_CFG"].split(os.pathsep) if p]
    home = Path(env.get("HOME") or Path.home())
    return [home / ".python-gitlab.cfg", home / ".config" / "python-gitlab.cfg", Path("/etc/python-gitlab.cfg")]


@dataclass(frozen=True)
class PythonGitlabSection:
    url: str | None
    token: str | None
    token_kind: TokenKind
    ssl_verify: bool | str
    timeout: float | None
    source: str


def read_python_gitlab_section(name: str, env: Mapping[str, str]) -> PythonGitlabSection:
    """Read ``[name]`` from the python-gitlab config file(s)."""
    files = [p for p in python_gitlab_config_files(env) if p.is_file()]
    if not files:
        raise ConfigError(
            f"python-gitlab section [{name}] requested but no python-gitlab config file found",
            hint="set PYTHON_GITLAB_CFG or create ~/.python-gitlab.cfg",
        )
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(files, encoding="utf-8")
    except configparser.Error as exc:
        raise ConfigError(f"python-gitlab config: {exc.__class__.__name__}") from None
    if not parser.has_section(name):
        raise ConfigError(f"python-gitlab config has no section [{name}] (files: {', '.join(map(str, files))})")
    sec = parser[name]
    token: str | None = None
    kind: TokenKind = "private"
    for key, k in (("private_token", "private"), ("job_token", "job"), ("oauth_token", "oauth")):
        if sec.get(key):
            token = sec[key].strip()
            kind = k  # type: ignore[assignment]
            break
    if token is not None and token.startswith("helper:"):
        raise ConfigError(
            f"python-gitlab section [{name}]: token helpers are not supported",
            hint="use --token-file or GITLAB_TOKEN",
        )
    verify: bool | str = True
    raw_verify = sec.get("ssl_verify")
    if raw_verify is not None:
        low = raw_verify.strip().lower()
        verify = (
            False if low in ("false", "0", "no", "off") else (True if low in ("true", "1", "yes", "on") else raw_verify)
        )
    timeout: float | None = None
    if sec.get("timeout"):
        try:
            timeout = float(sec["timeout"])
        except ValueError:
            raise ConfigError(f"python-gitlab section [{name}]: timeout must be a number") from None
    return PythonGitlabSection(
        url=sec.get("url"),
        token=token,
        token_kind=kind,
        ssl_verify=verify,
        timeout=timeout,
        source=f"python-gitlab [{name}]",
    )


def resolve_connection(
    config: Config,
    *,
    url: str | None = None,
    projects: Sequence[str] = (),
    token_file: str | None = None,
    group: str | None = None,
    python_gitlab_section: str | None = None,
    max_rps: float | None = None,
    concurrency: int | None = None,
    env: Mapping[str, str] | None = None,
    require_project: bool = True,
) -> Connection:
    """Combine flags, environment and config into a :class:`Connection` (see the module docstring)."""
    env = os.environ if env is None else env
    gl = config.gitlab
    ci = _is_ci(env)
    sources: dict[str, str] = {}
    section_name = python_gitlab_section or gl.python_gitlab_section
    section = read_python_gitlab_section(section_name, env) if section_name else None

    resolved_url: str | None = None
    for value, origin in (
        (url, "--url"),
        (env.get("GITLAB_URL"), "GITLAB_URL"),
        (env.get("CI_SERVER_URL") if ci else None, "CI_SERVER_URL"),
        (gl.url, f"[gitlab] url in {config.sources[-1] if config.sources else 'config'}"),
        (section.url if section else None, section.source if section else ""),
    ):
        if value:
            resolved_url, sources["url"] = value.strip(), origin
            break
    if not resolved_url:
        raise ConfigError("no GitLab URL configured", hint="pass --url, set GITLAB_URL, or [gitlab] url in cidash.toml")
    if not resolved_url.startswith(("http://", "https://")):
        raise ConfigError(f"GitLab URL must start with http:// or https:// (got {resolved_url!r})")

    token: str | None = None
    kind: TokenKind = "private"
    if token_file:
        token, sources["token"] = read_token_file(token_file), f"--token-file {token_file}"
    elif env.get("GITLAB_TOKEN"):
        token, sources["token"] = env["GITLAB_TOKEN"].strip(), "GITLAB_TOKEN"
    elif ci and env.get("CI_JOB_TOKEN"):
        token, kind, sources["token"] = env["CI_JOB_TOKEN"].strip(), "job", "CI_JOB_TOKEN"
    elif gl.token_file:
        token, sources["token"] = read_token_file(gl.token_file), f"[gitlab] token_file {gl.token_file}"
    elif section and section.token:
        token, kind, sources["token"] = section.token, section.token_kind, section.source

    project_list: tuple[str, ...] = ()
    if projects:
        project_list, sources["projects"] = tuple(projects), "--project"
    elif gl.projects:
        project_list, sources["projects"] = gl.projects, "[gitlab] projects"
    elif ci and env.get("CI_PROJECT_PATH"):
        project_list, sources["projects"] = (env["CI_PROJECT_PATH"],), "CI_PROJECT_PATH"
    resolved_group = group or gl.group
    if resolved_group:
        sources["group"] = "--group" if group else "[gitlab] group"
    if require_project and not project_list and not resolved_group:
        raise ConfigError("no project configured", hint="pass --project PATH or --group PATH, or set [gitlab] projects")
    rps = gl.max_rps if max_rps is None else max_rps
    if rps < 0:
        raise ConfigError(f"max_rps must be 0 (no ceiling) or more, not {rps:g}", hint="--max-rps or [gitlab] max_rps")
    workers = gl.concurrency if concurrency is None else concurrency
    if workers < 1:
        raise ConfigError(
            f"concurrency must be at least 1, not {workers}", hint="--concurrency or [gitlab] concurrency"
        )
    verify: bool | str = gl.verify_tls
    if section is not None and section.ssl_verify is not True and gl.verify_tls:
        verify = section.ssl_verify
    if gl.ca_file:
        if not gl.verify_tls:
            raise ConfigError(
                "[gitlab] ca_file and verify_tls = false contradict each other", hint="remove one of the two"
            )
        ca = Path(gl.ca_file).expanduser()
        if not ca.exists():
            raise ConfigError(f"[gitlab] ca_file {ca} does not exist")
        verify = str(ca)
        sources["ca_file"] = "[gitlab] ca_file"
    return Connection(
        url=resolved_url.rstrip("/"),
        token=Secret(token) if token else None,
        token_kind=kind,
        projects=project_list,
        group=resolved_group,
        verify_tls=verify,
        timeout=section.timeout if section and section.timeout else gl.timeout,
        max_rps=rps,
        concurrency=workers,
        sources=sources,
    )
