"""The resolved model of a CI file: jobs with their effective keys, cache entries, what could not be resolved."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


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
