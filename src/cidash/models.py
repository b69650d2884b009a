"""cidash's own frozen dataclasses: what the core passes around.

Domain code never sees python-gitlab objects or raw JSON; the remote adapters convert into these, the store
persists them, metrics read them. Times are timezone-aware UTC ``datetime`` objects; durations are float
seconds; sizes are bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from types import MappingProxyType
from typing import Any, Literal

#: cidash's MB is decimal, 10^6 bytes, as registries and `docker images` print image sizes.
MB = 1_000_000

#: The largest duration (seconds) cidash believes from GitLab: a year. Longer is a broken number, not a slow job
#: (GitLab's longest job timeout is a month). :mod:`cidash.remote.wire` rejects more; metrics never count more.
MAX_DURATION_SECONDS = 366 * 24 * 3600.0
#: The largest image ``total_size`` (bytes) cidash believes: 10 TB. Sizes must also be > 0 to be counted.
MAX_IMAGE_BYTES = 10**13


class ExitCode(IntEnum):
    """Every command's exit code (docs/commands.md)."""

    OK = 0
    PROBLEMS = 1  # the check found problems (a criterion fails, a verdict is FAIL, you answered no)
    USAGE = 2  # usage, config, store or connection error: one line on stderr
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)


# ---------------------------------------------------------------------------------------------------------------
# GitLab's CI statuses: one vocabulary (pipelines and jobs share the names), each set named for what it answers
# ---------------------------------------------------------------------------------------------------------------

#: Statuses that still change by themselves (a manual job changes only when played, which updates its pipeline).
ACTIVE_STATUSES: tuple[str, ...] = (
    "created",
    "waiting_for_resource",
    "preparing",
    "pending",
    "running",
    "scheduled",
)
#: A job in one of these ran and ended: its log is final (what sync fetches).
FINISHED_STATUSES: frozenset[str] = frozenset({"success", "failed", "canceled"})
#: A finished job or pipeline with a verdict: what success rates and durations count (a cancel is no verdict).
DECIDED_STATUSES: frozenset[str] = frozenset({"success", "failed"})
#: A job in one of these has started (or never will): where following a triggered job stops.
STARTED_STATUSES: frozenset[str] = frozenset({"running", "success", "failed", "canceled", "skipped"})
#: Statuses GitLab lets you retry.
RETRYABLE_STATUSES: frozenset[str] = frozenset({"failed", "canceled", "success"})
#: Job statuses that never ran a script (a manual job waiting for a click, a skipped one, ...).
NOT_RUN_STATUSES: frozenset[str] = frozenset(
    {"manual", "scheduled", "created", "skipped", "waiting_for_resource", "preparing"}
)


# ---------------------------------------------------------------------------------------------------------------
# Mutating requests, as plans show them and the remote sends them
# ---------------------------------------------------------------------------------------------------------------

#: The REST API's prefix from the instance root.
API_PREFIX = "/api/v4"
#: Body fields of mutating calls that carry variables (``POST .../pipeline``, ``POST .../jobs/:id/play``).
VARIABLE_FIELDS = ("variables", "job_variables_attributes")
#: What a redacted variable value reads as.
REDACTED = "***"


@dataclass(frozen=True)
class HttpCall:
    """One mutating request exactly as it will be sent: ``POST /api/v4/projects/42/jobs/7/play`` + JSON body."""

    method: str
    path: str  # from the instance root, with the /api/v4 prefix
    body: Mapping[str, Any] | None = None

    def __str__(self) -> str:
        text = f"{self.method} {self.path}"
        if self.body:
            text += " " + json.dumps(self.body, separators=(", ", ": "))
        return text

    @property
    def line(self) -> str:
        """``METHOD path`` without the body (what the audit keeps)."""
        return f"{self.method} {self.path}"

    def redacted(self) -> HttpCall:
        """This call with the value of every pipeline/job variable in its body shown as ``***`` (keys stay):
        what is printed unless the user asks to see the values (``--show-values``)."""
        if not self.body:
            return self
        body = dict(self.body)
        for name in VARIABLE_FIELDS:
            items = body.get(name)
            if isinstance(items, list):
                body[name] = [
                    {**item, "value": REDACTED} if isinstance(item, dict) and "value" in item else item
                    for item in items
                ]
        return HttpCall(self.method, self.path, body)


def shown_variables(variables: Sequence[tuple[str, str]], *, show_values: bool = False) -> str:
    """``K1=***, K2=***`` (``K1=v1, K2=v2`` with ``show_values``): variables as plans print them."""
    return ", ".join(f"{k}={v if show_values else REDACTED}" for k, v in variables)


# ---------------------------------------------------------------------------------------------------------------
# Facts parsed from one job log (``cidash trace``; see DESIGN.md for the JSON shape)
# ---------------------------------------------------------------------------------------------------------------

CacheOp = Literal["restore", "archive"]
CacheOutcome = Literal["hit", "miss", "failed", "skipped", "created", "up_to_date", "empty", "unknown"]


@dataclass(frozen=True, slots=True)
class Section:
    """One ``section_start``/``section_end`` pair. Unix seconds; ``end``/``duration`` None if never closed."""

    name: str
    start: float
    end: float | None
    duration: float | None


@dataclass(frozen=True, slots=True)
class ImageRef:
    """The job's image as the executor reported it. ``pulled`` None when the log does not say."""

    name: str
    id: str | None
    digest: str | None
    pulled: bool | None


@dataclass(frozen=True, slots=True)
class CacheEvent:
    """One cache restore attempt (main or fallback key) or archive attempt, and what came of it.

    ``detail`` carries extra words from the log (e.g. ``"no files to cache"``, ``"too big"``, ``"fallback"``,
    ``"empty key"``) for humans; it is not part of the stable JSON contract.
    """

    op: CacheOp
    key: str
    outcome: CacheOutcome
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class TraceFacts:
    runner_version: str | None
    executor: str | None
    truncated: bool
    sections: tuple[Section, ...]
    startup_seconds: float | None
    image: ImageRef | None
    cache: tuple[CacheEvent, ...]


# ---------------------------------------------------------------------------------------------------------------
# GitLab entities, as cidash keeps them
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    path: str  # path_with_namespace, e.g. "platform/app"
    web_url: str
    default_branch: str | None = None


@dataclass(frozen=True, slots=True)
class Pipeline:
    project_id: int
    id: int
    iid: int | None
    ref: str
    sha: str
    status: str
    source: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    queued_duration: float | None = None
    web_url: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    project_id: int
    id: int
    pipeline_id: int
    name: str
    stage: str
    status: str
    ref: str
    sha: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    queued_duration: float | None = None
    failure_reason: str | None = None
    allow_failure: bool = False
    retried: bool = False  # a later attempt of the same job exists in the pipeline
    runner: str | None = None  # runner description
    web_url: str | None = None


@dataclass(frozen=True, slots=True)
class ImageTag:
    """A container-registry tag of the CI image."""

    project_id: int
    repository: str  # registry path, e.g. "platform/app/ci"
    name: str  # tag
    digest: str | None
    total_size: int | None  # bytes, sum of compressed layers; None/0 for some multi-arch indexes
    created_at: datetime | None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class FileChecksum:
    """A critical file at one commit, from the repository-files HEAD headers."""

    project_id: int
    sha: str  # the commit
    path: str
    blob_id: str | None  # None: the file does not exist at that commit
    last_commit_id: str | None
    content_sha256: str | None


@dataclass(frozen=True, slots=True)
class ResourceGroup:
    project_id: int
    key: str
    process_mode: str


@dataclass(frozen=True, slots=True)
class RateLimitState:
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # unix time


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One mutating action, as written to the store (never a token)."""

    at: datetime
    actor: str  # GitLab username if known, else the local user
    project: str
    action: str  # "rebuild", "retry", "play", "create_pipeline", "write_cache_key"
    target: str  # e.g. "ref main", "job 1234"
    request: str  # "POST /api/v4/projects/42/jobs/1234/retry"
    result: str  # "ok: job 1240 pending" / "error: 403 ..."
    dry_run: bool = False
    extra: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------
# What the store adds on top (see cidash.store for the schema)
# ---------------------------------------------------------------------------------------------------------------

#: The per-phase columns of ``job_facts`` (the same phases as :data:`cidash.logparse.PHASES`).
PHASES: tuple[str, ...] = ("prepare", "sources", "cache", "artifacts", "script", "upload")

#: The phases of a job's start-up (before its script), in :data:`PHASES` order.
STARTUP_PHASE_NAMES: tuple[str, ...] = PHASES[:4]

#: The GitLab runner sections of each start-up phase (section name -> phase): what
#: :data:`cidash.logparse.SECTION_PHASES` maps to a phase of :data:`STARTUP_PHASE_NAMES` (the parser's map is
#: built from it; a test holds that no other section maps to a start-up phase).
#: The store sums a parsed log's start-up sections per phase with it (``job_facts.startup_*``, schema version 9).
STARTUP_SECTION_PHASES: Mapping[str, str] = MappingProxyType(
    {
        "resolve_secrets": "prepare",
        "prepare_executor": "prepare",
        "prepare_script": "prepare",
        "get_sources": "sources",
        "clear_worktree": "sources",
        "restore_cache": "cache",
        "download_artifacts": "artifacts",
    }
)


@dataclass(frozen=True, slots=True)
class StoredJobFacts:
    """A job's parsed log facts as stored, with per-phase seconds already summed (None: phase not in the log)."""

    job_id: int
    project_id: int
    facts: TraceFacts
    prepare_seconds: float | None = None  # resolve_secrets + prepare_executor + prepare_script
    sources_seconds: float | None = None  # get_sources + clear_worktree
    cache_seconds: float | None = None  # restore_cache
    artifacts_seconds: float | None = None  # download_artifacts
    script_seconds: float | None = None  # step_script / build_script / step_*
    upload_seconds: float | None = None  # after_script, archive_cache*, upload_artifacts_*, cleanup_file_variables
    log_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class StoredCacheEvent:
    """One row of the ``cache_events`` table: a cache event with the job it came from."""

    project_id: int
    job_id: int
    seq: int  # order within the job's log, from 0
    op: CacheOp
    key: str
    outcome: CacheOutcome
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class StoredImageTag:
    """A registry tag at one digest, with when sync first and last saw it (the tag's history)."""

    tag: ImageTag
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class CiConfig:
    """The CI file text at one commit (sync keeps it for the latest pipeline SHA of each ref)."""

    project_id: int
    sha: str
    path: str
    ref: str | None
    content: str | None  # None: the file does not exist at that commit


@dataclass(frozen=True, slots=True)
class SyncRun:
    """One ``cidash sync`` of one project, as recorded in the ``sync_runs`` table."""

    project_id: int
    started_at: datetime
    finished_at: datetime | None
    status: str  # "running", "ok", "error", "interrupted" (the process died; found by the next sync)
    requests: int = 0
    bytes: int = 0
    pipelines: int = 0
    jobs: int = 0
    logs: int = 0
    error: str | None = None
    warnings: int = 0
    deferred: int = 0  # items left for the next sync (logs that failed, rejected records)
