"""The simulated GitLab's own ``cache:key:files`` computation (gitlab-facts.md section 1).

Written from the facts, independently of :mod:`cidash.cachekey` on purpose: the simulator is what cidash is
tested against, so it must not share cidash's beliefs. A test computes both for the same committed files and
version and expects the same key; a wrong belief in either shows up as a difference.

- :func:`parse_version("18.6.0-ee") -> (18, 6, 0)`
- :func:`cache_key(entries, tree, version, ...) -> str` — the key GitLab stores for the job (before the suffixes)
- :func:`job_cache_key(base, ...) -> str` — with the suffixes of ``app/models/ci/build.rb#cache``
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Version = tuple[int, int, int]


@functools.cache
def parse_version(text: str) -> Version:
    """``"18.6.0-ee"`` -> ``(18, 6, 0)``; a missing patch level is 0."""
    numbers = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if numbers is None:
        raise ValueError(f"not a version: {text!r}")
    major, minor, patch = numbers.groups()
    return int(major), int(minor), int(patch or 0)


def blob_id(content: bytes) -> str:
    """``git hash-object``: SHA-1 over ``blob <size>\\0`` and the bytes."""
    h = hashlib.sha1(usedforsecurity=False)
    h.update(f"blob {len(content)}".encode() + b"\x00")
    h.update(content)
    return h.hexdigest()


def _wildcard_to_regex(entry: str) -> str:
    """GitLab's expansion of a ``*`` entry: escaped, then ``**`` -> ``.*?``, ``*`` -> ``[^/]*?``; anchored."""
    out = []
    i = 0
    while i < len(entry):
        if entry[i] == "*":
            if entry[i : i + 2] == "**":
                out.append(".*?")
                i += 2
            else:
                out.append("[^/]*?")
                i += 1
        else:
            out.append(re.escape(entry[i]))
            i += 1
    return "^" + "".join(out) + "$"


def pathspec_matches(spec: str, path: str) -> bool:
    """Git's plain pathspec (what ``LastCommitForPath`` gets): the path itself, anything under it as a directory,
    or a wildcard match where ``*`` crosses ``/`` (``?`` one character, ``[...]`` a class).

    As git does (checked with ``git log -1 -- SPEC`` in a bare repository): the spec is normalised first (repeated
    slashes count as one, ``./`` segments are dropped, ``..`` takes back a segment: :func:`_git_normal`); a
    trailing slash asks for a directory (``a/`` matches under ``a``, ``a/b/`` not the file ``a/b``); a wildcard is
    matched against whole file paths, so a wildcard spec ending in ``/`` (``*/``) matches nothing."""
    normal = _git_normal(spec)
    if normal is None:
        return False
    if normal in ("", "/"):
        return True  # "." or "./": the whole tree
    spec = normal
    wildcard = any(c in spec for c in "*?[")
    if spec.endswith("/") and spec != "/":
        return not wildcard and path.startswith(spec)
    if path == spec or path.startswith(spec + "/"):
        return True
    if not wildcard:
        return False
    rx = []
    i = 0
    while i < len(spec):
        c = spec[i]
        if c == "*":
            rx.append(".*")
        elif c == "?":
            rx.append(".")
        elif c == "[" and "]" in spec[i + 2 :]:
            end = spec.index("]", i + 2)
            body = spec[i + 1 : end]
            rx.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end
        else:
            rx.append(re.escape(c))
        i += 1
    return re.fullmatch("".join(rx), path, flags=re.DOTALL) is not None


def _git_normal(spec: str) -> str | None:
    """The pathspec as git normalises it before matching (``git log -- SPEC`` at the top of a bare repository):
    empty and ``.`` segments dropped (``a//b`` and ``./a`` are ``a/b`` and ``a``), ``..`` taking back a segment, a
    trailing ``/`` kept (a directory); None for a spec that climbs out of the repository (git refuses it)."""
    parts: list[str] = []
    for segment in spec.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(segment)
    normal = "/".join(parts)
    return normal + "/" if spec.endswith("/") and normal else normal


def _verbatim_missing(path: str) -> bool:
    """A path GitLab looks up verbatim and can never find (``./x``, ``a/../b``, ``a//b``)."""
    segments = path.split("/")
    return "." in segments or ".." in segments or "" in segments[:-1]


@dataclass(frozen=True)
class KeyInput:
    """One ``cache:`` entry whose ``key:`` is a mapping with ``files:`` or ``files_commits:``."""

    entries: tuple[str, ...]
    index: int = 0
    prefix: str | None = None
    files_commits: bool = False


def cache_key(
    spec: KeyInput,
    tree: Mapping[str, bytes],
    version: Version,
    *,
    last_commit: Callable[[str], str | None] = lambda spec: None,
) -> str:
    """The key GitLab ``version`` computes at pipeline creation for ``spec`` over the committed ``tree``
    (``{path: content}`` at the pipeline's SHA); ``last_commit(pathspec)`` answers git's last commit touching a
    pathspec at that SHA (needed before 18.4 and for ``files_commits:``)."""
    configured = [re.sub(r"^/+", "", e) for e in spec.entries]
    looked_up: list[str] = []
    for e in configured:
        if e.strip() and e not in looked_up:
            looked_up.append(e)

    ids: list[str] = []
    if not spec.files_commits and version >= (18, 4):
        paths: list[str] = []
        for e in looked_up:
            found = [p for p in sorted(tree) if re.fullmatch(_wildcard_to_regex(e), p)] if "*" in e else [e]
            paths += [p for p in found if p not in paths]
        for p in paths:
            if not _verbatim_missing(p) and p in tree:
                ids.append(blob_id(tree[p]))
    else:
        for e in looked_up:
            commit = last_commit(e)  # a git pathspec: git normalises ./, // and .. (no verbatim look-up here)
            if commit:
                ids.append(commit)
    unique = sorted(set(ids))
    digest = hashlib.sha1("-".join(unique).encode(), usedforsecurity=False).hexdigest() if unique else "default"

    if spec.prefix is not None:
        prefix = spec.prefix
    elif version < (15, 7):
        prefix = ""
    elif version < (16, 0) or spec.files_commits or not configured:
        prefix = str(spec.index)
    else:
        prefix = f"{spec.index}_" + "_".join(e.partition(".")[0] for e in configured)
    return f"{prefix}-{digest}" if prefix.strip() else digest


def job_cache_key(
    base: str,
    version: Version,
    *,
    protected_ref: bool,
    maintainer: bool = False,
    unprotect: bool = False,
    separated_caches: bool = True,
    cache_index: int = 0,
) -> str:
    """``base`` with the suffixes GitLab appends for one job: ``-<cache index>`` after "Clear runner caches",
    then ``-protected``/``-non_protected`` while the project keeps separated caches."""
    key = base
    if cache_index > 0:
        key += f"-{cache_index}"
    if not separated_caches:
        return key
    security_release = version >= (18, 6, 1) or (18, 5, 3) <= version < (18, 6) or (18, 4, 5) <= version < (18, 5)
    if not unprotect and (protected_ref or (maintainer and security_release)):
        return key + "-protected"
    return key + "-non_protected"


def last_commit_finder(
    history: Sequence[tuple[str, Mapping[str, bytes]]],
) -> Callable[[str], str | None]:
    """``last_commit(pathspec)`` over a linear history ``[(sha, tree), ...]`` oldest first, ending at the
    pipeline's commit: the newest commit whose tree differs from its parent's under the pathspec."""

    def last_commit(spec: str) -> str | None:
        previous: Mapping[str, bytes] = {}
        found = None
        for sha, tree in history:
            touched = {p for p in set(tree) | set(previous) if tree.get(p) != previous.get(p)}
            if any(pathspec_matches(spec, p) for p in touched):
                found = sha
            previous = tree
        return found

    return last_commit
