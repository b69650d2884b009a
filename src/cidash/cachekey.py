"""Cache keys: the combined checksum file and the key GitLab computes for ``cache:key:files``.

Two independent ideas live here, both pure apart from reading the files being checksummed:

**The combined checksum** (``cidash key``): one line per critical file, byte-identical to GNU ``sha256sum
FILES...`` — ``<sha256 hex>  <path>``, and for a name containing a backslash, newline or carriage return a
leading ``\\`` with those characters escaped as ``\\\\``, ``\\n``, ``\\r``. Committed as ``.cache-key`` it is
the single ``cache:key:files`` entry of a design that works on every GitLab version.

- :func:`checksum_lines(paths, root) -> str` — the exact ``sha256sum`` output.
- :func:`check_file(path, files, root) -> CheckResult` — compare a written checksum file with what would be
  written now (``ok``; ``changed``/``added``/``removed`` per file).
- :func:`write_atomic(path, content)` — temp file in the same directory + rename.
- :func:`parse_checksum_lines(text) -> dict[str, str]` — read ``sha256sum`` output back (``{path: hex}``).

**GitLab's own key** for a ``cache:`` entry with ``key: files:`` or ``key: files_commits:`` (see
``gitlab-facts.md`` §1), computed from a :class:`TreeProvider` so it works on a local checkout
(:class:`cidash.gitrepo.GitTreeProvider`) and on remote data (:class:`MappingProvider`, fed with the
``blob_id``/``last_commit_id`` GitLab returns for each file at a pipeline SHA).

- :func:`gitlab_key(files, provider, *, prefix, index, files_commits=False, rev="") -> GitLabKey` — both
  algorithms (``content``: blob ids, GitLab >= 18.4 ``files:``; ``commits``: last-commit ids, GitLab < 18.4 and
  ``files_commits:``), each an :class:`AlgorithmKey` with ``digest``, ``key`` and a human ``reason``.
- :func:`expand_patterns(patterns, files)` and :func:`glob_match(pattern, path)` — ``*`` (no slash), ``?``,
  ``[...]`` and ``**`` (any depth) as GitLab expands ``cache:key:files`` patterns.
- :data:`SUFFIX_EXPLANATION` — what GitLab and the runner append after the key.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from cidash.errors import InputError

# ---------------------------------------------------------------------------------------------------------------
# The combined checksum (sha256sum-compatible)
# ---------------------------------------------------------------------------------------------------------------

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (streamed)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def escape_name(name: str) -> tuple[str, bool]:
    """``(escaped name, needs the leading backslash)`` exactly as GNU sha256sum prints a file name."""
    if not any(c in name for c in "\\\n\r"):
        return name, False
    return name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r"), True


def unescape_name(name: str) -> str:
    """Undo :func:`escape_name` (for a line that started with a backslash)."""
    out: list[str] = []
    i = 0
    while i < len(name):
        c = name[i]
        if c == "\\" and i + 1 < len(name):
            nxt = name[i + 1]
            out.append({"\\": "\\", "n": "\n", "r": "\r"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def format_line(hexdigest: str, name: str) -> str:
    """One ``sha256sum`` line, with its newline."""
    escaped, flagged = escape_name(name)
    lead = "\\" if flagged else ""
    return f"{lead}{hexdigest}  {escaped}\n"


def file_checksums(paths: Sequence[str], root: Path) -> list[tuple[str, str]]:
    """``[(path, sha256 hex)]`` in the order given. A missing or unreadable file raises :class:`InputError`."""
    result: list[tuple[str, str]] = []
    for name in paths:
        target = root / name
        try:
            result.append((name, sha256_file(target)))
        except FileNotFoundError:
            raise InputError(
                f"critical file {name!r} does not exist (in {root})",
                hint="create it or remove it from [cache_key] files; a shorter key would hide the change",
            ) from None
        except IsADirectoryError:
            raise InputError(f"{name!r} is a directory, not a file (in {root})") from None
        except OSError as exc:
            raise InputError(f"cannot read {name!r}: {exc.strerror}") from None
    return result


def checksum_lines(paths: Sequence[str], root: Path) -> str:
    """What ``sha256sum PATHS...`` prints when run in ``root`` — byte-identical, escaping included.

    Paths are printed as given (relative paths are read relative to ``root``). A missing file raises
    :class:`cidash.errors.InputError` naming it: never a silently shorter key.
    """
    return "".join(format_line(digest, name) for name, digest in file_checksums(paths, root))


def parse_checksum_lines(text: str) -> dict[str, str]:
    """Read ``sha256sum`` output back into ``{path: hex}``; lines that are not checksum lines are ignored."""
    result: dict[str, str] = {}
    for raw in text.split("\n"):
        line = raw
        flagged = line.startswith("\\")
        if flagged:
            line = line[1:]
        m = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.*)", line, flags=re.DOTALL)
        if not m:
            continue
        name = unescape_name(m.group(2)) if flagged else m.group(2)
        result[name] = m.group(1).lower()
    return result


@dataclass(frozen=True)
class FileChange:
    """One file whose checksum differs between the written file and now (``old``/``new`` None when absent)."""

    path: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check_file`. ``ok`` is True only when the file is byte-identical to what would be written."""

    ok: bool
    exists: bool
    changed: tuple[FileChange, ...] = ()
    added: tuple[str, ...] = ()  # listed now, not in the written file
    removed: tuple[str, ...] = ()  # in the written file, no longer listed
    expected: str = ""

    def describe(self) -> list[str]:
        """Human lines: which files changed since the checksum file was written."""
        lines: list[str] = []
        if not self.exists:
            return ["the checksum file does not exist yet"]
        for ch in self.changed:
            lines.append(f"changed: {ch.path} ({(ch.old or '')[:12]} -> {(ch.new or '')[:12]})")
        lines.extend(f"added:   {p} (not in the written file)" for p in self.added)
        lines.extend(f"removed: {p} (no longer a critical file)" for p in self.removed)
        if not self.ok and not lines:
            lines.append("same checksums, different order or formatting")
        return lines


def check_file(path: Path, files: Sequence[str], root: Path) -> CheckResult:
    """Compare the checksum file ``path`` with what :func:`checksum_lines` gives for ``files`` now.

    A missing critical file raises :class:`InputError`; a missing checksum file is a failed check.
    """
    expected = checksum_lines(files, root)
    try:
        written = path.read_bytes().decode("utf-8", "surrogateescape")
    except FileNotFoundError:
        return CheckResult(ok=False, exists=False, added=tuple(files), expected=expected)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    old = parse_checksum_lines(written)
    new = parse_checksum_lines(expected)
    changed = tuple(FileChange(p, old[p], new[p]) for p in new if p in old and old[p] != new[p])
    added = tuple(p for p in new if p not in old)
    removed = tuple(p for p in old if p not in new)
    return CheckResult(
        ok=written == expected, exists=True, changed=changed, added=added, removed=removed, expected=expected
    )


def write_atomic(path: Path | str, content: str | bytes) -> bool:
    """Write ``content`` to ``path`` via a temp file in the same directory and a rename. Returns True if changed."""
    path = Path(path)
    data = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else content
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    return True


# ---------------------------------------------------------------------------------------------------------------
# GitLab's cache:key:files key
# ---------------------------------------------------------------------------------------------------------------

#: GitLab's limit on ``cache:key:files`` entries (19.5 has a beta flag for 10, off by default).
MAX_KEY_FILES = 2

SUFFIX_EXPLANATION = (
    "GitLab appends suffixes to this key: '-<n>' once someone pressed 'Clear runner caches' "
    "(n = the project's cache index), then '-protected' on protected refs or '-non_protected' on others "
    "(separated caches, the default since GitLab 15.0); the runner prints e.g. '<key>-2-protected'"
)

Algorithm = Literal["content", "commits"]


class TreeProvider(Protocol):
    """What :func:`gitlab_key` needs to know about one commit of a repository.

    - ``blob_id(path)``: the git blob id of the file at that commit (``git rev-parse SHA:path``), None if absent.
    - ``last_commit_id(path)``: the last commit touching ``path`` (``git log -1 --format=%H SHA -- path``), None
      if the path has no history.
    - ``list_files()``: every file path at that commit (for glob expansion), or None when unknown (then a glob
      entry is matched against the paths the provider knows ids for, see :class:`MappingProvider`).
    """

    def blob_id(self, path: str) -> str | None: ...

    def last_commit_id(self, path: str) -> str | None: ...

    def list_files(self) -> Sequence[str] | None: ...


@dataclass(frozen=True)
class MappingProvider:
    """A :class:`TreeProvider` over ids already known, e.g. the store's per-file ``blob_id``/``last_commit_id``
    for one pipeline SHA (fetched with a HEAD on GitLab's repository-files API).

    ``files`` is the full file list at that commit if known; otherwise globs match the keys of ``blob_ids``.
    """

    blob_ids: Mapping[str, str | None]
    commit_ids: Mapping[str, str | None] = field(default_factory=dict)
    files: Sequence[str] | None = None

    def blob_id(self, path: str) -> str | None:
        return self.blob_ids.get(path)

    def last_commit_id(self, path: str) -> str | None:
        return self.commit_ids.get(path)

    def list_files(self) -> Sequence[str] | None:
        if self.files is not None:
            return self.files
        return sorted(p for p, v in self.blob_ids.items() if v is not None)


class CallableProvider:
    """A :class:`TreeProvider` from plain callables (handy in tests and adapters)."""

    def __init__(
        self,
        blob_id: Callable[[str], str | None],
        last_commit_id: Callable[[str], str | None],
        list_files: Callable[[], Sequence[str] | None] = lambda: None,
    ) -> None:
        self._blob_id = blob_id
        self._last_commit_id = last_commit_id
        self._list_files = list_files

    def blob_id(self, path: str) -> str | None:
        return self._blob_id(path)

    def last_commit_id(self, path: str) -> str | None:
        return self._last_commit_id(path)

    def list_files(self) -> Sequence[str] | None:
        return self._list_files()


def is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                j = i + 2
                if j < n and pattern[j] == "/":
                    out.append("(?:.*/)?")  # "**/" = zero or more directories
                    i = j + 1
                else:
                    out.append(".*")
                    i = j
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), flags=re.DOTALL)


def glob_match(pattern: str, path: str) -> bool:
    """Whether ``path`` matches ``pattern``: ``*`` and ``?`` never cross ``/``, ``**`` matches any depth
    (``**/`` also zero directories), ``[...]`` is a character class. Leading dots are matched like any name."""
    return _glob_regex(_strip_dot(pattern)).fullmatch(_strip_dot(path)) is not None


def _strip_dot(path: str) -> str:
    while path.startswith("./"):
        path = path[2:]
    return path


def expand_patterns(patterns: Sequence[str], files: Sequence[str]) -> dict[str, list[str]]:
    """``{pattern: [matching paths, sorted]}``; a literal entry maps to itself when present in ``files``."""
    present = set(files)
    result: dict[str, list[str]] = {}
    for pattern in patterns:
        if is_glob(pattern):
            rx = _glob_regex(_strip_dot(pattern))
            result[pattern] = sorted(f for f in files if rx.fullmatch(f))
        else:
            result[pattern] = [_strip_dot(pattern)] if _strip_dot(pattern) in present else []
    return result


@dataclass(frozen=True)
class AlgorithmKey:
    """GitLab's key for one ``cache:`` entry under one algorithm.

    ``ids`` maps each matched path to the id used (blob id or last-commit id); ``missing`` lists entries that
    matched nothing; ``digest`` is the SHA-1 hex of the sorted unique ids joined with ``-``, or ``default``.
    """

    algorithm: Algorithm
    digest: str
    key: str
    ids: tuple[tuple[str, str], ...]
    missing: tuple[str, ...]
    reason: str

    @property
    def is_default(self) -> bool:
        return self.digest == "default"


@dataclass(frozen=True)
class GitLabKey:
    """Both algorithms for one ``cache:`` entry, plus what GitLab actually uses and the suffix rule."""

    files: tuple[str, ...]
    files_commits: bool
    prefix: str | None
    index: int
    key_prefix: str  # the prefix actually used: prefix, or the index when prefix is None; "" when removed
    content: AlgorithmKey
    commits: AlgorithmKey
    rev: str = ""

    @property
    def used_by_gitlab(self) -> str:
        """Which algorithm applies, in words."""
        if self.files_commits:
            return "commits (files_commits: on every GitLab version that has it)"
        return "content on GitLab >= 18.4, commits on older GitLab"

    def for_version(self, major: int, minor: int) -> AlgorithmKey:
        """The key a GitLab of that version computes."""
        if self.files_commits or (major, minor) < (18, 4):
            return self.commits
        return self.content

    suffixes: str = SUFFIX_EXPLANATION


def key_prefix(prefix: str | None, index: int) -> str:
    """GitLab's prefix rule: the ``prefix:`` given, else the entry's index in the job's ``cache:`` list;
    ``prefix: ""`` removes it."""
    return str(index) if prefix is None else prefix


def join_key(prefix_used: str, digest: str) -> str:
    return f"{prefix_used}-{digest}" if prefix_used else digest


def digest_of(ids: Sequence[str]) -> str:
    """SHA-1 hex of the sorted, de-duplicated ids joined with ``-``; ``default`` when there are none."""
    unique = sorted(set(ids))
    if not unique:
        return "default"
    return hashlib.sha1("-".join(unique).encode(), usedforsecurity=False).hexdigest()


def _short(rev: str) -> str:
    return rev[:12] if re.fullmatch(r"[0-9a-f]{40,64}", rev) else rev


def gitlab_key(
    files: Sequence[str],
    provider: TreeProvider,
    *,
    prefix: str | None,
    index: int = 0,
    files_commits: bool = False,
    rev: str = "",
) -> GitLabKey:
    """The key GitLab computes at pipeline creation for ``cache: key: files: FILES`` (or ``files_commits``).

    ``provider`` answers for the pipeline's commit (``rev`` is only used in the explanations). Glob entries are
    expanded against ``provider.list_files()``. Pure apart from what the provider does.
    """
    where = f" at {_short(rev)}" if rev else ""
    entries = [f for f in files if f]
    listing: Sequence[str] | None = None
    if any(is_glob(f) for f in entries):
        listing = provider.list_files() or []
    matched: dict[str, list[str]] = {}
    for entry in entries:
        if is_glob(entry):
            matched[entry] = expand_patterns([entry], listing or [])[entry]
        else:
            matched[entry] = [_strip_dot(entry)]
    used_prefix = key_prefix(prefix, index)
    prefix_words = (
        f"prefix {used_prefix!r}"
        if prefix
        else ("no prefix (prefix: '')" if prefix == "" else f"no prefix: the entry's index {index} is used")
    )

    def compute(algorithm: Algorithm) -> AlgorithmKey:
        lookup = provider.blob_id if algorithm == "content" else provider.last_commit_id
        ids: list[tuple[str, str]] = []
        missing: list[str] = []
        for entry in entries:
            found = False
            for path in matched[entry]:
                oid = lookup(path)
                if oid is not None:
                    ids.append((path, oid))
                    found = True
            if not found:
                missing.append(entry)
        digest = digest_of([oid for _, oid in ids])
        key = join_key(used_prefix, digest)
        what = "blob id" if algorithm == "content" else "last commit id"
        if not entries:
            reason = f"no file is listed: key falls back to {key!r}"
        elif digest == "default":
            listed = ", ".join(entries)
            if algorithm == "content":
                reason = (
                    f"no listed file exists{where} ({listed}): key falls back to {key!r}; GitLab reads the files "
                    "as committed when it creates the pipeline, so a file written by a job is never seen"
                )
            else:
                reason = f"no listed file has any commit{where} ({listed}): key falls back to {key!r}"
        else:
            n_files = len({p for p, _ in ids})
            reason = (
                f"SHA-1 of the sorted {what}s of {n_files} file{'s' if n_files != 1 else ''}{where}, {prefix_words}"
            )
            if missing:
                reason += f"; not found (ignored by GitLab): {', '.join(missing)}"
        if algorithm == "commits" and not files_commits and any(is_glob(e) for e in entries):
            reason += "; patterns are a GitLab >= 18.4 feature: older GitLab may match them differently"
        if prefix and "$" in prefix:
            reason += f"; the prefix {prefix!r} holds CI/CD variables the runner expands per job"
        if algorithm == "commits" and entries:
            deleted = [p for p, _ in ids if provider.blob_id(p) is None and not is_glob(p)]
            if deleted:
                verb = "exists" if len(deleted) == 1 else "exist"
                reason += f"; note: {', '.join(deleted)} no longer {verb} but still count by their last commit"
        return AlgorithmKey(
            algorithm=algorithm,
            digest=digest,
            key=key,
            ids=tuple(ids),
            missing=tuple(missing),
            reason=reason,
        )

    return GitLabKey(
        files=tuple(entries),
        files_commits=files_commits,
        prefix=prefix,
        index=index,
        key_prefix=used_prefix,
        content=compute("content"),
        commits=compute("commits"),
        rev=rev,
    )
