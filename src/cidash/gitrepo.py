"""A thin wrapper around the ``git`` binary: the facts ``cidash key --gitlab`` and ``cidash lint`` need.

Everything goes through ``git`` itself (a subprocess), never a re-implementation of git's object model, so the
ids are exactly what ``git rev-parse REV:path`` and ``git log -1 --format=%H REV -- path`` print. Failures
become :class:`cidash.errors.GitError` with a one-line reason: git missing, not a checkout, unknown REV.

Public API:

- :func:`find_root(start) -> Path` — the top of the working tree containing ``start``.
- :class:`GitRepo(root)` with :meth:`GitRepo.resolve`, :meth:`GitRepo.tree_files`, :meth:`GitRepo.blob_ids`,
  :meth:`GitRepo.last_commit_id`, :meth:`GitRepo.is_tracked`, :meth:`GitRepo.provider`.
- :class:`GitTreeProvider` — a :class:`cidash.cachekey.TreeProvider` over one revision of a local checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

from cidash.errors import GitError

#: Keep git from reading the user's pager, prompting for credentials, or using a locale that changes messages.
_GIT_ENV = {"GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
_TIMEOUT = 60.0


def _git_binary() -> str:
    git = shutil.which("git")
    if git is None:
        raise GitError("git is not installed (or not on PATH)", hint="install git to compute GitLab cache keys")
    return git


def _run(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, **_GIT_ENV}
    try:
        return subprocess.run(
            [_git_binary(), *args], cwd=cwd, capture_output=True, env=env, timeout=_TIMEOUT, check=False
        )
    except FileNotFoundError as exc:
        raise GitError(f"cannot run git in {cwd}: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {_TIMEOUT:.0f} s in {cwd}") from None


def _stderr_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    text = proc.stderr.decode("utf-8", "replace").strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else f"exit status {proc.returncode}"


def find_root(start: Path | None = None) -> Path:
    """The top directory of the git working tree containing ``start`` (default: the current directory)."""
    start = (start or Path.cwd()).resolve()
    if not start.exists():
        raise GitError(f"{start} does not exist")
    cwd = start if start.is_dir() else start.parent
    proc = _run(["rev-parse", "--show-toplevel"], cwd)
    if proc.returncode != 0:
        raise GitError(f"{cwd} is not inside a git checkout", hint="run it inside your repository")
    return Path(os.fsdecode(proc.stdout.rstrip(b"\n")))


class GitRepo:
    """One local git checkout. Paths given to and returned by its methods are relative to the top of the tree."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def discover(cls, start: Path | None = None) -> GitRepo:
        return cls(find_root(start))

    def git(self, *args: str) -> bytes:
        """Run ``git ARGS`` in the checkout; return stdout, raise :class:`GitError` on a non-zero exit."""
        proc = _run(args, self.root)
        if proc.returncode != 0:
            raise GitError(f"git {args[0]} failed in {self.root}: {_stderr_line(proc)}")
        return proc.stdout

    def resolve(self, rev: str) -> str:
        """The full commit id of ``rev``; :class:`GitError` when it names no commit."""
        if rev.startswith("-"):
            raise GitError(f"unknown revision {rev!r}")
        proc = _run(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"], self.root)
        if proc.returncode != 0:
            if not (self.root / ".git").exists():
                # Distinguish "not a checkout" from "unknown rev" for a clearer message.
                find_root(self.root)
            raise GitError(f"unknown revision {rev!r} in {self.root}", hint="a branch, tag or commit id")
        return proc.stdout.decode().strip()

    def tree_entries(self, rev: str) -> dict[str, tuple[str, str]]:
        """Every entry of the tree at ``rev``, recursively: ``{path: (type, object id)}`` (type ``blob``/``commit``)."""
        sha = self.resolve(rev)
        out = self.git("ls-tree", "-r", "-z", "--full-tree", sha)
        entries: dict[str, tuple[str, str]] = {}
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, _, raw_path = record.partition(b"\t")
            _mode, kind, oid = meta.decode().split(" ")
            entries[os.fsdecode(raw_path)] = (kind, oid)
        return entries

    def tree_files(self, rev: str) -> list[str]:
        """The paths of all files (blobs, including symlinks) at ``rev``, sorted."""
        return sorted(p for p, (kind, _) in self.tree_entries(rev).items() if kind == "blob")

    def blob_ids(self, rev: str, paths: Sequence[str]) -> dict[str, str | None]:
        """``{path: blob id at rev}`` — what ``git rev-parse REV:path`` prints; None when no file is there."""
        entries = self.tree_entries(rev)
        result: dict[str, str | None] = {}
        for path in paths:
            entry = entries.get(_normalise(path))
            result[path] = entry[1] if entry and entry[0] == "blob" else None
        return result

    def last_commit_id(self, rev: str, path: str) -> str | None:
        """The last commit at or before ``rev`` that touched ``path`` (``git log -1 --format=%H REV -- path``).

        Like git (and GitLab's older algorithm), a deleted path still has a last commit: the one that deleted it.
        None when the path never existed in the history of ``rev``.
        """
        sha = self.resolve(rev)
        # GitLab passes a cache:key:files entry to git as a plain pathspec: '*', '?' and '[...]' are wildcards
        # there and '*' crosses '/'. Anything else is looked up literally.
        spec = path if any(c in path for c in "*?[") else f":(literal){_normalise(path)}"
        out = self.git("log", "-1", "--format=%H", sha, "--", spec)
        text = out.decode().strip()
        return text or None

    def read_file(self, rev: str, path: str) -> str | None:
        """The text of ``path`` as committed at ``rev`` (``git show REV:path``); None when it is not there."""
        sha = self.resolve(rev)
        if self.blob_ids(sha, [path])[path] is None:
            return None
        return self.git("show", f"{sha}:{_normalise(path)}").decode("utf-8", "replace")

    def is_tracked(self, path: str, rev: str = "HEAD") -> bool:
        """Whether a file exists at ``path`` in the tree at ``rev`` (committed, not just present on disk)."""
        return self.blob_ids(rev, [path])[path] is not None

    def provider(self, rev: str = "HEAD") -> GitTreeProvider:
        """A :class:`cidash.cachekey.TreeProvider` for ``rev``; resolves the revision now."""
        return GitTreeProvider(self, self.resolve(rev))


def _normalise(path: str) -> str:
    while path.startswith("./"):
        path = path[2:]
    return path.strip("/") if path not in ("", "/") else path


class GitTreeProvider:
    """Blob ids, last-commit ids and the file list of one commit of a local checkout (for :mod:`cidash.cachekey`)."""

    def __init__(self, repo: GitRepo, sha: str) -> None:
        self.repo = repo
        self.sha = sha

    @cached_property
    def _entries(self) -> dict[str, tuple[str, str]]:
        return self.repo.tree_entries(self.sha)

    def blob_id(self, path: str) -> str | None:
        entry = self._entries.get(_normalise(path))
        return entry[1] if entry and entry[0] == "blob" else None

    def last_commit_id(self, path: str) -> str | None:
        return self.repo.last_commit_id(self.sha, path)

    def list_files(self) -> Sequence[str] | None:
        return sorted(p for p, (kind, _) in self._entries.items() if kind == "blob")
