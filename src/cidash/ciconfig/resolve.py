"""Resolution in GitLab's order: local includes, ``!reference``, ``extends:``, ``default:``, the old globals."""

from __future__ import annotations

import dataclasses
import glob as _glob
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cidash.ciconfig.caches import _caches
from cidash.ciconfig.loading import Reference, YList, YMap, load_yaml
from cidash.ciconfig.model import CiConfig, CiJob, Unresolved
from cidash.ciconfig.values import _as_str, _image, _is_manual, _needs, _retry, _script, _str_list, _variables
from cidash.errors import InputError

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
