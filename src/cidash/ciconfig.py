"""Load a ``.gitlab-ci.yml`` safely, with line numbers, and resolve it as far as the local files allow.

Safe loading: a :class:`yaml.SafeLoader` subclass (no arbitrary Python tags) that records where every mapping,
list, key and list item starts, and accepts GitLab's ``!reference [job, key]`` tag. Any other tag, or broken
YAML, is an :class:`cidash.errors.InputError` naming the file, line and column (one line, no traceback).

Resolved here, in GitLab's order: local ``include:`` (when the file exists; remote, project, template and
component includes are reported as not resolved), YAML anchors, aliases and ``<<`` merge keys, ``!reference``
tags that point into the loaded files, ``extends:`` (multi-level, lists, deep merge of mappings), then
``default:`` and the deprecated top-level ``image``/``cache``/``before_script``/... with ``inherit:default``.
Hidden jobs (``.name``) are templates, not jobs.

Public API:

- :func:`load_ci(path, *, repo_root=None) -> CiConfig` and :func:`load_ci_text(text, name, *, repo_root=None)`.
- :class:`CiConfig` — ``jobs`` (each :class:`CiJob` with its *effective* ``caches`` after default/extends),
  ``unresolved`` (includes, references, extends that could not be followed), ``job(name)``.
- :class:`CacheSpec` — one entry of a job's ``cache:`` (``index``, ``key``, ``key_files``, ``files_commits``,
  ``prefix``, ``policy``, ``fallback_keys``, ``line``, ...).
"""

from __future__ import annotations

import dataclasses
import glob as _glob
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from cidash.errors import InputError

# ---------------------------------------------------------------------------------------------------------------
# Loading with line numbers
# ---------------------------------------------------------------------------------------------------------------


class YMap(dict[Any, Any]):
    """A YAML mapping that remembers its 1-based ``line``, each key's line and the file it came from."""

    line: int = 0
    source: str = ""
    key_lines: dict[Any, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class YList(list[Any]):
    """A YAML sequence that remembers its 1-based ``line`` and each item's line."""

    line: int = 0
    source: str = ""
    item_lines: list[int]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_lines = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


@dataclass(frozen=True)
class Reference:
    """An unresolved ``!reference [job, key, ...]`` tag."""

    path: tuple[str, ...]
    line: int
    source: str

    def __str__(self) -> str:
        return f"!reference [{', '.join(self.path)}]"


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that builds :class:`YMap`/:class:`YList` and knows ``!reference``."""

    source_name = ""


def _construct_map(loader: _LineLoader, node: MappingNode) -> Iterator[YMap]:
    data = YMap()
    data.line = node.start_mark.line + 1
    data.source = loader.source_name
    yield data
    value = loader.construct_mapping(node)  # flattens << merge keys into node.value first
    data.update(value)
    for key_node, _ in node.value:
        if isinstance(key_node, ScalarNode):
            try:
                k = loader.construct_object(key_node)
            except yaml.YAMLError:  # pragma: no cover - already constructed above
                continue
            try:
                data.key_lines[k] = key_node.start_mark.line + 1
            except TypeError:  # unhashable keys were rejected by construct_mapping
                continue


def _construct_seq(loader: _LineLoader, node: SequenceNode) -> Iterator[YList]:
    data = YList()
    data.line = node.start_mark.line + 1
    data.source = loader.source_name
    data.item_lines = [n.start_mark.line + 1 for n in node.value]
    yield data
    data.extend(loader.construct_sequence(node))


def _construct_reference(loader: _LineLoader, node: Node) -> Reference:
    if isinstance(node, SequenceNode):
        parts = tuple(str(loader.construct_object(n, deep=True)) for n in node.value)
    elif isinstance(node, ScalarNode):
        parts = (str(node.value),)
    else:
        raise yaml.constructor.ConstructorError(
            None, None, "!reference needs a list like [.job, script]", node.start_mark
        )
    return Reference(parts, node.start_mark.line + 1, loader.source_name)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)
_LineLoader.add_constructor("!reference", _construct_reference)


def load_yaml(text: str, name: str) -> Any:
    """Parse one YAML document safely; :class:`InputError` ``name:line:col: problem`` on bad YAML."""
    try:
        loader = _LineLoader(text)  # the reader refuses control characters here, before any parsing
    except yaml.YAMLError as exc:
        raise InputError(f"{name}: invalid YAML: {' '.join(str(exc).split())}") from None
    loader.source_name = name
    try:
        docs: list[Any] = []
        while loader.check_data():  # type: ignore[no-untyped-call]
            docs.append(loader.get_data())
        if len(docs) == 2 and isinstance(docs[0], dict) and "spec" in docs[0]:
            docs = docs[1:]  # a `spec:` header document (CI/CD inputs), then the configuration
        if len(docs) > 1:
            raise InputError(f"{name}: invalid YAML: expected one document, found {len(docs)} (separated by ---)")
        data = docs[0] if docs else None
        _check_acyclic(data, name)
        return data
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and "tag" not in problem:
            problem = f"{problem} ({exc.context})"
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise InputError(f"{where}: invalid YAML: {' '.join(problem.split())}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{name}: invalid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise InputError(f"{name}: invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def _check_acyclic(data: Any, name: str) -> None:
    """Refuse a YAML alias that contains itself (GitLab rejects it too); shared aliases are fine."""
    done: set[int] = set()
    active: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, leaving = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if leaving:
            active.discard(id(node))
            done.add(id(node))
            continue
        if id(node) in done:
            continue
        if id(node) in active:
            line = getattr(node, "line", 0)
            raise InputError(f"{name}:{line}: invalid YAML: an alias refers to a mapping or list that contains it")
        active.add(id(node))
        stack.append((node, True))
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, False) for child in children)


# ---------------------------------------------------------------------------------------------------------------
# The resolved model
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScriptLine:
    """One command of ``before_script``/``script``/``after_script`` and the line it starts on."""

    text: str
    line: int
    section: str = "script"


@dataclass(frozen=True)
class CacheSpec:
    """One entry of a job's effective ``cache:`` list.

    ``key`` is the literal key string when ``key:`` is a string (None when it is a ``files`` mapping or absent);
    ``key_files`` holds the ``files:`` (or ``files_commits:``) entries, ``files_commits`` says which; ``prefix``
    is None when not given (GitLab then derives one from ``index`` and, on >= 16.0, the file stems: see
    :func:`cidash.cachekey.default_prefix`). ``line`` is the line of the cache entry,
    ``key_files_lines`` the line of each ``key_files`` entry. ``origin`` names where it came from: ``job``,
    ``default``, ``top-level`` or ``extends <template>``.
    """

    index: int
    key: str | None
    key_files: tuple[str, ...] = ()
    files_commits: bool = False
    prefix: str | None = None
    policy: str = "pull-push"
    fallback_keys: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    when: str = "on_success"
    unprotect: bool = False
    line: int = 0
    key_files_lines: tuple[int, ...] = ()
    both_files_and_commits: bool = False
    path: str = ""
    origin: str = "job"

    @property
    def uses_key_files(self) -> bool:
        return bool(self.key_files)

    @property
    def writes(self) -> bool:
        """Whether a job with this cache uploads it (``pull-push`` or ``push``; variables count as writing)."""
        return self.policy != "pull"

    def identity(self) -> tuple[Any, ...]:
        """Two entries with equal identity get the same key in the same pipeline."""
        if self.key_files:
            # The order matters: the default prefix joins the stems in the listed order (GitLab >= 16.0).
            return ("files", self.files_commits, tuple(self.key_files), self.prefix, self.index)
        return ("key", self.key if self.key is not None else "default")


@dataclass(frozen=True)
class CiJob:
    """A job after ``extends``, ``!reference`` and ``default:`` resolution. ``line``/``path``: where it is defined."""

    name: str
    line: int
    path: str
    stage: str = "test"
    image: str | None = None
    image_line: int = 0
    before_script: tuple[ScriptLine, ...] = ()
    script: tuple[ScriptLine, ...] = ()
    after_script: tuple[ScriptLine, ...] = ()
    artifacts_paths: tuple[str, ...] = ()
    artifacts_line: int = 0
    dotenv_reports: tuple[str, ...] = ()
    resource_group: str | None = None
    retry_max: int = 0
    retry_when: tuple[str, ...] = ()
    manual: bool = False
    caches: tuple[CacheSpec, ...] = ()
    needs: tuple[str, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()
    extends: tuple[str, ...] = ()

    def all_script(self) -> tuple[ScriptLine, ...]:
        return self.before_script + self.script + self.after_script


@dataclass(frozen=True)
class Unresolved:
    """Something cidash could not follow: an ``include``, a ``!reference`` or an ``extends`` target."""

    kind: str  # "include" | "reference" | "extends"
    what: str
    path: str
    line: int
    reason: str


@dataclass(frozen=True)
class CiConfig:
    """A loaded, resolved CI file. ``path`` is the main file as given; jobs are in file order."""

    path: str
    jobs: tuple[CiJob, ...]
    unresolved: tuple[Unresolved, ...] = ()
    included: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()
    templates: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def job(self, name: str) -> CiJob | None:
        return next((j for j in self.jobs if j.name == name), None)

    @property
    def unresolved_includes(self) -> tuple[Unresolved, ...]:
        return tuple(u for u in self.unresolved if u.kind == "include")

    def cache_entries(self) -> Iterator[tuple[CiJob, CacheSpec]]:
        for job in self.jobs:
            for cache in job.caches:
                yield job, cache


# ---------------------------------------------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------------------------------------------

#: Top-level keys that are not jobs.
RESERVED = frozenset(
    {"default", "include", "stages", "variables", "workflow", "image", "services", "cache", "before_script",
     "after_script", "types", "spec"}
)  # fmt: skip
#: Keys ``default:`` (and the deprecated globals) can provide.
DEFAULT_KEYS = (
    "after_script",
    "artifacts",
    "before_script",
    "cache",
    "hooks",
    "id_tokens",
    "image",
    "interruptible",
    "retry",
    "services",
    "tags",
    "timeout",
)
_GLOBAL_DEFAULT_KEYS = ("image", "services", "cache", "before_script", "after_script")
_MAX_EXTENDS_DEPTH = 11
_MAX_INCLUDE_DEPTH = 100
_MAX_SCRIPT_LINES = 10_000


def load_ci(path: str | Path, *, repo_root: Path | None = None, name: str | None = None) -> CiConfig:
    """Load and resolve the CI file at ``path``. Local includes are read relative to ``repo_root`` (default:
    the file's directory); ``name`` (default ``path`` as given) is used in messages and findings.
    :class:`InputError` when the file is missing or is not valid YAML."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"CI file {p} does not exist", hint="pass the CI file's path, e.g. .gitlab-ci.yml") from None
    except IsADirectoryError:
        raise InputError(f"{p} is a directory, not a CI file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {p}: {getattr(exc, 'strerror', None) or exc}") from None
    root = repo_root if repo_root is not None else (p.parent if str(p.parent) else Path("."))
    return load_ci_text(text, name or str(path), repo_root=root)


def load_ci_text(text: str, name: str, *, repo_root: Path | None = None) -> CiConfig:
    """Load and resolve CI YAML given as text (e.g. fetched from GitLab). ``name`` is used in messages and
    findings. Local includes are resolved only when ``repo_root`` is given and the file exists there."""
    return _Resolver(repo_root).resolve(text, name)


def _as_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [_as_str(v) for v in value if not isinstance(v, list | dict | Reference)]
    if isinstance(value, dict | Reference):
        return []
    return [_as_str(value)]


def deep_merge(base: Any, override: Any) -> Any:
    """GitLab's merge for ``extends``/``include``: mappings merge key by key, anything else is replaced."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    out = YMap()
    out.line = getattr(override, "line", 0) or getattr(base, "line", 0)
    out.source = getattr(override, "source", "") or getattr(base, "source", "")
    base_lines = getattr(base, "key_lines", {})
    over_lines = getattr(override, "key_lines", {})
    for k, v in base.items():
        out[k] = v
        if k in base_lines:
            out.key_lines[k] = base_lines[k]
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if k in out else v
        if k in over_lines:
            out.key_lines[k] = over_lines[k]
    return out


class _Resolver:
    def __init__(self, repo_root: Path | None) -> None:
        self.repo_root = repo_root
        self.unresolved: list[Unresolved] = []
        self.included: list[str] = []
        self._copies: dict[int, tuple[Any, Any]] = {}

    def note(self, kind: str, what: str, where: Any, line: int, reason: str) -> None:
        src = getattr(where, "source", "") if not isinstance(where, str) else where
        item = Unresolved(kind, what, src, line, reason)
        if item not in self.unresolved:
            self.unresolved.append(item)

    # -- includes ------------------------------------------------------------------------------------------------

    def load_file(self, text: str, name: str, depth: int, seen: set[str]) -> YMap:
        data = load_yaml(text, name)
        if data is None:
            empty = YMap()
            empty.source = name
            return empty
        if not isinstance(data, YMap):
            raise InputError(f"{name}:1:1: invalid CI file: the top level must be a mapping of jobs and keywords")
        include = data.pop("include", None)
        if include is None:
            return data
        merged: Any = YMap()
        for entry, line in self.include_entries(include, data):
            sub = self.load_include(entry, line, name, depth, seen)
            for s in sub:
                merged = deep_merge(merged, s)
        return deep_merge(merged, data)  # type: ignore[no-any-return]

    def include_entries(self, include: Any, parent: YMap) -> Iterator[tuple[Any, int]]:
        line = parent.line_of("include")
        if isinstance(include, YList):
            for i, item in enumerate(include):
                yield item, include.line_of(i)
        elif isinstance(include, list):
            for item in include:
                yield item, line
        else:
            yield include, line

    def load_include(self, entry: Any, line: int, parent: str, depth: int, seen: set[str]) -> list[YMap]:
        kind, location = _include_kind(entry)
        if kind != "local":
            self.note("include", f"{kind}: {location}", parent, line, f"{kind} includes are not fetched")
            return []
        if self.repo_root is None:
            self.note("include", f"local: {location}", parent, line, "no repository directory to read it from")
            return []
        if depth >= _MAX_INCLUDE_DEPTH:
            self.note("include", f"local: {location}", parent, line, "includes nested too deeply")
            return []
        if "$" in location:
            self.note("include", f"local: {location}", parent, line, "the path uses CI/CD variables")
            return []
        rel = location.lstrip("/")
        top = self.repo_root.resolve()
        if not (top / rel).resolve().is_relative_to(top):
            self.note("include", f"local: {location}", parent, line, "the path leads outside the repository")
            return []
        if any(c in rel for c in "*?["):
            matches = sorted(
                str(Path(m).relative_to(self.repo_root))
                for m in _glob.glob(str(self.repo_root / rel), recursive=True)
                if Path(m).is_file()
            )
        else:
            matches = [rel] if (self.repo_root / rel).is_file() else []
        if not matches:
            self.note("include", f"local: {location}", parent, line, "the file does not exist locally")
            return []
        out: list[YMap] = []
        for m in matches:
            if m in seen:
                continue
            try:
                text = (self.repo_root / m).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                self.note("include", f"local: {m}", parent, line, f"cannot read it: {exc}")
                continue
            self.included.append(m)
            out.append(self.load_file(text, m, depth + 1, seen | {m}))
        return out

    # -- !reference ----------------------------------------------------------------------------------------------

    def resolve_references(self, value: Any, root: YMap, depth: int = 0) -> Any:
        if isinstance(value, Reference):
            return self.lookup_reference(value, root, depth)
        if not isinstance(value, dict | list):
            return value
        memo = self._copies.get(id(value))
        if memo is not None and memo[0] is value:
            return memo[1]
        copy = self._copy_resolved(value, root, depth)
        self._copies[id(value)] = (value, copy)
        return copy

    def _copy_resolved(self, value: Any, root: YMap, depth: int) -> Any:
        if isinstance(value, YMap):
            out = YMap()
            out.line, out.source, out.key_lines = value.line, value.source, dict(value.key_lines)
            for k, v in value.items():
                out[k] = self.resolve_references(v, root, depth)
            return out
        if isinstance(value, list):
            lst = YList()
            lst.line, lst.source = getattr(value, "line", 0), getattr(value, "source", "")
            old_lines = getattr(value, "item_lines", [])
            for i, item in enumerate(value):
                resolved = self.resolve_references(item, root, depth)
                item_line = old_lines[i] if i < len(old_lines) else lst.line
                lst.append(resolved)
                lst.item_lines.append(item_line)
            return lst
        return value

    def lookup_reference(self, ref: Reference, root: YMap, depth: int) -> Any:
        if depth > 10:
            self.note("reference", str(ref), ref.source, ref.line, "references nested too deeply")
            return None
        node: Any = root
        for part in ref.path:
            if isinstance(node, dict) and part in node:
                node = node[part]
            else:
                self.note("reference", str(ref), ref.source, ref.line, f"{part!r} not found in the loaded files")
                return None
        return self.resolve_references(node, root, depth + 1)

    # -- extends -------------------------------------------------------------------------------------------------

    def resolve_extends(self, name: str, root: YMap, chain: tuple[str, ...] = ()) -> YMap:
        job = root[name]
        parents = _str_list(job.get("extends"))
        if not parents:
            return job  # type: ignore[no-any-return]
        if len(chain) >= _MAX_EXTENDS_DEPTH:
            self.note("extends", name, job, job.line_of("extends"), "extends nested deeper than GitLab allows (11)")
            return job  # type: ignore[no-any-return]
        merged: Any = YMap()
        for parent in parents:
            if parent in chain or parent == name:
                self.note("extends", parent, job, job.line_of("extends"), f"circular extends through {name!r}")
                continue
            target = root.get(parent)
            if not isinstance(target, dict):
                self.note("extends", parent, job, job.line_of("extends"), f"{name}: extends unknown job {parent!r}")
                continue
            merged = deep_merge(merged, self.resolve_extends(parent, root, (*chain, name)))
        result = deep_merge(merged, job)
        assert isinstance(result, YMap)
        result.line, result.source = job.line, job.source
        return result

    # -- whole file ----------------------------------------------------------------------------------------------

    def resolve(self, text: str, name: str) -> CiConfig:
        root = self.load_file(text, name, 0, {name})
        root = self.resolve_references(root, root)
        default = root.get("default") if isinstance(root.get("default"), dict) else YMap()
        globals_: dict[str, Any] = {k: root[k] for k in _GLOBAL_DEFAULT_KEYS if k in root}
        for k in _GLOBAL_DEFAULT_KEYS:
            if k in globals_ and k in default:
                globals_.pop(k)
        global_lines = {k: root.line_of(k) for k in globals_}
        jobs: list[CiJob] = []
        templates: list[str] = []
        for key, value in root.items():
            if not isinstance(key, str) or key in RESERVED or not isinstance(value, dict):
                continue
            if key.startswith("."):
                templates.append(key)
                continue
            effective = self.resolve_extends(key, root)
            job = self.build_job(
                key, job=effective, default=default, globals_=globals_, global_lines=global_lines, root=root
            )
            jobs.append(dataclasses.replace(job, line=root.line_of(key)))
        stages = tuple(_str_list(root.get("stages"))) or ("build", "test", "deploy")
        variables = _variables(root.get("variables"))
        return CiConfig(
            path=name,
            jobs=tuple(jobs),
            unresolved=tuple(self.unresolved),
            included=tuple(self.included),
            stages=stages,
            variables=variables,
            templates=tuple(templates),
            raw=dict(root),
        )

    def build_job(
        self,
        name: str,
        *,
        job: YMap,
        default: YMap,
        globals_: dict[str, Any],
        global_lines: dict[str, int],
        root: YMap,
    ) -> CiJob:
        inherit = job.get("inherit")
        inherit_default: Any = True
        if isinstance(inherit, dict) and "default" in inherit:
            inherit_default = inherit["default"]

        def inherits(key: str) -> bool:
            if inherit_default is False:
                return False
            if isinstance(inherit_default, list):
                return key in inherit_default
            return True

        eff: dict[str, Any] = dict(job)
        origin: dict[str, tuple[str, YMap | None, int]] = {}
        for key in DEFAULT_KEYS:
            if key in eff:
                continue
            if key in default and inherits(key):
                eff[key] = default[key]
                origin[key] = ("default", default, default.line_of(key))
            elif key in globals_ and inherits(key):
                eff[key] = globals_[key]
                origin[key] = ("top-level", root, global_lines[key])
        image, image_line = _image(eff.get("image"))
        if "image" in job:
            image_line = job.line_of("image")
        elif "image" in origin:
            image_line = origin["image"][2]
        artifacts = eff.get("artifacts") if isinstance(eff.get("artifacts"), dict) else {}
        assert isinstance(artifacts, dict)
        reports = artifacts.get("reports") if isinstance(artifacts.get("reports"), dict) else {}
        assert isinstance(reports, dict)
        retry_max, retry_when = _retry(eff.get("retry"))
        own = root.get(name)
        if isinstance(own, dict) and "cache" in own:
            cache_origin = "job"
        elif "cache" in job:
            cache_origin = "extends " + ", ".join(_str_list(job.get("extends")))
        else:
            cache_origin = origin.get("cache", ("job", None, 0))[0]
        return CiJob(
            name=name,
            line=job.line,
            path=job.source,
            stage=_as_str(eff.get("stage")) or "test",
            image=image,
            image_line=image_line or job.line,
            before_script=_script(eff.get("before_script"), "before_script", job.line),
            script=_script(eff.get("script"), "script", job.line),
            after_script=_script(eff.get("after_script"), "after_script", job.line),
            artifacts_paths=tuple(_str_list(artifacts.get("paths"))),
            artifacts_line=getattr(artifacts, "line", 0),
            dotenv_reports=tuple(_str_list(reports.get("dotenv"))),
            resource_group=_as_str(eff["resource_group"]) if eff.get("resource_group") else None,
            retry_max=retry_max,
            retry_when=retry_when,
            manual=_is_manual(eff),
            caches=_caches(eff.get("cache"), cache_origin, job),
            needs=tuple(_needs(eff.get("needs"))),
            variables=_variables(eff.get("variables")),
            extends=tuple(_str_list(job.get("extends"))),
        )


def _include_kind(entry: Any) -> tuple[str, str]:
    if isinstance(entry, str):
        if re.match(r"^https?://", entry):
            return "remote", entry
        return "local", entry
    if isinstance(entry, dict):
        for kind in ("local", "remote", "template", "component", "project"):
            if kind in entry:
                location = _as_str(entry[kind])
                if kind == "project":
                    files = ", ".join(_str_list(entry.get("file")))
                    location = f"{location} ({files})" if files else location
                return kind, location
    return "unknown", _as_str(entry)


def _image(value: Any) -> tuple[str | None, int]:
    if isinstance(value, dict):
        name = value.get("name")
        return (_as_str(name) or None), getattr(value, "line", 0)
    if value is None or isinstance(value, list | Reference):
        return None, 0
    return _as_str(value) or None, 0


def _script(value: Any, section: str, fallback_line: int) -> tuple[ScriptLine, ...]:
    out: list[ScriptLine] = []

    def walk(v: Any, line: int, depth: int) -> None:
        # GitLab flattens nested script lists up to 10 levels; the size cap defuses "billion laughs" aliases.
        if depth > 10 or v is None or isinstance(v, Reference) or len(out) >= _MAX_SCRIPT_LINES:
            return
        if isinstance(v, list):
            lines = getattr(v, "item_lines", [])
            for i, item in enumerate(v):
                walk(item, lines[i] if i < len(lines) else line, depth + 1)
        elif isinstance(v, dict):
            return
        else:
            out.append(ScriptLine(_as_str(v), line, section))

    walk(value, getattr(value, "line", 0) or fallback_line, 0)
    return tuple(out)


def _retry(value: Any) -> tuple[int, tuple[str, ...]]:
    if value is None:
        return 0, ()
    if isinstance(value, bool):
        return 0, ()
    if isinstance(value, int):
        return value, ("always",) if value > 0 else ()
    if isinstance(value, dict):
        try:
            maximum = int(value.get("max", 0) or 0)
        except (TypeError, ValueError):
            maximum = 0
        when = tuple(_str_list(value.get("when"))) or (("always",) if maximum > 0 else ())
        return maximum, when if maximum > 0 else ()
    try:
        n = int(str(value))
    except ValueError:
        return 0, ()
    return n, ("always",) if n > 0 else ()


def _is_manual(job: dict[str, Any]) -> bool:
    if _as_str(job.get("when")) == "manual":
        return True
    rules = job.get("rules")
    if isinstance(rules, list):
        return any(isinstance(r, dict) and _as_str(r.get("when")) == "manual" for r in rules)
    return False


def _needs(value: Any) -> list[str]:
    out: list[str] = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and "job" in item:
                out.append(_as_str(item["job"]))
    return out


def _variables(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        return ()
    out: list[tuple[str, str]] = []
    for k, v in value.items():
        if isinstance(v, dict):
            v = v.get("value", "")
        out.append((_as_str(k), _as_str(v)))
    return tuple(out)


def _caches(value: Any, origin: str, job: YMap) -> tuple[CacheSpec, ...]:
    if value is None:
        return ()
    entries: list[tuple[Any, int]] = []
    if isinstance(value, list):
        lines = getattr(value, "item_lines", [])
        entries = [(v, lines[i] if i < len(lines) else job.line) for i, v in enumerate(value)]
    else:
        entries = [(value, getattr(value, "line", 0) or job.line)]
    out: list[CacheSpec] = []
    for index, (entry, line) in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        out.append(_cache_spec(index, entry, line, origin, job))
    return tuple(out)


def _cache_spec(index: int, entry: dict[str, Any], line: int, origin: str, job: YMap) -> CacheSpec:
    key = entry.get("key")
    key_str: str | None = None
    files: list[str] = []
    files_lines: list[int] = []
    files_commits = False
    both = False
    prefix: str | None = None
    if isinstance(key, dict):
        has_files = "files" in key
        has_commits = "files_commits" in key
        both = has_files and has_commits
        source_key = "files" if has_files else ("files_commits" if has_commits else None)
        files_commits = source_key == "files_commits"
        if source_key is not None:
            raw = key.get(source_key)
            files = _str_list(raw)
            item_lines = getattr(raw, "item_lines", [])
            files_line = key.line_of(source_key) if isinstance(key, YMap) else line
            files_lines = [item_lines[i] if i < len(item_lines) else files_line for i in range(len(files))]
        if key.get("prefix") is not None:  # absent or null: GitLab's default prefix
            prefix = _as_str(key.get("prefix"))
    elif key is not None:
        key_str = _as_str(key)
    policy = _as_str(entry.get("policy")) or "pull-push"
    return CacheSpec(
        index=index,
        key=key_str,
        key_files=tuple(files),
        files_commits=files_commits,
        prefix=prefix,
        policy=policy,
        fallback_keys=tuple(_str_list(entry.get("fallback_keys"))),
        paths=tuple(_str_list(entry.get("paths"))),
        when=_as_str(entry.get("when")) or "on_success",
        unprotect=entry.get("unprotect") is True,
        line=getattr(entry, "line", 0) or line,
        key_files_lines=tuple(files_lines),
        both_files_and_commits=both,
        path=getattr(entry, "source", "") or job.source,
        origin=origin,
    )
