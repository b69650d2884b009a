"""Configuration: ``cidash.toml`` files, ``[tool.cidash]`` in ``pyproject.toml``, environment, flags.

Where settings come from, later ones overriding earlier ones key by key:

1. the user's ``cidash.toml``: ``$XDG_CONFIG_HOME/cidash/cidash.toml`` (default ``~/.config/cidash``) on Linux;
   on macOS ``~/Library/Application Support/cidash/cidash.toml``, else ``~/.config/cidash/cidash.toml`` (the
   first that exists);
2. the project's ``./cidash.toml``, or else ``[tool.cidash]`` in ``./pyproject.toml``;
3. an explicit ``--config FILE``, else the file ``CIDASH_CONFIG`` names (replaces 2);
4. environment (``GITLAB_URL``/``GITLAB_TOKEN``; ``CI_SERVER_URL``/``CI_JOB_TOKEN`` inside CI) and flags,
   applied by the callers that need them (see :mod:`cidash.connection`).

Unknown keys are errors (a typo must not silently fall back to a default). Tokens are never part of
:class:`Config`: only where to find one (``token_file``, ``python_gitlab_section``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import platformdirs

from cidash.errors import ConfigError

APP_NAME = "cidash"

DEFAULT_CRITICAL_FILES: tuple[str, ...] = ("go.mod", "go.sum", ".gitlab-ci.yml", "Dockerfile.ci", ".mise/config.toml")


@dataclass(frozen=True)
class GitLabSettings:
    url: str | None = None
    #: A file holding the token (first line). The token itself never lives in a config file cidash reads.
    token_file: str | None = None
    #: Name of a section in a python-gitlab config file (``~/.python-gitlab.cfg``) to take url and token from.
    python_gitlab_section: str | None = None
    projects: tuple[str, ...] = ()
    group: str | None = None
    verify_tls: bool = True
    #: A CA bundle (PEM file or c_rehash directory) to verify GitLab's certificate with, for a private CA.
    ca_file: str | None = None
    timeout: float = 30.0
    #: Hard ceiling on requests per second across the whole sync; 0 (the default): none, the adaptive policy of
    #: :class:`cidash.remote.policy.RateLimiter` alone (GitLab's ``RateLimit-*`` headers, 429/503 back-off).
    max_rps: float = 0.0
    #: Most requests in flight at once (the adaptive window's ceiling). Left unset, while the server sends no
    #: ``RateLimit-*`` headers, a sync starts from 16 and takes more only while answers keep their pace; set (here
    #: or by ``--concurrency``), it holds from the start (see docs/commands.md, "Rate policy").
    concurrency: int = 32


@dataclass(frozen=True)
class StoreSettings:
    #: SQLite file; default ``<platformdirs data dir>/cidash.db``.
    path: str | None = None
    #: A PostgreSQL store instead of the SQLite file: ``postgresql://user@host:port/dbname`` (libpq URL; keep a
    #: password out of the file: ``~/.pgpass`` or ``PGPASSWORD``). Mutually exclusive with ``path``.
    url: str | None = None


@dataclass(frozen=True)
class SyncSettings:
    #: fnmatch patterns of job names whose logs are fetched and parsed.
    job_patterns: tuple[str, ...] = ("*",)
    #: How far back the first sync goes, e.g. "30d", "12h", or an ISO date.
    since: str = "30d"
    #: Re-read registry tags and resource groups at most this often when nothing else changed.
    registry_refresh_minutes: float = 60.0
    #: Projects synced at once by ``cidash sync`` with several projects (a group): they share the one request
    #: ceiling of ``[gitlab] concurrency`` / ``max_rps``; 1 syncs them one after another.
    project_concurrency: int = 8
    #: After a sync that changed the store, compute the dashboard's Health for its next start (never in CI);
    #: false for a machine where no dashboard follows (a cron job or a worker filling a shared store).
    warm_dashboard: bool = True


@dataclass(frozen=True)
class ImageSettings:
    #: Registry repository path of the CI image (default: ``<project path>/ci``).
    repository: str | None = None
    build_job: str = "build-ci-image"
    verify_job: str = "verify-ci-image"


@dataclass(frozen=True)
class CacheKeySettings:
    #: The critical files combined into the checksum file.
    files: tuple[str, ...] = DEFAULT_CRITICAL_FILES
    #: The committed combined-checksum file.
    file: str = ".cache-key"
    ci_file: str = ".gitlab-ci.yml"


@dataclass(frozen=True)
class CriteriaSettings:
    image_size_mb: float = 215.0  # MB = 10^6 bytes, as registries and `docker images` print them
    startup_improvement_pct: float = 30.0
    image_build_reliability_pct: float = 99.0
    stale_caches_max: int = 0
    cache_key_files_max: int = 2
    cache_writers_max: int = 0
    #: SPECs for the start-up comparison; empty = split at the most recent CI-image digest change.
    baseline: str = ""
    candidate: str = ""
    window_days: int = 30
    min_n: int = 10
    ref: str | None = None  # default: the project's default branch
    #: The CI-image migration, when the digest history cannot tell it: a UTC date or time (2026-11-11,
    #: 2026-11-11T09:30:00Z) or an image digest (sha256:..., 6+ hex digits): the first job on it is the split.
    migration: str = ""


@dataclass(frozen=True)
class ActionSettings:
    read_only: bool = False
    rebuild_ref: str | None = None  # default: the project's default branch
    rebuild_variables: tuple[tuple[str, str], ...] = (("FORCE_CI_IMAGE_REBUILD", "true"),)


@dataclass(frozen=True)
class TuiSettings:
    refresh_seconds: float = 60.0
    theme: str = "textual-dark"


@dataclass(frozen=True)
class Config:
    gitlab: GitLabSettings = field(default_factory=GitLabSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    image: ImageSettings = field(default_factory=ImageSettings)
    cache_key: CacheKeySettings = field(default_factory=CacheKeySettings)
    criteria: CriteriaSettings = field(default_factory=CriteriaSettings)
    actions: ActionSettings = field(default_factory=ActionSettings)
    tui: TuiSettings = field(default_factory=TuiSettings)
    #: The files this config was read from, in order (for ``--verbose`` and error messages).
    sources: tuple[str, ...] = ()
    #: The project's file in the working directory (``./cidash.toml`` or ``pyproject.toml``) when it sets a
    #: ``[gitlab] url`` whose origin no file of the user's own names: a checkout anyone can push to chose that
    #: server, so the user's token is not sent there unless the user names it too (see
    #: :func:`cidash.connection.resolve_connection`).
    project_url_from: str | None = None
    #: Likewise, that file when it sets a ``[store] url`` no file of the user's own names: what a sync reads from the
    #: user's GitLab is not written to a database a checkout chose (see :func:`store_target_source`).
    project_store_url_from: str | None = None
    #: Every setting a file sets, as ``"section.key"``: a setting left to its default and one set to the same
    #: value can mean different things (``gitlab.concurrency``, see :func:`cidash.connection.resolve_connection`).
    keys_set: frozenset[str] = frozenset()

    def store_target(self, env: Mapping[str, str] | None = None) -> str:
        """What to pass to :meth:`cidash.store.Store.open`: ``CIDASH_DB`` (a file or a ``postgresql://`` URL), else
        ``[store] url``, else the SQLite file of :meth:`store_path` (``--db`` beats all; the commands apply it)."""
        return store_target_source(self, env)[0]

    def store_path(self, env: Mapping[str, str] | None = None) -> Path:
        """The store: ``CIDASH_DB``, else ``[store] path``, else ``<platformdirs data dir>/cidash.db``
        (``--db`` beats all three; the commands apply it)."""
        return store_path_source(self, env)[0]


def is_ci(env: Mapping[str, str] | None = None) -> bool:
    """True in CI: ``CI`` set to ``1``, ``true`` or ``yes`` (any case), as GitLab CI and most runners set it."""
    return (os.environ if env is None else env).get("CI", "").strip().lower() in ("1", "true", "yes")


def is_store_url(value: str) -> bool:
    """True for a PostgreSQL store URL (``postgresql://`` or ``postgres://``)."""
    return value.strip().lower().startswith(("postgresql://", "postgres://"))


def store_target_source(config: Config, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The store (a path or a PostgreSQL URL) and where it came from (``CIDASH_DB``, ``[store] url``,
    ``[store] path`` or ``default``)."""
    env = os.environ if env is None else env
    given = env.get("CIDASH_DB", "").strip()
    if given and is_store_url(given):
        return given, "CIDASH_DB"
    if not given and config.store.url:
        if config.project_store_url_from is not None and not is_ci(env):
            shown = url_without_userinfo(config.store.url.strip())
            raise ConfigError(
                f"{config.project_store_url_from} (in the current directory) sets [store] url = {shown!r}, which none "
                "of your own settings name: cidash does not write what it reads from your GitLab to a database a "
                "checkout chose",
                hint="if it is your store, say so once: export CIDASH_DB=<its URL>, pass --db, or put it in your own "
                "cidash.toml",
            )
        return config.store.url.strip(), "[store] url"
    path, origin = store_path_source(config, env)
    return str(path), origin


def store_path_source(config: Config, env: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """The store path and where it came from (``CIDASH_DB``, ``[store] path`` or ``default``)."""
    env = os.environ if env is None else env
    if env.get("CIDASH_DB", "").strip():
        return Path(env["CIDASH_DB"].strip()).expanduser(), "CIDASH_DB"
    if config.store.path:
        return Path(config.store.path).expanduser(), "[store] path"
    return Path(platformdirs.user_data_dir(APP_NAME)) / "cidash.db", "default"


def user_config_paths(env: Mapping[str, str] | None = None, *, platform: str | None = None) -> list[Path]:
    """The user-level ``cidash.toml`` candidates in search order (the first that exists is read)."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform != "darwin":
        return [Path(platformdirs.user_config_dir(APP_NAME)) / "cidash.toml"]
    # macOS: the native place first, then the XDG-style one many command-line users keep their dotfiles in.
    home = Path(env.get("HOME") or Path.home())
    xdg = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    return [
        home / "Library" / "Application Support" / APP_NAME / "cidash.toml",
        xdg / APP_NAME / "cidash.toml",
    ]


def user_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The user-level ``cidash.toml`` in use: the first candidate that exists, else where to create one."""
    candidates = user_config_paths(env)
    return next((p for p in candidates if p.is_file()), candidates[0])


def load_config(
    explicit: str | Path | None = None, *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read and merge the configuration files; raise :class:`ConfigError` naming the file and key on error."""
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    layers: list[tuple[str, dict[str, Any]]] = []
    user = user_config_path(env)
    if user.is_file():
        layers.append((str(user), _read_toml(user)))
    named_by = "config file"
    if explicit is None and env.get("CIDASH_CONFIG", "").strip():
        explicit, named_by = env["CIDASH_CONFIG"].strip(), "CIDASH_CONFIG file"
    if explicit is not None:
        path = Path(explicit).expanduser()
        if path.is_dir():
            raise ConfigError(f"{named_by} {path} is a directory", hint="pass a cidash.toml file")
        if path.exists() and not path.is_file():
            raise ConfigError(f"{named_by} {path} is not a regular file", hint="pass a cidash.toml file")
        if not path.is_file():
            raise ConfigError(f"{named_by} {path} does not exist")
        layers.append((str(path), _read_toml(path)))
    elif (cwd / "cidash.toml").is_file():
        layers.append((str(cwd / "cidash.toml"), _read_toml(cwd / "cidash.toml")))
    elif (cwd / "pyproject.toml").is_file():
        tool = _read_toml(cwd / "pyproject.toml").get("tool", {})
        if isinstance(tool, dict) and isinstance(tool.get("cidash"), dict):
            layers.append((f"{cwd / 'pyproject.toml'} [tool.cidash]", tool["cidash"]))
    merged: dict[str, dict[str, Any]] = {}
    for source, data in layers:
        for section, values in data.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{source}: '{section}' must be a table like [{section}]")
            merged.setdefault(section, {}).update(values)
    config = config_from_dict(merged, sources=tuple(s for s, _ in layers))
    if explicit is None and layers and layers[-1][0] != str(user):  # the working directory's file, not a chosen one
        project_source, project = layers[-1]
        own = layers[0][1] if layers[0][0] == str(user) else {}
        url, own_url = _url_in(project, "gitlab"), _url_in(own, "gitlab")
        if url and not (own_url and url_origin(own_url) == url_origin(url)):
            config = dataclasses.replace(config, project_url_from=project_source)
        store = _url_in(project, "store")
        if store and store != _url_in(own, "store"):
            config = dataclasses.replace(config, project_store_url_from=project_source)
    return config


def _url_in(layer: Mapping[str, Any], section: str) -> str | None:
    """A file's ``[section] url``, stripped (None when unset or empty)."""
    value = (layer.get(section) or {}).get("url")
    return value.strip() or None if isinstance(value, str) else None


def url_origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, lower-cased, with the scheme's default port filled in (the one origin
    comparison: :func:`cidash.remote.policy.origin_of` is this)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if scheme == "https" else 80
    return scheme, (parts.hostname or "").lower(), port


def config_from_dict(data: dict[str, Any], *, sources: tuple[str, ...] = ()) -> Config:
    where = sources[-1] if sources else "config"
    sections: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        if f.name not in _SECTION_TYPES:  # where the settings came from, not a section
            continue
        cls = _SECTION_TYPES[f.name]
        sections[f.name] = _build(cls, data.get(f.name, {}), f.name, where)
    unknown = set(data) - set(sections)
    if unknown:
        raise ConfigError(f"{where}: unknown section [{sorted(unknown)[0]}] (known: {', '.join(sorted(sections))})")
    store = sections["store"]
    if store.url is not None and not is_store_url(store.url):
        raise ConfigError(
            f"{where}: [store] url must start with postgresql:// (got a {store.url.split(':', 1)[0]!r} URL)",
            hint="for an SQLite file use [store] path",
        )
    if store.url and store.path:
        raise ConfigError(f"{where}: [store] url and [store] path are both set", hint="keep one of them")
    crit = sections["criteria"]
    if bool(crit.baseline) != bool(crit.candidate):
        given, missing = ("baseline", "candidate") if crit.baseline else ("candidate", "baseline")
        raise ConfigError(
            f"{where}: [criteria] {given} is set without {missing}",
            hint="set both SPECs, or neither to split at the CI-image migration",
        )
    if crit.migration:
        from cidash.errors import UsageError
        from cidash.specs import parse_migration

        try:
            parse_migration(crit.migration)
        except UsageError as exc:
            raise ConfigError(f"{where}: [criteria] migration: {exc}") from None
    keys_set = frozenset(f"{name}.{key}" for name, values in data.items() if isinstance(values, dict) for key in values)
    return Config(**sections, sources=sources, keys_set=keys_set)


_T = TypeVar("_T")

_SECTION_TYPES: dict[str, type[Any]] = {
    "gitlab": GitLabSettings,
    "store": StoreSettings,
    "sync": SyncSettings,
    "image": ImageSettings,
    "cache_key": CacheKeySettings,
    "criteria": CriteriaSettings,
    "actions": ActionSettings,
    "tui": TuiSettings,
}


#: Keys older versions documented, with what to do instead (an error that says why beats "unknown key").
_REMOVED_KEYS: dict[tuple[str, str], str] = {
    ("sync", "keep_raw_logs"): "cidash keeps only the facts parsed from each log; remove the key",
}


def _build(cls: type[_T], values: dict[str, Any], section: str, where: str) -> _T:
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key in ("token", "private_token"):
            raise ConfigError(
                f"{where}: [{section}] {key} is not read from config files; "
                "use GITLAB_TOKEN, --token-file or [gitlab] token_file"
            )
        if (section, key) in _REMOVED_KEYS:
            raise ConfigError(f"{where}: [{section}] {key} is no longer supported", hint=_REMOVED_KEYS[section, key])
        if key not in known:
            raise ConfigError(f"{where}: unknown key '{key}' in [{section}] (known: {', '.join(sorted(known))})")
        default = getattr(cls(), key)
        kwargs[key] = _coerce(value, default, f"[{section}] {key}", where)
        _check_value(kwargs[key], section, key, where)
    return cls(**kwargs)


#: (section, key) -> (lowest, highest, lowest allowed itself): numbers outside are a ConfigError naming the key.
#: Every float must also be finite (``nan``, ``inf`` are refused).
_LIMITS: dict[tuple[str, str], tuple[float, float, bool]] = {
    ("gitlab", "timeout"): (0.0, 3600.0, False),
    ("gitlab", "max_rps"): (0.0, 10_000.0, True),  # 0: no ceiling
    ("gitlab", "concurrency"): (1, 64, True),
    ("sync", "registry_refresh_minutes"): (0.0, 366 * 24 * 60.0, True),
    ("sync", "project_concurrency"): (1, 64, True),
    ("criteria", "image_size_mb"): (0.0, 1e7, False),
    ("criteria", "startup_improvement_pct"): (-1000.0, 100.0, True),
    ("criteria", "image_build_reliability_pct"): (0.0, 100.0, True),
    ("criteria", "stale_caches_max"): (0, 1_000_000_000, True),
    ("criteria", "cache_key_files_max"): (0, 1_000_000, True),
    ("criteria", "cache_writers_max"): (0, 1_000_000_000, True),
    ("criteria", "window_days"): (1, 36_500, True),
    ("criteria", "min_n"): (1, 1_000_000, True),
    ("tui", "refresh_seconds"): (0.0, 86_400.0, True),  # 0: no polling
}


def _check_value(value: Any, section: str, key: str, where: str) -> None:
    """Refuse values no code path can use: non-finite floats, numbers out of range, control characters in a
    string (one line on stderr naming the file and key, exit 2)."""
    import math

    name = f"[{section}] {key}"
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: {name} must be a finite number (got {value})")
    limits = _LIMITS.get((section, key))
    if limits is not None and isinstance(value, int | float) and not isinstance(value, bool):
        low, high, low_ok = limits
        if value > high or value < low or (value == low and not low_ok):
            low_text = f">= {low:g}" if low_ok else f"> {low:g}"
            raise ConfigError(f"{where}: {name} must be {low_text} and <= {high:g} (got {value!r})")
    texts: list[str] = []
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, tuple):
        texts = [t for item in value for t in (item if isinstance(item, tuple) else (item,)) if isinstance(t, str)]
    for text in texts:
        if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in text):
            raise ConfigError(f"{where}: {name} holds a control character ({text!r})")


def _coerce(value: Any, default: Any, name: str, where: str) -> Any:
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: {name} must be true or false")
    if isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: {name} must be a number")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: {name} must be an integer")
    if isinstance(default, tuple):
        if default and isinstance(default[0], tuple):  # a table of string pairs
            if isinstance(value, dict) and all(isinstance(k, str) for k in value):
                return tuple((str(k), str(v)) for k, v in value.items())
            raise ConfigError(f'{where}: {name} must be a table of KEY = "value"')
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: {name} must be a list of strings")
    # str or optional str
    if isinstance(value, str):
        return value
    raise ConfigError(f"{where}: {name} must be a string")


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # (here: most commands run with no config file, and the parser's import is ~5-10 ms)

    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except UnicodeDecodeError as exc:  # tomllib reads UTF-8 only
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r})"
        ) from None
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
        raise ConfigError(
            f"{path}: invalid TOML: {type(exc).__name__ if isinstance(exc, RecursionError) else exc}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def url_without_userinfo(url: str) -> str:
    """``url`` without the ``user:password@`` a URL may carry before its host: what a message may show of it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:end]
    if "@" not in authority:
        return url
    return f"{scheme}{sep}{authority.rsplit('@', 1)[1]}{rest[end:]}"


def check_url(url: str, origin: str) -> None:
    """A GitLab URL cidash can connect to, or :class:`ConfigError` naming where it came from (``--url``,
    ``GITLAB_URL``, ``[gitlab] url in FILE``): ``http://[::1`` and ``http://host:99999`` are refused here, not
    deep in the HTTP client. A URL with a user name or password before its host (``https://me:secret@host``) is
    refused without showing them: GitLab's API takes a token, not a password, and a password in the URL would
    reach error messages and, through httpx and requests, other requests as Basic authentication."""
    from urllib.parse import urlsplit

    shown = url_without_userinfo(url)
    if shown != url:
        raise ConfigError(
            f"{origin}: GitLab URL {shown!r} has a user name or password before its host; cidash does not use them",
            hint="leave them out of the URL; give the API token with GITLAB_TOKEN, --token-file or [gitlab] token_file",
        )
    if any(ord(ch) < 0x21 or 0x7F <= ord(ch) < 0xA0 for ch in url):
        raise ConfigError(f"{origin}: GitLab URL {url!r} holds a space or control character")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError as exc:
        raise ConfigError(f"{origin}: GitLab URL {url!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{origin}: GitLab URL {url!r} needs http:// or https:// and a host")
    if port == 0:
        raise ConfigError(f"{origin}: GitLab URL {url!r} has port 0")
