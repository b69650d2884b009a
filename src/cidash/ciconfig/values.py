"""A job's keys read into plain values (strings, lists, image, script, retry, needs, variables) as GitLab does."""

from __future__ import annotations

from typing import Any

from cidash.ciconfig.loading import Reference
from cidash.ciconfig.model import ScriptLine

_MAX_SCRIPT_LINES = 10_000
_MAX_SCRIPT_VISITS = 10 * _MAX_SCRIPT_LINES  # items (lists and lines) a script's walk looks at


#: The longest text a list or mapping is shown as where a string was expected (see :func:`_as_str`).
_MAX_SHOWN = 200


def _as_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return _shown(value)
    return str(value)


def _shown(value: list[Any] | dict[Any, Any]) -> str:
    """``str(value)`` up to :data:`_MAX_SHOWN` characters (then "..."), built no further than that: YAML aliases
    can make a list of ten lists of ten ... whose full text would take 10^11 characters ("billion laughs")."""
    parts: list[str] = []
    size = 0

    def emit(text: str) -> bool:
        nonlocal size
        parts.append(text)
        size += len(text)
        return size < _MAX_SHOWN

    def walk(v: Any) -> bool:
        if isinstance(v, dict):
            if not emit("{"):
                return False
            for i, (key, item) in enumerate(v.items()):
                if (i and not emit(", ")) or not walk(key) or not emit(": ") or not walk(item):
                    return False
            return emit("}")
        if isinstance(v, list):
            if not emit("["):
                return False
            for i, item in enumerate(v):
                if (i and not emit(", ")) or not walk(item):
                    return False
            return emit("]")
        return emit(repr(v)[:_MAX_SHOWN])

    complete = walk(value)
    text = "".join(parts)
    return text if complete and len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [_as_str(v) for v in value if not isinstance(v, list | dict | Reference)]
    if isinstance(value, dict | Reference):
        return []
    return [_as_str(value)]


def _image(value: Any) -> tuple[str | None, int]:
    if isinstance(value, dict):
        name = value.get("name")
        return (_as_str(name) or None), getattr(value, "line", 0)
    if value is None or isinstance(value, list | Reference):
        return None, 0
    return _as_str(value) or None, 0


def _script(value: Any, section: str, fallback_line: int) -> tuple[ScriptLine, ...]:
    out: list[ScriptLine] = []
    visits = 0

    def walk(v: Any, line: int, depth: int) -> None:
        # GitLab flattens nested script lists up to 10 levels. "Billion laughs" aliases (a list of ten aliases of
        # a list of ten ...) are defused by counting the items visited, not only the lines kept: lists nested
        # past the 10 levels keep no line, and would be walked to the last of their 10^10 items.
        nonlocal visits
        visits += 1
        if depth > 10 or v is None or isinstance(v, Reference) or visits > _MAX_SCRIPT_VISITS:
            return
        if len(out) >= _MAX_SCRIPT_LINES:
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
