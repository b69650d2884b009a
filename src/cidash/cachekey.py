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

**GitLab's own key** for a ``cache:`` entry with ``key: files:`` or ``key: files_commits:`` (``gitlab-facts.md``
§1), computed from a :class:`TreeProvider` so it works on a local checkout (:class:`cidash.gitrepo.GitTreeProvider`)
and on remote data (:class:`MappingProvider`, fed with the ``blob_id``/``last_commit_id`` GitLab returns for each
file at a pipeline SHA). The rules depend on the instance's version (:class:`GitLabVersion`, :data:`ERAS`):

- :func:`gitlab_key(files, provider, *, prefix, index, files_commits=False, rev="", version=None) -> GitLabKey` —
  both digests (``content``: blob ids, GitLab >= 18.4 ``files:``; ``commits``: one last-commit id per entry,
  older GitLab and ``files_commits:``); :meth:`GitLabKey.for_version` / :attr:`GitLabKey.chosen` give the key of
  one version, :meth:`GitLabKey.variants` each distinct key with the versions that give it.
- :func:`key_prefix` / :func:`default_prefix` — ``prefix:``, else ``<index>_<stems>`` (>= 16.0 ``files:``), the
  bare index (15.7-15.11, ``files_commits:``) or nothing (< 15.7); :func:`prefix_error` — a prefix GitLab rejects.
- :func:`pattern_regex` / :func:`pattern_matches` / :func:`expand_patterns` — only entries with ``*`` expand:
  ``**`` -> ``.*?``, ``*`` -> ``[^/]*?``, anchored; ``?`` and ``[...]`` are literal. :func:`verbatim_problem` —
  why ``./x`` is never found.
- Suffixes: :data:`SUFFIX_EXPLANATION`, :func:`possible_suffixes`, :func:`match_seen_key` (a runner-printed key
  against the computed ones, saying which suffixes explain it) and :func:`sanitize_like_runner` /
  :func:`runner_rewrite_note` (runner 18.2.x rewriting).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
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
    """Write ``content`` to ``path`` via a temp file in the same directory and a rename (a regular file or a new
    path only: :func:`cidash.outfile.write_bytes`). Returns True if changed."""
    from cidash.outfile import write_bytes

    data = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else content
    return write_bytes(path, data, option="--write")


# ---------------------------------------------------------------------------------------------------------------
# GitLab's cache:key:files key (gitlab-facts.md section 1)
# ---------------------------------------------------------------------------------------------------------------

#: GitLab's limit on ``cache:key:files`` entries ("files config has too many items (maximum is 2)").
MAX_KEY_FILES = 2
#: ... unless the instance turned on ``increase_ci_cache_key_files_limit`` (``files:`` only, off by default).
RAISED_MAX_KEY_FILES = 10

Algorithm = Literal["content", "commits"]


@dataclass(frozen=True, order=True)
class GitLabVersion:
    """A GitLab (or runner) version, ``major.minor.patch``; edition and pre-release suffixes are ignored."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> GitLabVersion:
        """``"18.6"``, ``"18.6.1"``, ``"v18.6.0-ee"``; :class:`InputError` for anything else."""
        m = re.fullmatch(r"\s*v?(\d{1,3})\.(\d{1,3})(?:\.(\d{1,4}))?(?:[-+~ ][0-9A-Za-z.+~-]*)?\s*", text or "")
        if m is None:
            raise InputError(f"not a GitLab version: {text!r}", hint="for example 18.6 or 18.6.1")
        return cls(int(m[1]), int(m[2]), int(m[3] or 0))

    @classmethod
    def maybe(cls, text: str | None) -> GitLabVersion | None:
        """:meth:`parse`, or None for None, an empty string or a string that is not a version."""
        if not text:
            return None
        try:
            return cls.parse(text)
        except InputError:
            return None

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def _v(major: int, minor: int, patch: int = 0) -> GitLabVersion:
    return GitLabVersion(major, minor, patch)


#: Where each rule changed: content-based ``files:`` keys and ``files_commits:`` (18.4), the
#: ``<index>_<stems>`` default prefix (16.0; 15.11 behind a flag that is off by default), the index as default
#: prefix (15.7).
CONTENT_KEYS_SINCE = _v(18, 4)
STEM_PREFIX_SINCE = _v(16, 0)
INDEX_PREFIX_SINCE = _v(15, 7)


@dataclass(frozen=True)
class Era:
    """A range of GitLab versions that compute ``cache:key:files`` keys the same way (``high`` exclusive)."""

    label: str
    low: GitLabVersion | None
    high: GitLabVersion | None

    def contains(self, version: GitLabVersion) -> bool:
        return (self.low is None or version >= self.low) and (self.high is None or version < self.high)

    @property
    def sample(self) -> GitLabVersion:
        return self.low if self.low is not None else _v(15, 0)


#: Newest first. With no version known, cidash shows the key of each era (merged where they agree).
ERAS: tuple[Era, ...] = (
    Era("GitLab >= 18.4", CONTENT_KEYS_SINCE, None),
    Era("GitLab 16.0-18.3", STEM_PREFIX_SINCE, CONTENT_KEYS_SINCE),
    Era("GitLab 15.7-15.11", INDEX_PREFIX_SINCE, STEM_PREFIX_SINCE),
    Era("GitLab < 15.7", None, INDEX_PREFIX_SINCE),
)


_ERA_BOUNDS = {
    "GitLab >= 18.4": ("18.4", None),
    "GitLab 16.0-18.3": ("16.0", "18.3"),
    "GitLab 15.7-15.11": ("15.7", "15.11"),
    "GitLab < 15.7": (None, "15.6"),
}


def merge_era_labels(labels: Sequence[str]) -> str:
    """Era labels in words, adjacent eras merged: ``["GitLab >= 18.4", "GitLab 16.0-18.3"]`` -> ``GitLab >= 16.0``.
    Labels that are not era labels (an exact version) are kept as they are."""
    order = [e.label for e in ERAS]
    if not labels or any(label not in _ERA_BOUNDS for label in labels):
        return ", ".join(labels)
    positions = sorted(order.index(label) for label in labels)
    runs: list[list[int]] = []
    for pos in positions:
        if runs and pos == runs[-1][-1] + 1:
            runs[-1].append(pos)
        else:
            runs.append([pos])
    words = []
    for run in runs:
        if len(run) == 1:
            words.append(order[run[0]])
            continue
        low = _ERA_BOUNDS[order[run[-1]]][0]
        high = _ERA_BOUNDS[order[run[0]]][1]
        if low is None and high is None:
            words.append("every GitLab version")
        elif high is None:
            words.append(f"GitLab >= {low}")
        elif low is None:
            words.append(f"GitLab <= {high}")
        else:
            words.append(f"GitLab {low}-{high}")
    return ", ".join(words)


def era_of(version: GitLabVersion) -> Era:
    return next(e for e in ERAS if e.contains(version))


def algorithm_for(version: GitLabVersion, *, files_commits: bool) -> Algorithm:
    """``content`` (blob ids) for ``files:`` on GitLab >= 18.4, else ``commits`` (one last-commit id per entry)."""
    return "content" if not files_commits and version >= CONTENT_KEYS_SINCE else "commits"


def maintainer_gets_protected(version: GitLabVersion | None) -> bool | None:
    """Whether a Maintainer's job gets ``-protected`` on any ref (the 18.4.5 / 18.5.3 / 18.6.1 security
    releases and later); None when the version is unknown."""
    if version is None:
        return None
    if version >= _v(18, 6, 1):
        return True
    if _v(18, 5, 3) <= version < _v(18, 6):
        return True
    return _v(18, 4, 5) <= version < _v(18, 5)


# -- entries, paths and patterns ---------------------------------------------------------------------------------


def config_entries(files: Sequence[str]) -> list[str]:
    """The entries as GitLab keeps them after validation: only leading ``/`` are stripped (``./x`` stays)."""
    return [f.lstrip("/") if f.startswith("/") else f for f in files]


def _present(entry: str) -> bool:
    """Ruby's ``present?`` on a string: not empty and not only whitespace."""
    return bool(entry.strip())


def lookup_entries(files: Sequence[str]) -> list[str]:
    """The entries GitLab looks up: non-blank, de-duplicated, in order (``select(&:present?).uniq``)."""
    out: list[str] = []
    for entry in config_entries(files):
        if _present(entry) and entry not in out:
            out.append(entry)
    return out


def entry_stem(entry: str) -> str:
    """Everything before the entry's first ``.`` (``package.json`` -> ``package``; ``.cache-key`` -> ``""``)."""
    return entry.split(".", 1)[0]


def is_pattern(entry: str) -> bool:
    """GitLab expands an entry only when it contains ``*`` (``?`` and ``[...]`` are literal characters)."""
    return "*" in entry


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """The pattern as GitLab matches it against every path at the SHA: the pattern escaped, then ``**`` ->
    ``.*?`` and ``*`` -> ``[^/]*?``, anchored at both ends (use ``fullmatch``)."""
    rx = re.escape(pattern).replace(r"\*\*", ".*?").replace(r"\*", "[^/]*?")
    return re.compile(rx)


def pattern_matches(pattern: str, path: str) -> bool:
    """Whether GitLab's expansion of ``pattern`` includes ``path`` (a literal entry matches only itself)."""
    if not is_pattern(pattern):
        return pattern == path
    return pattern_regex(pattern).fullmatch(path) is not None


def expand_patterns(patterns: Sequence[str], files: Sequence[str]) -> dict[str, list[str]]:
    """``{entry: [matching paths, sorted]}`` as GitLab's content keys expand them; a literal entry maps to
    itself when it is one of ``files`` (verbatim: ``./go.mod`` does not name ``go.mod``)."""
    present = set(files)
    result: dict[str, list[str]] = {}
    for pattern in patterns:
        if is_pattern(pattern):
            rx = pattern_regex(pattern)
            result[pattern] = sorted(f for f in files if rx.fullmatch(f))
        else:
            result[pattern] = [pattern] if pattern in present else []
    return result


def pathspec_path(path: str) -> str | None:
    """``path`` as git reads it as a pathspec at the top of the repository (what a ``files_commits:`` entry, and a
    ``files:`` entry before GitLab 18.4, become in Gitaly's LastCommitForPath): ``./`` and empty segments dropped,
    ``..`` taking back a segment; None when it climbs out of the repository."""
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(segment)
    return "/".join(parts)


def verbatim_problem(path: str) -> str | None:
    """Why GitLab, which looks the entry up verbatim in the tree, never finds ``path`` (None: it may)."""
    if path.startswith("./") or path in (".", ".."):
        return "relative paths ('./') are looked up verbatim and never found"
    if path.startswith("../") or "/./" in path or "/../" in path or path.endswith(("/.", "/..")):
        return "'.' and '..' segments are looked up verbatim and never found"
    if "//" in path:
        return "'//' is looked up verbatim and never found"
    return None


# -- prefix -------------------------------------------------------------------------------------------------------


def prefix_error(prefix: str) -> str | None:
    """Why GitLab rejects this ``prefix:`` (or string ``key:``) with a pipeline error; None when it is valid."""
    from urllib.parse import unquote

    plain = unquote(prefix)
    if "/" in plain:
        return 'cannot contain the "/" character' + (" (URL-escaped)" if "/" not in prefix else "")
    if plain in (".", ".."):
        return 'cannot be "." or ".."'
    return None


def default_prefix(files: Sequence[str], index: int, *, files_commits: bool, version: GitLabVersion) -> tuple[str, str]:
    """GitLab's prefix when ``prefix:`` is absent, and in words: ``<index>_<stems>`` for ``files:`` on
    GitLab >= 16.0, the bare index for ``files_commits:`` and on 15.7-15.11, nothing before 15.7."""
    if version < INDEX_PREFIX_SINCE:
        return "", "no prefix (GitLab < 15.7 uses the digest alone)"
    entries = config_entries(files)
    if files_commits or version < STEM_PREFIX_SINCE or not entries:
        why = "files_commits:" if files_commits else ("GitLab 15.7-15.11" if version < STEM_PREFIX_SINCE else "")
        return str(index), f"no prefix: the entry's index {index}" + (f" ({why})" if why else "")
    stems = "_".join(entry_stem(e) for e in entries)
    return f"{index}_{stems}", (
        f"no prefix: '{index}_' + the file stems joined with '_' (GitLab >= 16.0: each entry up to its first '.')"
    )


def key_prefix(
    prefix: str | None,
    files: Sequence[str],
    index: int,
    *,
    files_commits: bool = False,
    version: GitLabVersion | None = None,
) -> tuple[str, str]:
    """``(the prefix GitLab puts before the digest, in words)``. ``prefix:`` always wins; ``""`` and a
    whitespace-only prefix give the digest alone. Without a version, GitLab's current rule (>= 18.4)."""
    if prefix is not None:
        if not _present(prefix):
            return "", "prefix '' (the digest alone)" if prefix == "" else "a whitespace-only prefix is dropped"
        return prefix, f"prefix {prefix!r}"
    return default_prefix(files, index, files_commits=files_commits, version=version or CONTENT_KEYS_SINCE)


def join_key(prefix_used: str, digest: str) -> str:
    """``<prefix>-<digest>``, or the digest alone when the prefix is blank."""
    return f"{prefix_used}-{digest}" if _present(prefix_used) else digest


def digest_of(ids: Sequence[str]) -> str:
    """SHA-1 hex of the sorted, de-duplicated ids joined with ``-``; ``default`` when there are none."""
    unique = sorted({i for i in ids if i})
    if not unique:
        return "default"
    return hashlib.sha1("-".join(unique).encode(), usedforsecurity=False).hexdigest()


# -- the tree --------------------------------------------------------------------------------------------------


class TreeProvider(Protocol):
    """What :func:`gitlab_key` needs to know about one commit of a repository.

    - ``blob_id(path)``: the git blob id of the file at that commit (``git rev-parse SHA:path``), None if absent
      or not a file.
    - ``last_commit_id(pathspec)``: the last commit touching that git pathspec at the commit (``git log -1
      --format=%H SHA -- pathspec``: a directory gives its last commit, ``*`` crosses ``/``), None if none.
    - ``list_files()``: every file path at that commit (for pattern expansion), or None when unknown.
    """

    def blob_id(self, path: str) -> str | None: ...

    def last_commit_id(self, path: str) -> str | None: ...

    def list_files(self) -> Sequence[str] | None: ...


@dataclass(frozen=True)
class MappingProvider:
    """A :class:`TreeProvider` over ids already known, e.g. the store's per-file ``blob_id``/``last_commit_id``
    for one pipeline SHA (fetched with a HEAD on GitLab's repository-files API).

    ``files`` is the full file list at that commit if known; otherwise patterns match the keys of ``blob_ids``.
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


# -- the two algorithms ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlgorithmKey:
    """The digest of one ``cache:`` entry under one algorithm (the prefix depends on the version: see
    :class:`KeyVariant`).

    ``ids`` maps each looked-up path (content: each matched file; commits: each entry) to the id used;
    ``missing`` lists entries that gave no id; ``notes`` say why, in words.
    """

    algorithm: Algorithm
    digest: str
    ids: tuple[tuple[str, str], ...]
    missing: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def is_default(self) -> bool:
        return self.digest == "default"


def _content_digest(entries: Sequence[str], provider: TreeProvider) -> AlgorithmKey:
    listing: list[str] | None = None
    paths: list[str] = []
    per_entry: dict[str, list[str]] = {}
    notes: list[str] = []
    for entry in entries:
        if is_pattern(entry):
            if listing is None:
                listing = list(provider.list_files() or [])
            rx = pattern_regex(entry)
            matched = [p for p in listing if rx.fullmatch(p)]
        else:
            matched = [entry]
        per_entry[entry] = matched
        paths.extend(p for p in matched if p not in paths)
    ids: dict[str, str] = {}
    for path in paths:
        problem = verbatim_problem(path) or ("a trailing '/' names a directory" if path.endswith("/") else None)
        oid = None if problem else provider.blob_id(path)
        if oid is not None:
            ids[path] = oid
    missing: list[str] = []
    for entry in entries:
        if any(p in ids for p in per_entry[entry]):
            continue
        missing.append(entry)
        problem = verbatim_problem(entry)
        if problem:
            notes.append(f"{entry!r}: {problem} (only leading '/' are stripped)")
        elif is_pattern(entry):
            notes.append(f"{entry!r} matches no file ('*' stays inside one directory, '**/x' needs a '/')")
    return AlgorithmKey("content", digest_of(list(ids.values())), tuple(ids.items()), tuple(missing), tuple(notes))


def _commits_digest(entries: Sequence[str], provider: TreeProvider) -> AlgorithmKey:
    ids: list[tuple[str, str]] = []
    missing: list[str] = []
    notes: list[str] = []
    for entry in entries:
        # GitLab hands the entry to git as a pathspec (Gitaly LastCommitForPath): git normalises './', '//' and
        # '..', so the verbatim rules of the content mode do not apply here.
        oid = provider.last_commit_id(entry)
        problem = verbatim_problem(entry)
        if oid is None:
            missing.append(entry)
            continue
        if problem:
            notes.append(f"{entry!r} counts here (git reads it as a pathspec); from GitLab 18.4 on, {problem}")
        ids.append((entry, oid))
        if not is_pattern(entry) and provider.blob_id(entry) is None:
            notes.append(f"{entry!r} is not a file at this commit but still counts by its last commit")
    return AlgorithmKey("commits", digest_of([oid for _, oid in ids]), tuple(ids), tuple(missing), tuple(notes))


@dataclass(frozen=True)
class KeyVariant:
    """The key one range of GitLab versions computes for a ``cache:`` entry, with the reason in words."""

    key: str
    digest: str
    algorithm: Algorithm
    prefix_used: str
    prefix_words: str
    versions: tuple[str, ...]  # era labels ("GitLab >= 18.4"), or "GitLab 18.6.0" when the version is known
    reason: str

    @property
    def is_default(self) -> bool:
        return self.digest == "default"

    @property
    def when(self) -> str:
        """The versions in words, adjacent ranges merged (``GitLab >= 16.0``)."""
        return merge_era_labels(self.versions)


def _short(rev: str) -> str:
    return rev[:12] if re.fullmatch(r"[0-9a-f]{40,64}", rev) else rev


@dataclass(frozen=True)
class GitLabKey:
    """Both digests of one ``cache:`` entry, and the key each GitLab version makes of them.

    ``version`` is the instance's version when known (then :attr:`chosen` is its key); otherwise
    :meth:`variants` gives each era's key, merged where they agree.
    """

    files: tuple[str, ...]  # as configured, leading '/' stripped (blank entries kept: they count for the prefix)
    files_commits: bool
    prefix: str | None
    index: int
    content: AlgorithmKey
    commits: AlgorithmKey
    version: GitLabVersion | None = None
    rev: str = ""

    def algorithm(self, version: GitLabVersion) -> AlgorithmKey:
        return self.content if algorithm_for(version, files_commits=self.files_commits) == "content" else self.commits

    def for_version(self, version: GitLabVersion, label: str | None = None) -> KeyVariant:
        """The key a GitLab of that version computes."""
        algo = self.algorithm(version)
        used, words = key_prefix(self.prefix, self.files, self.index, files_commits=self.files_commits, version=version)
        key = join_key(used, algo.digest)
        where = f" at {_short(self.rev)}" if self.rev else ""
        entries = lookup_entries(self.files)
        if not entries:
            reason = f"no file is listed: key falls back to {key!r}"
        elif algo.is_default:
            listed = ", ".join(entries)
            if algo.algorithm == "content":
                reason = (
                    f"no listed file exists{where} ({listed}): key falls back to {key!r}; GitLab reads the files "
                    "as committed when it creates the pipeline, so a file written by a job is never seen"
                )
            else:
                reason = f"no listed entry has any commit{where} ({listed}): key falls back to {key!r}"
        elif algo.algorithm == "content":
            n = len(algo.ids)
            reason = f"SHA-1 of the sorted blob ids of {n} file{'s' if n != 1 else ''}{where}, {words}"
        else:
            n = len(algo.ids)
            reason = (
                f"SHA-1 of the sorted last-commit ids of {n} entr{'ies' if n != 1 else 'y'}{where} (one per entry, "
                f"a git pathspec: patterns are not expanded), {words}"
            )
        extra = list(algo.notes)
        if algo.missing and not algo.is_default:
            extra.append(f"not found (ignored by GitLab): {', '.join(algo.missing)}")
        if self.files_commits and version < CONTENT_KEYS_SINCE:
            extra.append("files_commits: needs GitLab >= 18.4 (older GitLab rejects the pipeline)")
        if self.prefix and "$" in self.prefix:
            extra.append(f"the prefix {self.prefix!r} holds CI/CD variables the runner expands per job")
        if extra:
            reason += "; " + "; ".join(extra)
        return KeyVariant(
            key=key,
            digest=algo.digest,
            algorithm=algo.algorithm,
            prefix_used=used,
            prefix_words=words,
            versions=(label or f"GitLab {version}",),
            reason=reason,
        )

    @property
    def chosen(self) -> KeyVariant | None:
        """The key of the instance's version, when it is known."""
        return self.for_version(self.version) if self.version is not None else None

    def variants(self) -> tuple[KeyVariant, ...]:
        """The chosen key when the version is known; else one variant per distinct key, newest versions first,
        each naming the versions that give it (``files_commits:`` only exists on GitLab >= 18.4)."""
        if self.version is not None:
            return (self.for_version(self.version),)
        eras = ERAS[:1] if self.files_commits else ERAS
        out: list[KeyVariant] = []
        for era in eras:
            variant = self.for_version(era.sample, era.label)
            same = next((i for i, v in enumerate(out) if v.key == variant.key), None)
            if same is None:
                out.append(variant)
            else:
                prev = out[same]
                out[same] = dataclasses.replace(prev, versions=(*prev.versions, *variant.versions))
        return tuple(out)

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key GitLab may compute (one when the version is known)."""
        return tuple(v.key for v in self.variants())

    @property
    def is_default(self) -> bool:
        """Whether the key (any possible one, when the version is unknown) falls back to ``default``."""
        return any(v.is_default for v in self.variants())


def gitlab_key(
    files: Sequence[str],
    provider: TreeProvider,
    *,
    prefix: str | None,
    index: int = 0,
    files_commits: bool = False,
    rev: str = "",
    version: GitLabVersion | None = None,
) -> GitLabKey:
    """The key GitLab computes at pipeline creation for ``cache: key: files: FILES`` (or ``files_commits``).

    ``provider`` answers for the pipeline's commit (``rev`` is only used in the explanations). Both digests are
    computed; ``version`` (the instance's) picks the key, else :meth:`GitLabKey.variants` lists each era's.
    Pure apart from what the provider does.
    """
    configured = config_entries([f for f in files if f is not None])
    entries = lookup_entries(configured)
    content = _content_digest(entries, provider)
    commits = _commits_digest(entries, provider)
    return GitLabKey(
        files=tuple(configured),
        files_commits=files_commits,
        prefix=prefix,
        index=index,
        content=content,
        commits=commits,
        version=version,
        rev=rev,
    )


# -- suffixes and what the runner prints ---------------------------------------------------------------------------

SUFFIX_EXPLANATION = (
    "GitLab appends suffixes to this key: '-<n>' once someone pressed 'Clear runner caches' (n = the project's "
    "cache index), then, while the project keeps 'Use separate caches for protected branches' on (the default "
    "since GitLab 15.0), '-protected' on protected refs (and, since 18.4.5/18.5.3/18.6.1, for jobs run by a "
    "Maintainer or above) or '-non_protected' otherwise; 'cache:unprotect: true' always gives '-non_protected'. "
    "cache:fallback_keys get the same suffixes, CACHE_FALLBACK_KEY none; the runner prints e.g. '<key>-2-protected'"
)


def possible_suffixes(
    version: GitLabVersion | None, *, unprotect: bool = False, protected_ref: bool | None = None
) -> list[tuple[str, str]]:
    """``[(suffix, why)]`` GitLab may append after the ``-<n>`` of "Clear runner caches" (itself optional)."""
    if unprotect:
        return [
            ("-non_protected", "cache:unprotect: true"),
            ("", "the project turned 'Use separate caches for protected branches' off"),
        ]
    out: list[tuple[str, str]] = []
    maint = maintainer_gets_protected(version)
    if protected_ref is not False:
        out.append(("-protected", "a protected ref" if protected_ref else "if the ref is protected"))
    if protected_ref is not True:
        if maint is not False:
            when = "" if maint else " (GitLab 18.4.5/18.5.3/18.6.1 and later)"
            out.append(("-protected", f"the job's user is Maintainer or above{when}"))
        out.append(("-non_protected", "an unprotected ref"))
    out.append(("", "the project turned 'Use separate caches for protected branches' off"))
    return out


_SUFFIX = re.compile(r"(?:-(\d+))?(?:-(protected|non_protected))?")


def sanitize_like_runner(key: str) -> str:
    """The key as runner 18.2.1+ rewrites it: ``%2F`` and ``\\`` -> ``/``, ``path.Clean``, trailing spaces of
    the last segment removed."""
    text = re.sub("%2[Ff]", "/", key).replace("\\", "/")
    rooted = text.startswith("/")
    parts: list[str] = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append(part)
            continue
        parts.append(part)
    cleaned = ("/" if rooted else "") + "/".join(parts)
    if not cleaned:
        cleaned = "/" if rooted else "."
    head, sep, last = cleaned.rpartition("/")
    return head + sep + last.rstrip(" ")


@dataclass(frozen=True)
class SeenKeyMatch:
    """How a key printed by the runner relates to a key GitLab computes: the suffixes, and why they are there."""

    seen: str
    base: str
    clear_index: int | None
    protection: str | None  # "protected" | "non_protected" | None (separated caches off)
    sanitized: bool  # the runner rewrote the key (18.2.1+)
    reason: str


def runner_rewrite_note(key: str) -> str | None:
    """Why the key a runner prints can differ from ``key`` (None when no runner rewrites it)."""
    sanitized = sanitize_like_runner(key)
    notes = []
    if sanitized != key:
        notes.append(f'runner 18.2.1+ prints \'cache key "{key}" sanitized to "{sanitized}"\' and uses the latter')
    if "/" in key or "/" in sanitized:
        notes.append("runner 18.2.0 refuses a key containing '/' (a warning, no restore attempt at all)")
    return "; ".join(notes) or None


def match_seen_key(
    seen: str,
    keys: Sequence[str],
    *,
    version: GitLabVersion | None = None,
    unprotect: bool = False,
    protected_ref: bool | None = None,
) -> SeenKeyMatch | None:
    """Whether ``seen`` (a runner's ``Checking cache for <seen>...``) is one of ``keys`` with the suffixes GitLab
    may append, allowing for what cidash cannot know (cache index, the project's separated-caches setting, the
    user's role, the ref's protection when None); None when no suffix GitLab could append explains it."""
    allowed = possible_suffixes(version, unprotect=unprotect, protected_ref=protected_ref)
    for base in keys:
        for form, sanitized in ((base, False), (sanitize_like_runner(base), True)):
            if sanitized and form == base:
                continue
            if not seen.startswith(form):
                continue
            m = _SUFFIX.fullmatch(seen[len(form) :])
            if m is None:
                continue
            index = int(m[1]) if m[1] else None
            protection = m[2]
            whys = [why for suffix, why in allowed if suffix == (f"-{protection}" if protection else "")]
            if not whys:
                continue
            parts = []
            if sanitized:
                parts.append(f"the runner sanitised '{base}' to '{form}' (runner 18.2.1+)")
            if index is not None:
                parts.append(f"-{index}: 'Clear runner caches' was used (cache index {index})")
            suffix = f"-{protection}" if protection else "no protection suffix"
            parts.append(f"{suffix}: {' or '.join(whys)}")
            return SeenKeyMatch(seen, base, index, protection, sanitized, "; ".join(parts))
    return None
