"""cidash's own frozen dataclasses: what the core passes around.

Domain code never sees python-gitlab objects or raw JSON; the remote adapters convert into these, the store
persists them, metrics read them. Times are timezone-aware UTC ``datetime`` objects; durations are float
seconds; sizes are bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

#: cidash's MB is decimal, 10^6 bytes, as registries and `docker images` print image sizes.
MB = 1_000_000

#: The largest duration (seconds) cidash believes from GitLab: a year. Longer is a broken number, not a slow job
#: (GitLab's longest job timeout is a month). :mod:`cidash.remote.wire` rejects more; metrics never count more.
MAX_DURATION_SECONDS = 366 * 24 * 3600.0
#: The largest image ``total_size`` (bytes) cidash believes: 10 TB. Sizes must also be > 0 to be counted.
MAX_IMAGE_BYTES = 10**13

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
