"""A job's ``cache:`` entries (one or a list) read into :class:`~cidash.ciconfig.model.CacheSpec`."""

from __future__ import annotations

from typing import Any

from cidash.ciconfig.loading import YMap
from cidash.ciconfig.model import CacheSpec
from cidash.ciconfig.values import _as_str, _str_list


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
