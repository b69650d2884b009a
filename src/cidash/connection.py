"""Where GitLab is and how to authenticate: URL, token, projects, from flags, environment and config.

Resolution order, first found wins (each value resolved on its own):

- **URL**: ``--url``; ``GITLAB_URL``; ``GITLAB_HOST`` / ``GL_HOST`` (as glab reads them: a bare host means
  https); ``CI_SERVER_URL`` when ``CI=true``; ``[gitlab] url``; the python-gitlab section's ``url``; else an error.
- **Token**: ``--token-file FILE``; ``GITLAB_TOKEN``; ``CI_JOB_TOKEN`` when ``CI=true`` (a job token); ``[gitlab]
  token_file``; the python-gitlab section's ``private_token`` / ``oauth_token`` / ``job_token`` (a ``helper:``
  command is run, without a shell, only when it gets this far); the plain-text token glab keeps for the URL's
  host (the repository's ``.git/glab-cli/config.yml``, then the user's ``glab-cli/config.yml``). No token is
  allowed (public projects), but most instances need one.
- **Projects**: ``--project`` (repeatable); ``[gitlab] projects``; ``CI_PROJECT_PATH`` when ``CI=true``.
- **Group**: ``--group``; ``[gitlab] group``. Its projects are listed through the API by the sync.

- **TLS**: ``[gitlab] verify_tls = false`` turns verification off (one warning line per run); else the CA bundle is
  ``[gitlab] ca_file``, the python-gitlab section's ``ssl_verify`` path, ``SSL_CERT_FILE``, ``SSL_CERT_DIR``,
  ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, else certifi's bundle; every HTTP path uses the same one
  (:func:`tls_verify`).

The python-gitlab section is ``[gitlab] python_gitlab_section`` (or ``--python-gitlab-section``), else the one
python-gitlab itself would use, ``[global] default``. Files are read with python-gitlab's own rules:
``PYTHON_GITLAB_CFG`` alone when set, else ``/etc/python-gitlab.cfg`` then ``~/.python-gitlab.cfg`` (the user's
file wins); ``ssl_verify`` and ``timeout`` from ``[global]`` then the section. A section's token (and its TLS
and timeout settings) is only used for the server the section names: a credential never goes to another origin.

The token lives in a :class:`Secret` whose ``repr``/``str`` never show it, and is registered with
:func:`cidash.errors.register_secret` so no message can leak it.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import re
import shlex
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cidash.config import Config, check_url, is_ci, url_origin, url_without_userinfo
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
    max_rps: float = 0.0
    concurrency: int = 32
    #: ``concurrency`` was chosen (``--concurrency``, or ``[gitlab] concurrency`` in a file), not left to its
    #: default: it then holds from the start while the server sends no ``RateLimit-*`` headers too, instead of
    #: growing from :data:`cidash.remote.policy.UNADVERTISED_CONCURRENCY` (see ``PROBE_STEP`` there).
    concurrency_chosen: bool = False
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
            origin = self.sources.get("token_detail") or self.sources.get("token", "?")
            parts.append(f"{self.token_kind} token (from {origin})")
        if self.projects:
            parts.append(f"projects {', '.join(self.projects)} (from {self.sources.get('projects', '?')})")
        if self.group:
            parts.append(f"group {self.group} (from {self.sources.get('group', '?')})")
        return "; ".join(parts)


#: Environment variables naming a CA bundle (file or directory), in the order they are looked at.
CA_ENV_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def tls_verify(verify: bool | str, env: Mapping[str, str] | None = None) -> Literal[False] | str:
    """False (no verification) or the CA file/directory to verify GitLab's certificate with.

    One answer for both HTTP paths (the sync's own connections and httpx): ``verify`` as a path wins,
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


def read_token_file(path: str | Path) -> str:
    """The first non-empty line of a token file (a missing or empty file is a :class:`ConfigError`).

    UTF-8, with or without a byte-order mark, or UTF-16 with one (what Windows PowerShell 5 writes with ``>``);
    anything else is a :class:`ConfigError`, never a decoding traceback."""
    p = Path(path).expanduser()
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"token file {p} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"token file {p} cannot be read: {exc.strerror}") from None
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise ConfigError(
            f"token file {p} is not UTF-8 text", hint="save it as UTF-8 (or plain ASCII): the token on its first line"
        ) from None
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    raise ConfigError(f"token file {p} is empty")


#: python-gitlab's system-wide file. A module attribute so tests can point it into a temporary directory.
SYSTEM_PYTHON_GITLAB_CFG = Path("/etc/python-gitlab.cfg")

#: The repository whose ``.git/glab-cli/config.yml`` is read; None = the one containing the working directory.
#: Tests point it at a temporary directory so the developer's own checkout is never read.
GLAB_REPOSITORY: Path | None = None

_HELPER_PREFIX = "helper:"
_HELPER_TIMEOUT = 60.0
_TOKEN_KEYS: tuple[tuple[str, TokenKind], ...] = (
    ("private_token", "private"),
    ("oauth_token", "oauth"),
    ("job_token", "job"),
)


def python_gitlab_config_files(env: Mapping[str, str]) -> list[Path]:
    """python-gitlab's files in the order it reads them (a later file wins key by key).

    As python-gitlab does: ``PYTHON_GITLAB_CFG`` (one path) replaces the defaults; otherwise the system file
    ``/etc/python-gitlab.cfg`` and then the user's ``~/.python-gitlab.cfg``, so the user's settings win.
    """
    if env.get("PYTHON_GITLAB_CFG"):
        return [_expand_user(env["PYTHON_GITLAB_CFG"].strip(), env)]
    return [SYSTEM_PYTHON_GITLAB_CFG, _home(env) / ".python-gitlab.cfg"]


@dataclass(frozen=True)
class PythonGitlabSection:
    """One server section of the python-gitlab config, read with python-gitlab's own rules.

    A ``helper:`` token is not run until :meth:`read_token` is called (only when no earlier source has a token).
    """

    name: str
    url: str | None
    token_kind: TokenKind
    ssl_verify: bool | str
    timeout: float | None
    #: The file that defines the section (the last one read, when several do).
    file: str
    #: ``private_token``/``oauth_token``/``job_token``, or None.
    token_key: str | None = None
    _token: str | None = field(default=None, repr=False)
    _helper: tuple[str, ...] | None = field(default=None, repr=False)
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def source(self) -> str:
        return f"python-gitlab [{self.name}]"

    @property
    def token(self) -> str | None:
        """The plain token, or None (also when it comes from a helper: see :meth:`read_token`)."""
        return self._token

    @property
    def has_token(self) -> bool:
        return self._token is not None or self._helper is not None

    @property
    def token_origin(self) -> str:
        """Where the token comes from, for ``--verbose`` and ``cidash doctor`` (never the token)."""
        where = f"{self.source} {self.token_key} in {self.file}"
        if self._helper is not None:
            return f"{where} (helper {Path(self._helper[0]).name})"
        return where

    def read_token(self) -> str | None:
        if self._helper is not None:
            return run_token_helper(self._helper, f"{self.source} {self.token_key}", self.env)
        return self._token


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def _expand_user(text: str, env: Mapping[str, str]) -> Path:
    if text == "~" or text.startswith("~/"):
        return _home(env) / text[2:]
    return Path(text)


_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def _expand_vars(text: str, env: Mapping[str, str]) -> str:
    """``$VAR``/``${VAR}`` from ``env``; unknown variables stay as written (like :func:`os.path.expandvars`)."""

    def sub(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("plain")
        return env.get(name, m.group(0))

    return _VAR.sub(sub, text)


def run_token_helper(command: Sequence[str], what: str, env: Mapping[str, str]) -> str:
    """Run a ``helper:`` command (no shell) and return the first line it prints, stripped.

    Its output is never printed or put in an error message; a failing helper is one :class:`ConfigError` line.
    """
    import subprocess  # only for a helper: not imported at every start

    name = Path(command[0]).name if command else "?"
    if not command:
        raise ConfigError(f"{what} 'helper:' names no command")
    try:
        done = subprocess.run(
            list(command),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_HELPER_TIMEOUT,
            check=False,
            env=dict(env) if env is not os.environ else None,
        )
    except FileNotFoundError:
        raise ConfigError(f"{what} helper {command[0]} not found") from None
    except PermissionError:
        raise ConfigError(f"{what} helper {command[0]} is not executable") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{what} helper {name} did not finish within {_HELPER_TIMEOUT:g} s") from None
    except OSError as exc:
        raise ConfigError(f"{what} helper {name} cannot run: {exc.strerror or type(exc).__name__}") from None
    if done.returncode != 0:
        raise ConfigError(f"{what} helper {name} failed (exit status {done.returncode})")
    value = done.stdout.decode("utf-8", "replace").strip()
    if not value:
        raise ConfigError(f"{what} helper {name} printed no token")
    register_secret(value)
    return value


def _bool_or_path(value: str) -> bool | str:
    """python-gitlab's ``ssl_verify``: a configparser boolean, else the path of a CA bundle."""
    low = value.strip().lower()
    if low in configparser.ConfigParser.BOOLEAN_STATES:
        return configparser.ConfigParser.BOOLEAN_STATES[low]
    return value.strip()


def read_python_gitlab_section(name: str | None, env: Mapping[str, str]) -> PythonGitlabSection | None:
    """Read section ``name`` (None: the one ``[global] default`` names) from the python-gitlab config file(s).

    With ``name`` None a missing file or a missing ``[global] default`` gives None (nothing configured there);
    with a name, both are errors, as in python-gitlab.
    """
    candidates = python_gitlab_config_files(env)
    if env.get("PYTHON_GITLAB_CFG") and not candidates[0].is_file():
        raise ConfigError(f"PYTHON_GITLAB_CFG names {candidates[0]}, which is not a readable file")
    files = [p for p in candidates if p.is_file()]
    if not files:
        if name is None:
            return None
        raise ConfigError(
            f"python-gitlab section [{name}] requested but no python-gitlab config file found",
            hint="set PYTHON_GITLAB_CFG or create ~/.python-gitlab.cfg",
        )
    # python-gitlab reads its files with configparser's defaults (so `%%` means `%`).
    parser = configparser.ConfigParser()
    defined_in: dict[str, Path] = {}
    for path in files:
        try:
            with path.open(encoding="utf-8") as fh:
                parser.read_file(fh, source=str(path))
        except configparser.Error as exc:
            raise ConfigError(f"{path}: not a valid python-gitlab config ({exc.__class__.__name__})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc.__class__.__name__}"
            ) from None
        single = configparser.ConfigParser(interpolation=None)
        with contextlib.suppress(configparser.Error):  # the merged read above already reported errors
            single.read(path, encoding="utf-8")
        for sec in single.sections():
            defined_in[sec] = path
    where = ", ".join(map(str, files))
    if name is None:
        default = parser.get("global", "default", fallback="").strip() if parser.has_section("global") else ""
        if not default:
            return None
        name = default
        if not parser.has_section(name):
            raise ConfigError(f"python-gitlab [global] default names [{name}], which is not defined (files: {where})")
    elif not parser.has_section(name):
        raise ConfigError(f"python-gitlab config has no section [{name}] (files: {where})")
    try:
        return _section_from(parser, name, str(defined_in.get(name, files[-1])), env)
    except configparser.Error as exc:
        raise ConfigError(f"python-gitlab [{name}]: {exc.__class__.__name__} in {where}") from None


def _section_from(
    parser: configparser.ConfigParser, name: str, file: str, env: Mapping[str, str]
) -> PythonGitlabSection:
    sec = parser[name]
    if not (sec.get("url") or "").strip():
        raise ConfigError(f"python-gitlab [{name}] in {file} has no url")
    present = [(key, kind) for key, kind in _TOKEN_KEYS if (sec.get(key) or "").strip()]
    if len(present) > 1:
        raise ConfigError(
            f"python-gitlab [{name}] in {file} sets {' and '.join(k for k, _ in present)}; "
            "only one of private_token, oauth_token or job_token may be set"
        )
    token: str | None = None
    helper: tuple[str, ...] | None = None
    token_key: str | None = None
    kind: TokenKind = "private"
    if present:
        token_key, kind = present[0]
        raw = sec[token_key].strip()
        if raw.lower().startswith(_HELPER_PREFIX):
            # python-gitlab: shlex-split, then ~ and $VARS expanded in each word; run without a shell.
            words = shlex.split(raw[len(_HELPER_PREFIX) :].strip())
            helper = tuple(str(_expand_user(_expand_vars(w, env), env)) for w in words)
            if not helper:
                raise ConfigError(f"python-gitlab [{name}] {token_key} in {file}: 'helper:' names no command")
        else:
            token = raw
    verify: bool | str = True
    for section in ("global", name):
        if parser.has_option(section, "ssl_verify"):
            verify = _bool_or_path(parser.get(section, "ssl_verify"))
    if isinstance(verify, str):
        bundle = _expand_user(verify, env)
        if not bundle.exists():
            raise ConfigError(f"python-gitlab [{name}] ssl_verify names CA bundle {bundle}, which does not exist")
        verify = str(bundle)
    timeout: float | None = None
    for section in ("global", name):
        if parser.has_option(section, "timeout"):
            text = parser.get(section, "timeout")
            try:
                timeout = float(text)
            except ValueError:
                raise ConfigError(f"python-gitlab [{section}] timeout in {file} must be a number") from None
    return PythonGitlabSection(
        name=name,
        url=sec["url"].strip(),
        token_kind=kind,
        ssl_verify=verify,
        timeout=timeout,
        file=file,
        token_key=token_key,
        _token=token,
        _helper=helper,
        env=env,
    )


# -- glab ------------------------------------------------------------------------------------------------------


def url_from_host(value: str) -> str:
    """``GITLAB_HOST``/``GL_HOST`` as glab reads them: a bare host (``gitlab.example.com[:port]``) means https."""
    value = value.strip()
    if "://" in value:
        return value
    return "https://" + value.strip("/")


def glab_config_files(env: Mapping[str, str], *, repository: Path | None = None) -> list[Path]:
    """glab's config files, the one that wins first: the repository's ``.git/glab-cli/config.yml``, then the
    user's (``GLAB_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/glab-cli``, else ``~/.config/glab-cli``; on macOS also
    ``~/Library/Application Support/glab-cli``)."""
    out: list[Path] = []
    git_dir = _git_dir(repository if repository is not None else (GLAB_REPOSITORY or Path.cwd()))
    if git_dir is not None:
        out.append(git_dir / "glab-cli" / "config.yml")
    if env.get("GLAB_CONFIG_DIR"):
        out.append(_expand_user(env["GLAB_CONFIG_DIR"], env) / "config.yml")
        return out
    home = _home(env)
    if env.get("XDG_CONFIG_HOME"):
        out.append(Path(env["XDG_CONFIG_HOME"]) / "glab-cli" / "config.yml")
    out.append(home / ".config" / "glab-cli" / "config.yml")
    if sys.platform == "darwin":
        out.append(home / "Library" / "Application Support" / "glab-cli" / "config.yml")
    return list(dict.fromkeys(out))


def _git_dir(start: Path) -> Path | None:
    """The ``.git`` directory of the checkout containing ``start`` (a worktree's ``.git`` file is followed)."""
    try:
        here = start.resolve()
    except OSError:
        return None
    for directory in (here, *here.parents):
        dot_git = directory / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            try:
                first = dot_git.read_text(encoding="utf-8", errors="replace").splitlines()[:1]
            except OSError:
                return None
            if first and first[0].startswith("gitdir:"):
                target = Path(first[0][len("gitdir:") :].strip())
                return target if target.is_absolute() else (directory / target).resolve()
            return None
    return None


@dataclass(frozen=True)
class GlabToken:
    token: str = field(repr=False)
    kind: TokenKind
    file: str
    host: str


def glab_token(url: str, env: Mapping[str, str], *, repository: Path | None = None) -> GlabToken | None:
    """The plain-text token glab keeps for ``url``'s host, or None (no file, no such host, a keyring token)."""
    from urllib.parse import urlsplit

    import yaml

    parts = urlsplit(url)
    netloc = (parts.netloc.rsplit("@", 1)[-1]).lower()
    hostname = (parts.hostname or "").lower()
    default_port = parts.port is None or parts.port == {"https": 443, "http": 80}.get(parts.scheme)
    wanted = {netloc} | ({hostname} if default_port else set())
    for path in glab_config_files(env, repository=repository):
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            raise ConfigError(f"glab config {path} cannot be read") from None
        except yaml.YAMLError:
            raise ConfigError(f"glab config {path} is not valid YAML") from None
        hosts = data.get("hosts") if isinstance(data, dict) else None
        if not isinstance(hosts, dict):
            continue
        for host, entry in hosts.items():
            if str(host).strip().lower() not in wanted or not isinstance(entry, dict):
                continue
            token = entry.get("token")
            # Plain-text tokens only: a keyring-stored one is absent or empty here.
            if isinstance(token, str) and token.strip() and not token.strip().startswith("!!"):
                oauth = str(entry.get("is_oauth2", "")).strip().lower() == "true"
                return GlabToken(token.strip(), "oauth" if oauth else "private", str(path), str(host))
    return None


def _check_project_url(config: Config, url: str, sources: Mapping[str, str], *, ci: bool) -> None:
    """The user's own token goes only to a GitLab the user named. A ``[gitlab] url`` from the working directory's
    ``cidash.toml`` or ``pyproject.toml`` was chosen by whoever can push to that checkout: with a token from
    ``GITLAB_TOKEN``, ``--token-file`` or ``[gitlab] token_file`` it is refused unless a file of the user's own
    names the same origin (or ``--url`` / ``GITLAB_URL`` name it, which take precedence anyway). The tokens glab
    and python-gitlab keep are bound to their own hosts already, and inside CI the job runs the checkout's code."""
    project_file = config.project_url_from
    if ci or project_file is None or not sources.get("url", "").startswith("[gitlab] url"):
        return
    token_source = sources.get("token", "")
    if not token_source.startswith(("GITLAB_TOKEN", "--token-file", "[gitlab] token_file")):
        return
    shown = url_without_userinfo(url)
    raise ConfigError(
        f"{project_file} (in the current directory) sets [gitlab] url = {shown!r}, which none of your own settings "
        f"name: cidash does not send your token (from {token_source}) to a server a checkout chose",
        hint=f"if it is your GitLab, say so once: export GITLAB_URL={shown} or put the url in your own cidash.toml",
    )


def _check_token(token: str, source: str) -> None:
    """A token goes out as an HTTP header's value: visible ASCII only. A line break would end the header and start
    another (``GITLAB_TOKEN`` set from a file of two lines), and a character outside Latin-1 (a pasted zero-width
    space or typographic quote) cannot be sent at all; no GitLab token has either. The message names the
    character's place and code point, never the token."""
    for index, ch in enumerate(token):
        if not "!" <= ch <= "~":
            what = {" ": "a space", "\t": "a tab", "\r": "a line break", "\n": "a line break"}.get(ch)
            raise ConfigError(
                f"the token from {source} holds {what or f'the character U+{ord(ch):04X}'} (character {index + 1} "
                f"of {len(token)}); a GitLab token has only letters, digits and a few marks such as '-', '_' and '.'",
                hint="copy the token again, without spaces or line breaks",
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
    repository: Path | None = None,
) -> Connection:
    """Combine flags, environment and config into a :class:`Connection` (see the module docstring)."""
    env = os.environ if env is None else env
    gl = config.gitlab
    ci = is_ci(env)
    sources: dict[str, str] = {}
    section_name = python_gitlab_section or gl.python_gitlab_section
    explicit_section = bool(section_name)
    section = read_python_gitlab_section(section_name, env) if section_name else None
    implicit_loaded = False

    def implicit_section() -> PythonGitlabSection | None:
        # python-gitlab's `[global] default` section: read only when an earlier source left a gap.
        nonlocal section, implicit_loaded
        if section is None and not implicit_loaded:
            implicit_loaded = True
            section = read_python_gitlab_section(None, env)
        return section

    host_env = next(((env[n], n) for n in ("GITLAB_HOST", "GL_HOST") if env.get(n, "").strip()), None)
    resolved_url: str | None = None
    for value, origin in (
        (url, "--url"),
        (env.get("GITLAB_URL"), "GITLAB_URL"),
        (url_from_host(host_env[0]) if host_env else None, host_env[1] if host_env else ""),
        (env.get("CI_SERVER_URL") if ci else None, "CI_SERVER_URL"),
        (gl.url, f"[gitlab] url in {config.sources[-1] if config.sources else 'config'}"),
    ):
        if value and value.strip():
            resolved_url, sources["url"] = value.strip(), origin
            break
    if not resolved_url:
        pg = implicit_section()
        if pg is not None and pg.url:
            resolved_url, sources["url"] = pg.url, f"{pg.source} in {pg.file}"
    if not resolved_url:
        raise ConfigError(
            "no GitLab URL configured",
            hint="pass --url, set GITLAB_URL or GITLAB_HOST, or [gitlab] url in cidash.toml",
        )
    if not resolved_url.startswith(("http://", "https://")):
        shown = url_without_userinfo(resolved_url)
        raise ConfigError(f"GitLab URL must start with http:// or https:// (got {shown!r})")
    check_url(resolved_url, sources["url"])

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
    else:
        pg = section if explicit_section else implicit_section()
        if pg is not None and pg.has_token:
            if pg.url and url_origin(pg.url) != url_origin(resolved_url):
                if explicit_section:
                    raise ConfigError(
                        f"{pg.source} is for {pg.url}, but the GitLab URL in use is {resolved_url} "
                        f"(from {sources['url']}); its token is only sent to its own server",
                        hint="drop --url/GITLAB_URL, or name the matching section",
                    )
            else:
                token, kind = pg.read_token(), pg.token_kind
                sources["token"] = pg.source
                sources["token_detail"] = pg.token_origin
        if token is None:
            found = glab_token(resolved_url, env, repository=repository)
            if found is not None:
                token, kind = found.token, found.kind
                sources["token"] = f"glab config {found.file} (host {found.host})"

    if token:
        _check_token(token, sources["token"])
        _check_project_url(config, resolved_url, sources, ci=ci)

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
    if not rps >= 0 or rps == float("inf"):  # also nan
        raise ConfigError(f"max_rps must be 0 (no ceiling) or more, not {rps:g}", hint="--max-rps or [gitlab] max_rps")
    workers = gl.concurrency if concurrency is None else concurrency
    chosen = concurrency is not None or "gitlab.concurrency" in config.keys_set
    sources["concurrency"] = (
        "--concurrency" if concurrency is not None else "[gitlab] concurrency" if chosen else "default"
    )
    if workers < 1:
        raise ConfigError(
            f"concurrency must be at least 1, not {workers}", hint="--concurrency or [gitlab] concurrency"
        )
    verify: bool | str = gl.verify_tls
    sources["tls"] = "[gitlab] verify_tls" if not gl.verify_tls else "default"
    same_server = (
        section is not None and bool(section.url) and url_origin(section.url or "") == url_origin(resolved_url)
    )
    if section is not None and same_server and section.ssl_verify is not True and gl.verify_tls:
        verify = section.ssl_verify
        sources["tls"] = f"{section.source} ssl_verify in {section.file}"
    timeout = gl.timeout
    if section is not None and same_server and section.timeout:
        timeout = section.timeout
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
        timeout=timeout,
        max_rps=rps,
        concurrency=workers,
        concurrency_chosen=chosen,
        sources=sources,
    )
