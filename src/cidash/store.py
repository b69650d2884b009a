"""The local SQLite store: every synced project's CI history, kept longer than GitLab keeps it.

One file (default ``<platformdirs data dir>/cidash.db``, ``--db`` overrides) opened in WAL mode with a busy
timeout, so a ``cidash sync`` can write while the dashboard, ``cidash check`` or a second sync read or wait.
The schema is versioned (``PRAGMA user_version`` plus the ``schema_migrations`` table) and migrated forward on
open; a file written by a newer cidash, a corrupt file or a lock held too long raises :class:`StoreError` with
a one-line reason, never a traceback.

PostgreSQL: :meth:`Store.open` also takes a ``postgresql://`` URL (``[store] url``, ``--db URL``). The schema, the
migrations and the queries below are the same; the few dialect differences (types, placeholders, the schema
version, locking) are listed in :mod:`cidash.store_pg`, and ``Store.backend`` says which one is open.

Reading: use the :class:`Store` methods (they return :mod:`cidash.models` dataclasses). Read-only SQL on the
tables below is also a supported contract (``Store.connection`` or ``sqlite3`` with ``mode=ro``): columns are
only ever added, never renamed or removed, within a schema version's lifetime.

Conventions: times are TEXT in UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width, so string comparison is time
order); durations are REAL seconds; sizes INTEGER bytes; booleans INTEGER 0/1; ids are GitLab's ids.

Tables (schema version 2)
-------------------------

``schema_migrations(version PK, description, applied_at)``
    One row per applied migration.
``projects(id PK, path UNIQUE, web_url, default_branch, added_at)``
    Every project ever synced into this store (``path`` is ``path_with_namespace``).
``pipelines(id PK, project_id, iid, ref, sha, status, source, created_at, updated_at, started_at, finished_at,
duration, queued_duration, web_url, synced_at, jobs_synced_for)``
    All fields of :class:`cidash.models.Pipeline`. ``jobs_synced_for`` is sync's bookkeeping: the
    ``updated_at`` for which the pipeline's jobs were last fully listed (NULL or different: jobs still to sync).
    Indexes: ``(project_id, created_at)``,
    ``(project_id, ref, created_at)``, ``(project_id, sha)``.
``jobs(id PK, project_id, pipeline_id, name, stage, status, ref, sha, created_at, started_at, finished_at,
duration, queued_duration, failure_reason, allow_failure, retried, runner, web_url, log_state, synced_at)``
    All fields of :class:`cidash.models.Job`; ``retried`` = 1 when a later attempt of the same job name exists
    in the same pipeline. ``log_state`` is sync's bookkeeping: NULL (log not fetched yet), ``parsed`` (a
    ``job_facts`` row exists), ``skipped`` (name does not match ``[sync] job_patterns``), ``unavailable``
    (GitLab had no log: erased or expired). Indexes: ``(project_id, pipeline_id)``,
    ``(project_id, name, created_at)``, ``(project_id, created_at)``.
``job_facts(job_id PK, project_id, runner_version, executor, truncated, startup_seconds, image_name, image_id,
image_digest, image_pulled, prepare_seconds, sources_seconds, cache_seconds, artifacts_seconds, script_seconds,
upload_seconds, log_bytes, parsed_at)``
    One row per parsed log (:class:`cidash.models.TraceFacts` + :class:`cidash.models.StoredJobFacts`).
    ``image_pulled`` is NULL when the log does not say. Phase columns are
    :func:`cidash.logparse.phase_durations` (closed runner sections summed per phase): prepare =
    resolve_secrets + prepare_executor + prepare_script; sources = get_sources + clear_worktree; cache =
    restore_cache; artifacts = download_artifacts; script = step_script / build_script / ``step_*``; upload =
    after_script + archive_cache* + upload_artifacts_* + cleanup_file_variables. NULL = no such closed section.
``job_sections(job_id, seq, name, start, end, duration; PK (job_id, seq))``
    The log's sections in order; ``end``/``duration`` NULL when never closed (unix seconds, REAL).
``cache_events(job_id, seq, project_id, op, key, outcome, detail; PK (job_id, seq))``
    Cache restore/archive attempts in log order (``op`` restore|archive; ``outcome`` hit|miss|failed|skipped|
    created|up_to_date|empty|unknown). Index ``(project_id, key)``.
``image_tags(project_id, repository, tag, digest, total_size, created_at, location, first_seen, last_seen;
PK (repository, tag, digest))``
    Tag history: one row per (repository, tag, digest) ever seen; ``digest`` is '' when the registry gave none.
    The current digest of a tag is its row with the greatest ``last_seen``.
``file_checksums(project_id, sha, path, blob_id, last_commit_id, content_sha256; PK (project_id, sha, path))``
    Critical files at each pipeline SHA, from the repository-files HEAD headers. ``blob_id`` NULL: the file
    does not exist at that commit.
``ci_configs(project_id, sha, path, ref, content, fetched_at; PK (project_id, sha, path))``
    The CI file text at the latest pipeline SHA of each ref (``ref``: the ref it was fetched for; ``content``
    NULL when the file does not exist there).
``resource_groups(project_id, key, process_mode, seen_at; PK (project_id, key))``
    The project's resource groups as last synced.
``sync_state(project_id, kind, cursor, updated_at; PK (project_id, kind))``
    Sync cursors (e.g. ``pipelines_updated_after``, ``jobs_max_id``, ``last_sync``). A cursor is written in the
    same transaction as the rows it covers.
``sync_runs(id PK, project_id, started_at, finished_at, status, requests, bytes, pipelines, jobs, logs, error,
warnings, deferred)``
    One row per sync of one project (``status`` running|ok|error|interrupted; a ``running`` row whose process died
    is marked ``interrupted`` by the next sync of the project). ``warnings``/``deferred``: how many warnings the
    sync gave and how many items it left for the next sync (schema version 2).
``sync_leases(project_id PK, owner, pid, host, acquired_at, expires_at)``
    Who is syncing a project now (schema version 2). A sync takes the lease before its first request, renews it
    while it runs and deletes it at the end; a lease past ``expires_at``, or held by a process on this host that no
    longer exists, is free.
``sync_deferred(project_id, kind, item_id, reason, first_seen, last_seen, attempts; PK (project_id, kind, item_id))``
    Records a sync could not use this time (``kind`` pipeline|job: rejected at the wire, or their fetch failed),
    fetched again by id on the next sync until they can be stored (schema version 2).
``audit(id PK, at, actor, project, action, target, request, result, dry_run, extra)``
    Every mutating action (``extra`` is a JSON object of strings). Never holds a token.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from cidash.errors import StoreError
from cidash.models import (
    PHASES,
    AuditRecord,
    CacheEvent,
    CacheOp,
    CacheOutcome,
    CiConfig,
    FileChecksum,
    ImageRef,
    ImageTag,
    Job,
    Pipeline,
    Project,
    ResourceGroup,
    Section,
    StoredCacheEvent,
    StoredImageTag,
    StoredJobFacts,
    SyncRun,
    TraceFacts,
)

SCHEMA_VERSION = 5
DEFAULT_BUSY_TIMEOUT = 30.0

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

_V1 = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL
);
CREATE TABLE projects (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, web_url TEXT NOT NULL, default_branch TEXT,
    added_at TEXT NOT NULL
);
CREATE TABLE pipelines (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, iid INTEGER, ref TEXT NOT NULL, sha TEXT NOT NULL,
    status TEXT NOT NULL, source TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, started_at TEXT,
    finished_at TEXT, duration REAL, queued_duration REAL, web_url TEXT, synced_at TEXT NOT NULL,
    jobs_synced_for TEXT
);
CREATE INDEX pipelines_project_created ON pipelines (project_id, created_at);
CREATE INDEX pipelines_project_ref ON pipelines (project_id, ref, created_at);
CREATE INDEX pipelines_project_sha ON pipelines (project_id, sha);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, pipeline_id INTEGER NOT NULL, name TEXT NOT NULL,
    stage TEXT NOT NULL, status TEXT NOT NULL, ref TEXT NOT NULL, sha TEXT NOT NULL, created_at TEXT NOT NULL,
    started_at TEXT, finished_at TEXT, duration REAL, queued_duration REAL, failure_reason TEXT,
    allow_failure INTEGER NOT NULL DEFAULT 0, retried INTEGER NOT NULL DEFAULT 0, runner TEXT, web_url TEXT,
    log_state TEXT, synced_at TEXT NOT NULL
);
CREATE INDEX jobs_project_pipeline ON jobs (project_id, pipeline_id);
CREATE INDEX jobs_project_name_created ON jobs (project_id, name, created_at);
CREATE INDEX jobs_project_created ON jobs (project_id, created_at);
CREATE TABLE job_facts (
    job_id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL, runner_version TEXT, executor TEXT,
    truncated INTEGER NOT NULL DEFAULT 0, startup_seconds REAL, image_name TEXT, image_id TEXT, image_digest TEXT,
    image_pulled INTEGER, prepare_seconds REAL, sources_seconds REAL, cache_seconds REAL, artifacts_seconds REAL,
    script_seconds REAL, upload_seconds REAL, log_bytes INTEGER, parsed_at TEXT NOT NULL
);
CREATE INDEX job_facts_project ON job_facts (project_id);
CREATE TABLE job_sections (
    job_id INTEGER NOT NULL, seq INTEGER NOT NULL, name TEXT NOT NULL, start REAL NOT NULL, "end" REAL,
    duration REAL, PRIMARY KEY (job_id, seq)
);
CREATE TABLE cache_events (
    job_id INTEGER NOT NULL, seq INTEGER NOT NULL, project_id INTEGER NOT NULL, op TEXT NOT NULL,
    key TEXT NOT NULL, outcome TEXT NOT NULL, detail TEXT, PRIMARY KEY (job_id, seq)
);
CREATE INDEX cache_events_project_key ON cache_events (project_id, key);
CREATE TABLE image_tags (
    project_id INTEGER NOT NULL, repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL DEFAULT '',
    total_size INTEGER, created_at TEXT, location TEXT, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
    PRIMARY KEY (repository, tag, digest)
);
CREATE INDEX image_tags_project ON image_tags (project_id, repository);
CREATE TABLE file_checksums (
    project_id INTEGER NOT NULL, sha TEXT NOT NULL, path TEXT NOT NULL, blob_id TEXT, last_commit_id TEXT,
    content_sha256 TEXT, PRIMARY KEY (project_id, sha, path)
);
CREATE TABLE ci_configs (
    project_id INTEGER NOT NULL, sha TEXT NOT NULL, path TEXT NOT NULL, ref TEXT, content TEXT,
    fetched_at TEXT NOT NULL, PRIMARY KEY (project_id, sha, path)
);
CREATE TABLE resource_groups (
    project_id INTEGER NOT NULL, key TEXT NOT NULL, process_mode TEXT NOT NULL, seen_at TEXT NOT NULL,
    PRIMARY KEY (project_id, key)
);
CREATE TABLE sync_state (
    project_id INTEGER NOT NULL, kind TEXT NOT NULL, cursor TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (project_id, kind)
);
CREATE TABLE sync_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, project_id INTEGER NOT NULL, started_at TEXT NOT NULL,
    finished_at TEXT, status TEXT NOT NULL, requests INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
    pipelines INTEGER NOT NULL DEFAULT 0, jobs INTEGER NOT NULL DEFAULT 0, logs INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE INDEX sync_runs_project ON sync_runs (project_id, started_at);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL, project TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, request TEXT NOT NULL, result TEXT NOT NULL,
    dry_run INTEGER NOT NULL DEFAULT 0, extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_at ON audit (at);
"""

# Indexes for the sync's once-per-refresh questions, so an idle refresh costs what changed, not the history.
_V2 = """
CREATE INDEX jobs_logs_due ON jobs (project_id, id) WHERE log_state IS NULL AND finished_at IS NOT NULL;
CREATE INDEX pipelines_jobs_due ON pipelines (project_id)
    WHERE jobs_synced_for IS NULL OR jobs_synced_for != updated_at;
CREATE INDEX pipelines_project_status ON pipelines (project_id, status);
"""

_V3 = """
CREATE TABLE sync_leases (
    project_id INTEGER PRIMARY KEY, owner TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL,
    acquired_at TEXT NOT NULL, expires_at TEXT NOT NULL
);
CREATE TABLE sync_deferred (
    project_id INTEGER NOT NULL, kind TEXT NOT NULL, item_id INTEGER NOT NULL, reason TEXT NOT NULL,
    first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (project_id, kind, item_id)
);
ALTER TABLE sync_runs ADD COLUMN warnings INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_runs ADD COLUMN deferred INTEGER NOT NULL DEFAULT 0
"""

#: The GitLab version each project's instance reported (``GET /version``; NULL: the token may not read it).
_V4 = """
CREATE TABLE instance_versions (
    project_id INTEGER PRIMARY KEY, version TEXT, revision TEXT, checked_at TEXT NOT NULL
);
"""

# Running totals for the exported counters (see cidash.export.update_running_totals): a counter only ever grows,
# across prune (pruning never touches these tables) and restarts. ``metric_counted`` remembers which pipelines and
# jobs were already added, so each is counted exactly once.
_V5 = """
CREATE TABLE metric_totals (
    project_id INTEGER NOT NULL, name TEXT NOT NULL, labels TEXT NOT NULL, value REAL NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (project_id, name, labels)
);
CREATE TABLE metric_counted (
    project_id INTEGER NOT NULL, kind TEXT NOT NULL, item_id INTEGER NOT NULL, PRIMARY KEY (kind, item_id)
)
"""

#: (version, description, SQL). Append new migrations; never edit an applied one.
MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial schema", _V1),
    (2, "indexes for the sync's due jobs, due pipelines and active pipelines", _V2),
    (3, "sync leases, deferred records, sync_runs warnings/deferred", _V3),
    (4, "instance version per project (GET /version)", _V4),
    (5, "running totals of the exported counters", _V5),
]


def upsert_sql(table: str, columns: str, key_columns: int) -> str:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` of every other column: SQLite's ``INSERT OR REPLACE`` in the
    form both SQLite and PostgreSQL run (the first ``key_columns`` of ``columns`` are the primary key)."""
    cols = [c.strip() for c in columns.split(",")]
    key, rest = cols[:key_columns], cols[key_columns:]
    sets = ", ".join(f"{c}=excluded.{c}" for c in rest)
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
        f"ON CONFLICT({', '.join(key)}) DO UPDATE SET {sets}"
    )


_FACTS_UPSERT = upsert_sql(
    "job_facts",
    "job_id, project_id, runner_version, executor, truncated, startup_seconds, image_name, image_id, image_digest, "
    "image_pulled, prepare_seconds, sources_seconds, cache_seconds, artifacts_seconds, script_seconds, "
    "upload_seconds, log_bytes, parsed_at",
    1,
)


@dataclass(frozen=True, slots=True)
class SyncLease:
    """A row of ``sync_leases``: which process is syncing a project, until when (unless renewed)."""

    project_id: int
    owner: str  # a random id per sync
    pid: int
    host: str
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class DeferredItem:
    """A row of ``sync_deferred``: a record the next sync fetches again by id."""

    project_id: int
    kind: str  # "pipeline" | "job"
    item_id: int
    reason: str
    first_seen: datetime
    last_seen: datetime
    attempts: int


def phase_seconds(facts: TraceFacts) -> dict[str, float | None]:
    """Per-phase seconds of a parsed log, as :func:`cidash.logparse.phase_durations` sums them (None: absent)."""
    from cidash.logparse import phase_durations

    durations = phase_durations(facts)
    return {phase: durations.get(phase) for phase in PHASES}


def to_db_time(value: datetime | None) -> str | None:
    """A datetime as the store writes it (UTC, fixed width; naive datetimes are taken as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime(_TIME_FORMAT)


def from_db_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value)  # ~10x faster than strptime; the stored "Z" gives an aware UTC datetime


def _req_time(value: str) -> datetime:
    result = from_db_time(value)
    assert result is not None
    return result


def _now() -> datetime:
    return datetime.now(UTC)


def _bool_or_none(value: Any) -> bool | None:
    return None if value is None else bool(value)


class Store:
    """A cidash store. Open with :meth:`open` and use as a context manager.

    Thread-safe: one connection guarded by a lock (sync writes from one thread; readers may call from workers).
    Write methods commit on their own unless called inside ``with store.transaction():``, which groups them
    into one atomic ``BEGIN IMMEDIATE`` transaction (what sync uses so a cursor advances with its rows).
    """

    def __init__(
        self, conn: Any, path: Path, *, readonly: bool = False, backend: str = "sqlite", url: str | None = None
    ) -> None:
        self._conn = conn
        self.path = path
        self.readonly = readonly
        #: "sqlite" or "postgresql" (:mod:`cidash.store_pg` lists what differs).
        self.backend = backend
        self._url = url  # the PostgreSQL URL as given (may hold a password: never shown; see ``location``)
        self._pg = backend == "postgresql"
        self._lock = threading.RLock()
        self._depth = 0
        if self._pg:
            import psycopg

            self._errors: tuple[type[Exception], ...] = (psycopg.Error,)
        else:
            self._errors = (sqlite3.DatabaseError,)

    @property
    def identity(self) -> str:
        """What was opened, whole (the file, or the full URL with its query): a key for caches, never for
        printing (a URL may hold a password)."""
        return self._url if self._url is not None else str(self.path)

    @property
    def location(self) -> str:
        """Where the store is, for messages: the SQLite file, or the PostgreSQL URL without its password."""
        if self._url is not None:
            from cidash.store_pg import redact_url

            return redact_url(self._url)
        return str(self.path)

    # -- opening -----------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False, timeout: float = DEFAULT_BUSY_TIMEOUT) -> Store:
        """Open (creating and migrating if needed) the store at ``path``: an SQLite file, or a
        ``postgresql://`` URL (:mod:`cidash.store_pg`).

        ``readonly`` opens an existing file without writing (no migration; a missing file is an error).
        Raises :class:`StoreError` for a corrupt file, a newer schema, or a lock held longer than ``timeout``.
        """
        from cidash.store_pg import is_postgres_url

        if is_postgres_url(path):
            return cls._open_postgres(str(path), readonly=readonly, timeout=timeout)
        path = Path(path).expanduser()
        if path.is_dir():
            raise StoreError(f"store {path} is a directory", hint="pass the SQLite file, e.g. --db DIR/cidash.db")
        if readonly and not path.is_file():
            raise StoreError(f"store {path} does not exist", hint="run 'cidash sync' first")
        if not readonly:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store directory {path.parent}: {exc.strerror}") from None
        try:
            if readonly:
                conn = sqlite3.connect(
                    f"{path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    timeout=timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {path}: {exc}") from None
        store = cls(conn, path, readonly=readonly)
        try:
            store._prepare(timeout)
        except StoreError:
            conn.close()
            raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _store_error(exc, path) from None
        return store

    @classmethod
    def _open_postgres(cls, url: str, *, readonly: bool, timeout: float) -> Store:
        from cidash import store_pg

        conn = store_pg.connect(url, readonly=readonly, timeout=timeout)
        store = cls(conn, Path(store_pg.redact_url(url)), readonly=readonly, backend="postgresql", url=url)
        try:
            version = store._stored_version()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store {store.location} has schema version {version}, newer than this cidash understands "
                    f"({SCHEMA_VERSION})",
                    hint="upgrade cidash or use another --db",
                )
            if readonly:
                store._check_readable(version)
            elif version < SCHEMA_VERSION:
                store._migrate()
        except StoreError:
            conn.close()
            raise
        except store._errors as exc:
            conn.close()
            raise store_pg.store_error(exc, url) from None
        return store

    def _stored_version(self) -> int:
        """The applied schema version (0: an empty database or file)."""
        if not self._pg:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        # pg_class read with the statement's snapshot, not to_regclass(): that answers from a cache a migration
        # committed by another process while this one waited for the migration lock may not have refreshed.
        if not self._conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = 'schema_migrations'"
        ).fetchone()[0]:
            return 0
        row = self._conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def _has_foreign_tables(self) -> bool:
        if self._pg:
            sql = "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        else:
            sql = "SELECT count(*) FROM sqlite_master WHERE type='table'"
        return bool(self._conn.execute(sql).fetchone()[0])

    def _check_readable(self, version: int) -> None:
        kind = "a PostgreSQL database" if self._pg else "an SQLite file"
        if version == 0 and self._has_foreign_tables():
            raise StoreError(f"{self.location} is {kind} but not a cidash store", hint="use another --db")
        if version == 0:
            raise StoreError(f"store {self.location} is empty", hint="run 'cidash sync' first")
        if version < SCHEMA_VERSION:
            raise StoreError(f"store {self.location} has an old schema (version {version})", hint="run 'cidash sync'")

    def _prepare(self, timeout: float) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # reads the header: fails on a corrupt file
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path} has schema version {version}, newer than this cidash understands "
                f"({SCHEMA_VERSION})",
                hint="upgrade cidash or use another --db",
            )
        if self.readonly:
            self._check_readable(version)
            return
        self._switch_to_wal(timeout)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = OFF")
        if version < SCHEMA_VERSION:
            self._migrate()

    def _switch_to_wal(self, timeout: float) -> None:
        """WAL mode, once per file. Switching needs the file to itself and SQLite does not wait for that (no busy
        handler), so two processes creating one store at the same moment retry here instead of failing."""
        import time

        conn = self._conn
        deadline = time.monotonic() + timeout
        while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            try:
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute(self._begin)
        try:
            if self._pg:  # one migrating process at a time; DDL is transactional, so the others see it all or none
                from cidash.store_pg import MIGRATION_LOCK, pg_ddl

                conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            version = self._stored_version()  # re-read under the write lock
            if version == 0 and self._has_foreign_tables():
                kind = "a PostgreSQL database" if self._pg else "an SQLite file"
                raise StoreError(f"{self.location} is {kind} but not a cidash store", hint="use another --db")
            for number, description, sql in MIGRATIONS:
                if number <= version:
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        conn.execute(pg_ddl(statement) if self._pg else statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(version) DO UPDATE SET description=excluded.description, "
                    "applied_at=excluded.applied_at",
                    (number, description, to_db_time(_now())),
                )
                if not self._pg:
                    conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connection(self) -> Any:
        """The raw connection, for read-only SQL on the documented schema: an ``sqlite3.Connection``, or on
        PostgreSQL a :class:`cidash.store_pg.PgConnection` (same ``execute``; ``.raw`` is the psycopg one)."""
        return self._conn

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._run(self._stored_version)  # type: ignore[no-any-return]

    @property
    def _begin(self) -> str:
        return "BEGIN" if self._pg else "BEGIN IMMEDIATE"

    def _noindex(self, column: str) -> str:
        """``column`` written so SQLite will not drive the query from an index on it (PostgreSQL costs plans)."""
        return column if self._pg else f"+{column}"

    def open_reader(self) -> Any:
        """A new read-only connection to the same store (for worker threads that page through rows while a sync
        writes): ``sqlite3`` in ``mode=ro``, or a read-only PostgreSQL session. The caller closes it."""
        if self._pg:
            from cidash import store_pg

            assert self._url is not None
            return store_pg.connect(self._url, readonly=True, timeout=DEFAULT_BUSY_TIMEOUT)
        return sqlite3.connect(
            f"{Path(self.path).resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=DEFAULT_BUSY_TIMEOUT,
            check_same_thread=False,
        )

    # -- plumbing ----------------------------------------------------------------------------------------------

    def trace_statements(self, callback: Callable[[str], None] | None) -> None:
        """Call ``callback`` with every SQL statement this store runs (parameters bound); ``None`` stops it.

        For diagnostics and for the tests that check the sync's query plans.
        """
        self._conn.set_trace_callback(callback)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one atomic transaction (nests: only the outermost one commits)."""
        with self._lock:
            if self.readonly:
                raise StoreError(f"store {self.path} is open read-only")
            if self._depth == 0:
                self._run(lambda: self._conn.execute(self._begin))
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    with contextlib.suppress(*self._errors):
                        self._conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                self._run(lambda: self._conn.execute("COMMIT"))

    def _run(self, fn: Any) -> Any:
        try:
            return fn()
        except self._errors as exc:
            if self._pg:
                from cidash.store_pg import store_error

                raise store_error(exc, self._url or "") from None
            raise _store_error(cast(sqlite3.DatabaseError, exc), self.path) from None

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:

            def go() -> list[Any]:
                rows: list[Any] = self._conn.execute(sql, params).fetchall()
                return rows

            result: list[Any] = self._run(go)
            return result

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Rows of one read-only statement on the documented schema, on this store's connection (under its lock):
        what :mod:`cidash.queries` builds its reads on."""
        return self._query(sql, params)

    def _write(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.transaction():
            self._run(lambda: self._conn.executemany(sql, rows))

    # -- projects ----------------------------------------------------------------------------------------------

    def upsert_project(self, project: Project) -> None:
        with self.transaction():
            self._run(
                lambda: self._conn.execute(
                    "INSERT INTO projects (id, path, web_url, default_branch, added_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET path=excluded.path, web_url=excluded.web_url, "
                    "default_branch=excluded.default_branch",
                    (project.id, project.path, project.web_url, project.default_branch, to_db_time(_now())),
                )
            )

    def projects(self) -> list[Project]:
        rows = self._query("SELECT id, path, web_url, default_branch FROM projects ORDER BY path")
        return [Project(id=r[0], path=r[1], web_url=r[2], default_branch=r[3]) for r in rows]

    def project(self, ref: int | str) -> Project | None:
        """A stored project by id or path (``"42"`` counts as an id)."""
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            rows = self._query("SELECT id, path, web_url, default_branch FROM projects WHERE id = ?", (int(ref),))
        else:
            rows = self._query("SELECT id, path, web_url, default_branch FROM projects WHERE path = ?", (ref,))
        return Project(id=rows[0][0], path=rows[0][1], web_url=rows[0][2], default_branch=rows[0][3]) if rows else None

    # -- pipelines ---------------------------------------------------------------------------------------------

    def upsert_pipelines(self, pipelines: Iterable[Pipeline]) -> int:
        now = to_db_time(_now())
        rows = [
            (
                p.project_id,
                p.id,
                p.iid,
                p.ref,
                p.sha,
                p.status,
                p.source,
                to_db_time(p.created_at),
                to_db_time(p.updated_at),
                to_db_time(p.started_at),
                to_db_time(p.finished_at),
                p.duration,
                p.queued_duration,
                p.web_url,
                now,
            )
            for p in pipelines
        ]
        cols = PIPELINE_COLUMNS.split(", ")
        updates = ", ".join(f"{c}=excluded.{c}" for c in [*cols, "synced_at"] if c != "id")
        self._write(
            f"INSERT INTO pipelines ({PIPELINE_COLUMNS}, synced_at) VALUES ({', '.join('?' * 15)}) "
            f"ON CONFLICT(id) DO UPDATE SET {updates}",
            rows,
        )
        return len(rows)

    def pipelines(
        self,
        project_id: int | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        ref: str | None = None,
        status: str | Sequence[str] | None = None,
        sha: str | None = None,
        ids: Iterable[int] | None = None,
        limit: int | None = None,
    ) -> list[Pipeline]:
        """Pipelines by ``created_at`` (since inclusive, until exclusive), oldest first.

        ``limit`` keeps the newest ``limit`` of the matches (still returned oldest first).
        """
        where, params = _filters(project_id, since, until, ref, status)
        if sha is not None:
            where.append("sha = ?")
            params.append(sha)
        if ids is not None:
            id_list = list(ids)
            # By primary key: ``+`` keeps SQLite from walking the project's whole (project, created) index instead.
            where = [f"{self._noindex('project_id')} = ?" if w == "project_id = ?" else w for w in where]
            where.append(f"id IN ({','.join('?' * len(id_list))})")
            params.extend(id_list)
        sql = f"SELECT {PIPELINE_COLUMNS} FROM pipelines"
        if where:
            sql += " WHERE " + " AND ".join(where)
        # With a status filter the few matching rows are found by (project, status) and sorted; ``+`` stops SQLite
        # from walking the whole history in (project, created) order to skip a sort.
        order = self._noindex("created_at") if status is not None else "created_at"
        sql += f" ORDER BY {order} DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = self._query(sql, params)
        return [pipeline_from_row(r) for r in reversed(rows)]

    def pipeline(self, pipeline_id: int) -> Pipeline | None:
        found = self.pipelines(ids=[pipeline_id])
        return found[0] if found else None

    # -- jobs --------------------------------------------------------------------------------------------------

    _JOB_COLS = (
        "project_id, id, pipeline_id, name, stage, status, ref, sha, created_at, started_at, finished_at, "
        "duration, queued_duration, failure_reason, allow_failure, retried, runner, web_url"
    )

    def upsert_jobs(self, jobs: Iterable[Job]) -> int:
        """Insert or update jobs. ``log_state`` is kept (a log is fetched once) unless the job's start or finish
        time changed (it ran again under the same id)."""
        now = to_db_time(_now())
        rows = [
            (
                j.project_id,
                j.id,
                j.pipeline_id,
                j.name,
                j.stage,
                j.status,
                j.ref,
                j.sha,
                to_db_time(j.created_at),
                to_db_time(j.started_at),
                to_db_time(j.finished_at),
                j.duration,
                j.queued_duration,
                j.failure_reason,
                int(j.allow_failure),
                int(j.retried),
                j.runner,
                j.web_url,
                now,
            )
            for j in jobs
        ]
        cols = self._JOB_COLS.split(", ")
        # A job that ran again under the same id (a played manual job, a re-processed one) needs its log again.
        same = "IS NOT DISTINCT FROM" if self._pg else "IS"
        updates = (
            f"log_state = CASE WHEN jobs.started_at {same} excluded.started_at AND jobs.finished_at {same} "
            "excluded.finished_at THEN jobs.log_state ELSE NULL END, "
        ) + ", ".join(f"{c}=excluded.{c}" for c in [*cols, "synced_at"] if c != "id")
        self._write(
            f"INSERT INTO jobs ({self._JOB_COLS}, synced_at) VALUES ({', '.join('?' * 19)}) "
            f"ON CONFLICT(id) DO UPDATE SET {updates}",
            rows,
        )
        return len(rows)

    def jobs(
        self,
        project_id: int | None = None,
        *,
        pipeline_id: int | None = None,
        pipeline_ids: Iterable[int] | None = None,
        ids: Iterable[int] | None = None,
        name: str | None = None,
        name_glob: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        ref: str | None = None,
        status: str | Sequence[str] | None = None,
        include_retried: bool = True,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs by ``created_at`` (since inclusive, until exclusive), oldest first; ``limit`` keeps the newest.

        ``name`` matches exactly; ``name_glob`` is an SQLite GLOB (``*``, ``?``, ``[...]``, case-sensitive).
        """
        where, params = _filters(project_id, since, until, ref, status)
        if pipeline_id is not None:
            where.append("pipeline_id = ?")
            params.append(pipeline_id)
        if pipeline_ids is not None:
            pids = list(pipeline_ids)
            where.append(f"pipeline_id IN ({','.join('?' * len(pids))})")
            params.extend(pids)
        if ids is not None:
            id_list = list(ids)
            where.append(f"id IN ({','.join('?' * len(id_list))})")
            params.extend(id_list)
        if name is not None:
            where.append("name = ?")
            params.append(name)
        if name_glob is not None:
            if self._pg:
                from cidash.store_pg import glob_to_regex

                where.append("name ~ ?")
                params.append(glob_to_regex(name_glob))
            else:
                where.append("name GLOB ?")
                params.append(name_glob)
        if not include_retried:
            where.append("retried = 0")
        sql = f"SELECT {self._JOB_COLS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_job(r) for r in reversed(self._query(sql, params))]

    def set_log_state(self, job_ids: Iterable[int], state: str | None) -> None:
        """Sync bookkeeping: ``parsed``, ``skipped``, ``unavailable`` or None (fetch again)."""
        self._write("UPDATE jobs SET log_state = ? WHERE id = ?", [(state, i) for i in job_ids])

    def jobs_needing_logs(self, project_id: int, *, ids: Iterable[int] | None = None) -> list[Job]:
        """Finished jobs (with a ``finished_at``) whose log has not been fetched yet (optionally among ``ids``)."""
        if ids is None:
            sql = (
                f"SELECT {self._JOB_COLS} FROM jobs WHERE project_id = ? AND log_state IS NULL "
                "AND finished_at IS NOT NULL ORDER BY id"
            )
            return [_job(r) for r in self._query(sql, (project_id,))]
        # Looked up by primary key: the sync asks this once per batch, and a scan of the project's jobs per batch
        # made a first sync quadratic. (``+project_id`` keeps SQLite from choosing the project index instead.)
        id_list = sorted(set(ids))
        found: list[Job] = []
        for start in range(0, len(id_list), 500):
            chunk = id_list[start : start + 500]
            sql = (
                f"SELECT {self._JOB_COLS} FROM jobs WHERE id IN ({','.join('?' * len(chunk))}) "
                f"AND {self._noindex('project_id')} = ? AND log_state IS NULL AND finished_at IS NOT NULL ORDER BY id"
            )
            found.extend(_job(r) for r in self._query(sql, [*chunk, project_id]))
        return found

    # -- sync bookkeeping for jobs ------------------------------------------------------------------------------

    def pipelines_needing_jobs(self, project_id: int) -> list[Pipeline]:
        """Pipelines whose jobs were not listed since their last change."""
        rows = self._query(
            f"SELECT {PIPELINE_COLUMNS} FROM pipelines WHERE project_id = ? "
            "AND (jobs_synced_for IS NULL OR jobs_synced_for != updated_at) ORDER BY id",
            (project_id,),
        )
        return [pipeline_from_row(r) for r in rows]

    def mark_pipeline_jobs_synced(self, pipelines: Iterable[Pipeline]) -> None:
        self._write(
            "UPDATE pipelines SET jobs_synced_for = ? WHERE id = ? AND updated_at = ?",
            [(to_db_time(p.updated_at), p.id, to_db_time(p.updated_at)) for p in pipelines],
        )

    def min_job_id(
        self, project_id: int, *, pipeline_ids: Iterable[int] = (), statuses: Iterable[str] = ()
    ) -> int | None:
        """The smallest stored job id among the given pipelines' jobs or jobs in the given statuses."""
        pids, sts = list(pipeline_ids), list(statuses)
        conds = []
        params: list[Any] = [project_id]
        if pids:
            conds.append(f"pipeline_id IN ({','.join('?' * len(pids))})")
            params.extend(pids)
        if sts:
            conds.append(f"status IN ({','.join('?' * len(sts))})")
            params.extend(sts)
        if not conds:
            return None
        row = self._query(f"SELECT min(id) FROM jobs WHERE project_id = ? AND ({' OR '.join(conds)})", params)
        return None if row[0][0] is None else int(row[0][0])

    def max_job_id(self, project_id: int) -> int | None:
        row = self._query("SELECT max(id) FROM jobs WHERE project_id = ?", (project_id,))
        return None if row[0][0] is None else int(row[0][0])

    def count_pipelines(self, project_id: int, *, statuses: Iterable[str] = ()) -> int:
        sts = list(statuses)
        sql = "SELECT count(*) FROM pipelines WHERE project_id = ?"
        if sts:
            sql += f" AND status IN ({','.join('?' * len(sts))})"
        return int(self._query(sql, [project_id, *sts])[0][0])

    def recompute_retried(self, pipeline_ids: Iterable[int]) -> None:
        """Flag every job that has a later attempt (same name, higher id) in the same pipeline.

        Both the update and its subquery are bounded by (project, pipeline), the jobs table's index, so the cost
        is the touched pipelines' jobs, not the whole history.
        """
        ids = sorted(set(pipeline_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            owners = self._query(f"SELECT DISTINCT project_id FROM pipelines WHERE id IN ({marks})", chunk)
            self._write(
                "UPDATE jobs SET retried = 1 WHERE project_id = ? AND pipeline_id IN "
                f"({marks}) AND retried = 0 AND EXISTS (SELECT 1 FROM jobs j2 WHERE j2.project_id = jobs.project_id "
                "AND j2.pipeline_id = jobs.pipeline_id AND j2.name = jobs.name AND j2.id > jobs.id)",
                [(row[0], *chunk) for row in owners],
            )

    def pipeline_shas(self, project_id: int) -> set[str]:
        return {r[0] for r in self._query("SELECT DISTINCT sha FROM pipelines WHERE project_id = ?", (project_id,))}

    def latest_sha_per_ref(self, project_id: int) -> dict[str, str]:
        """ref -> the SHA of its newest stored pipeline."""
        # SQLite takes a bare column from the row that holds the max(): one pass over the (project, ref) index.
        sql = (
            "SELECT DISTINCT ON (ref) ref, sha FROM pipelines WHERE project_id = ? ORDER BY ref, id DESC"
            if self._pg
            else "SELECT ref, sha, max(id) FROM pipelines WHERE project_id = ? GROUP BY ref"
        )
        rows = self._query(sql, (project_id,))
        return {r[0]: r[1] for r in rows}

    def newest_ref_per_sha(self, project_id: int, shas: Iterable[str]) -> dict[str, str]:
        """sha -> the ref of the newest stored pipeline that ran it (for the given SHAs only)."""
        wanted = sorted(set(shas))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = (
                f"SELECT DISTINCT ON (sha) sha, ref FROM pipelines WHERE project_id = ? AND sha IN ({marks}) "
                "ORDER BY sha, id DESC"
                if self._pg
                else f"SELECT sha, ref, max(id) FROM pipelines WHERE project_id = ? AND sha IN ({marks}) GROUP BY sha"
            )
            rows = self._query(sql, [project_id, *chunk])
            found.update({r[0]: r[1] for r in rows})
        return found

    def has_ci_config(self, project_id: int, sha: str, path: str) -> bool:
        rows = self._query(
            "SELECT 1 FROM ci_configs WHERE project_id = ? AND sha = ? AND path = ?", (project_id, sha, path)
        )
        return bool(rows)

    # -- job facts ---------------------------------------------------------------------------------------------

    def save_job_facts(
        self,
        job_id: int,
        facts: TraceFacts,
        *,
        project_id: int | None = None,
        log_bytes: int | None = None,
        parsed_at: datetime | None = None,
    ) -> None:
        """Store one job's parsed log (replacing an earlier parse) and mark the job's log ``parsed``."""
        self.save_many_job_facts([(job_id, facts, log_bytes)], project_id=project_id, parsed_at=parsed_at)

    def save_many_job_facts(
        self,
        items: Sequence[tuple[int, TraceFacts, int | None]],
        *,
        project_id: int | None = None,
        parsed_at: datetime | None = None,
    ) -> None:
        """:meth:`save_job_facts` for many ``(job_id, facts, log_bytes)`` at once, in one transaction.

        A handful of statements per batch instead of six per job: each SQLite call releases and re-takes the GIL,
        which a sync's busy download threads make expensive.
        """
        items = list({item[0]: item for item in items}.values())  # a job given twice: its last facts
        if not items:
            return
        with self.transaction():
            ids = [job_id for job_id, _, _ in items]
            projects: dict[int, int] = {}
            if project_id is None:
                for chunk_start in range(0, len(ids), 500):
                    chunk = ids[chunk_start : chunk_start + 500]
                    marks = ",".join("?" * len(chunk))
                    for row in self._query(f"SELECT id, project_id FROM jobs WHERE id IN ({marks})", chunk):
                        projects[int(row[0])] = int(row[1])
                missing = [i for i in ids if i not in projects]
                if missing:
                    raise StoreError(f"job {missing[0]} is not in the store; upsert it before its facts")
            when = to_db_time(parsed_at or _now())
            fact_rows: list[tuple[Any, ...]] = []
            section_rows: list[tuple[Any, ...]] = []
            cache_rows: list[tuple[Any, ...]] = []
            for job_id, facts, log_bytes in items:
                pid = project_id if project_id is not None else projects[job_id]
                phases = phase_seconds(facts)
                image = facts.image
                fact_rows.append(
                    (
                        job_id,
                        pid,
                        facts.runner_version,
                        facts.executor,
                        int(facts.truncated),
                        facts.startup_seconds,
                        image.name if image else None,
                        image.id if image else None,
                        image.digest if image else None,
                        None if image is None or image.pulled is None else int(image.pulled),
                        phases["prepare"],
                        phases["sources"],
                        phases["cache"],
                        phases["artifacts"],
                        phases["script"],
                        phases["upload"],
                        log_bytes,
                        when,
                    )
                )
                section_rows.extend(
                    (job_id, i, x.name, x.start, x.end, x.duration) for i, x in enumerate(facts.sections)
                )
                cache_rows.extend((job_id, i, pid, c.op, c.key, c.outcome, c.detail) for i, c in enumerate(facts.cache))
            id_rows = [(job_id,) for job_id in ids]
            conn = self._conn

            def go() -> None:
                conn.executemany("DELETE FROM job_sections WHERE job_id = ?", id_rows)
                conn.executemany("DELETE FROM cache_events WHERE job_id = ?", id_rows)
                conn.executemany(_FACTS_UPSERT, fact_rows)
                conn.executemany(
                    'INSERT INTO job_sections (job_id, seq, name, start, "end", duration) VALUES (?, ?, ?, ?, ?, ?)',
                    section_rows,
                )
                conn.executemany(
                    "INSERT INTO cache_events (job_id, seq, project_id, op, key, outcome, detail) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    cache_rows,
                )
                conn.executemany("UPDATE jobs SET log_state = 'parsed' WHERE id = ?", id_rows)

            self._run(go)

    def stored_job_facts(self, job_ids: Iterable[int]) -> dict[int, StoredJobFacts]:
        """Facts with phase columns for the given jobs (jobs without parsed logs are absent)."""
        result: dict[int, StoredJobFacts] = {}
        for job_id, project_id, facts, r in self._read_facts(job_ids):
            result[job_id] = StoredJobFacts(
                job_id=job_id,
                project_id=project_id,
                facts=facts,
                prepare_seconds=r[10],
                sources_seconds=r[11],
                cache_seconds=r[12],
                artifacts_seconds=r[13],
                script_seconds=r[14],
                upload_seconds=r[15],
                log_bytes=r[16],
            )
        return result

    def job_facts(self, job_ids: Iterable[int]) -> dict[int, TraceFacts]:
        """Parsed log facts of the given jobs (jobs without parsed logs are absent)."""
        return {job_id: facts for job_id, _, facts, _ in self._read_facts(job_ids)}

    def _read_facts(self, job_ids: Iterable[int]) -> Iterator[tuple[int, int, TraceFacts, Sequence[Any]]]:
        """(job id, project id, facts, the job_facts row) of the given jobs that have facts, by job id.

        Many ids close together (a whole dataset) are read with one primary-key range scan per table and filtered
        here, a few times faster than ``IN (...)`` lists of 500; sparse ids still use ``IN`` lists.
        """
        ids = sorted(set(job_ids))
        if not ids:
            return
        groups: list[tuple[list[int], str, list[int], set[int] | None]]
        if len(ids) > 2000 and ids[-1] - ids[0] < 4 * len(ids):
            groups = [(ids, "job_id BETWEEN ? AND ?", [ids[0], ids[-1]], set(ids))]
        else:
            groups = []
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                groups.append((chunk, f"job_id IN ({','.join('?' * len(chunk))})", chunk, None))
        section = Section
        event = CacheEvent
        for _, where, params, wanted in groups:
            sections: dict[int, list[Section]] = {}
            for r in self._query(
                f'SELECT job_id, name, start, "end", duration FROM job_sections WHERE {where} ORDER BY job_id, seq',
                params,
            ):
                if wanted is None or r[0] in wanted:
                    got = sections.get(r[0])
                    if got is None:
                        got = sections[r[0]] = []
                    got.append(section(r[1], r[2], r[3], r[4]))
            cache: dict[int, list[CacheEvent]] = {}
            for r in self._query(
                f"SELECT job_id, op, key, outcome, detail FROM cache_events WHERE {where} ORDER BY job_id, seq",
                params,
            ):
                if wanted is None or r[0] in wanted:
                    cache.setdefault(r[0], []).append(event(r[1], r[2], r[3], r[4]))
            for r in self._query(
                "SELECT job_id, project_id, runner_version, executor, truncated, startup_seconds, image_name, "
                "image_id, image_digest, image_pulled, prepare_seconds, sources_seconds, cache_seconds, "
                f"artifacts_seconds, script_seconds, upload_seconds, log_bytes FROM job_facts WHERE {where} "
                "ORDER BY job_id",
                params,
            ):
                if wanted is not None and r[0] not in wanted:
                    continue
                image = ImageRef(r[6], r[7], r[8], _bool_or_none(r[9])) if r[6] is not None else None
                facts = TraceFacts(
                    r[2], r[3], bool(r[4]), tuple(sections.get(r[0], ())), r[5], image, tuple(cache.get(r[0], ()))
                )
                yield r[0], r[1], facts, r

    def cache_events(
        self,
        project_id: int | None = None,
        *,
        key: str | None = None,
        op: str | None = None,
        job_ids: Iterable[int] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[StoredCacheEvent]:
        """Cache events, ordered by job id then log order; ``since``/``until`` filter on the job's created_at."""
        where: list[str] = []
        params: list[Any] = []
        if project_id is not None:
            where.append("c.project_id = ?")
            params.append(project_id)
        if key is not None:
            where.append("c.key = ?")
            params.append(key)
        if op is not None:
            where.append("c.op = ?")
            params.append(op)
        if job_ids is not None:
            ids = list(job_ids)
            where.append(f"c.job_id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        if since is not None:
            where.append("j.created_at >= ?")
            params.append(to_db_time(since))
        if until is not None:
            where.append("j.created_at < ?")
            params.append(to_db_time(until))
        sql = (
            "SELECT c.project_id, c.job_id, c.seq, c.op, c.key, c.outcome, c.detail FROM cache_events c "
            "LEFT JOIN jobs j ON j.id = c.job_id"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY c.job_id, c.seq"
        return [
            StoredCacheEvent(
                project_id=r[0],
                job_id=r[1],
                seq=r[2],
                op=cast(CacheOp, r[3]),
                key=r[4],
                outcome=cast(CacheOutcome, r[5]),
                detail=r[6],
            )
            for r in self._query(sql, params)
        ]

    # -- registry, files, CI config, resource groups -----------------------------------------------------------

    def upsert_image_tags(self, tags: Iterable[ImageTag], *, seen_at: datetime | None = None) -> int:
        """Record tags as seen now: a new (repository, tag, digest) gets a row, a known one its last_seen bumped."""
        seen = to_db_time(seen_at or _now())
        rows = [
            (
                t.project_id,
                t.repository,
                t.name,
                t.digest or "",
                t.total_size,
                to_db_time(t.created_at),
                t.location,
                seen,
                seen,
            )
            for t in tags
        ]
        self._write(
            "INSERT INTO image_tags (project_id, repository, tag, digest, total_size, created_at, location, "
            "first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(repository, tag, digest) DO "
            "UPDATE SET total_size=COALESCE(excluded.total_size, image_tags.total_size), "
            "created_at=excluded.created_at, location=excluded.location, "
            "last_seen=excluded.last_seen",
            rows,
        )
        return len(rows)

    def image_tags(
        self,
        project_id: int | None = None,
        *,
        repository: str | None = None,
        tag: str | None = None,
        current_only: bool = False,
    ) -> list[StoredImageTag]:
        """Tag history, oldest sighting first. ``current_only``: one row per tag, its latest digest."""
        where: list[str] = []
        params: list[Any] = []
        for col, value in (("project_id", project_id), ("repository", repository), ("tag", tag)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        sql = (
            "SELECT project_id, repository, tag, digest, total_size, created_at, location, first_seen, last_seen "
            "FROM image_tags"
        )
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY first_seen, repository, tag, digest"
        out = [
            StoredImageTag(
                tag=ImageTag(
                    project_id=r[0],
                    repository=r[1],
                    name=r[2],
                    digest=r[3] or None,
                    total_size=r[4],
                    created_at=from_db_time(r[5]),
                    location=r[6],
                ),
                first_seen=_req_time(r[7]),
                last_seen=_req_time(r[8]),
            )
            for r in self._query(sql, params)
        ]
        if current_only:
            latest: dict[tuple[str, str], StoredImageTag] = {}
            for item in out:
                k = (item.tag.repository, item.tag.name)
                if k not in latest or item.last_seen >= latest[k].last_seen:
                    latest[k] = item
            out = sorted(latest.values(), key=lambda s: (s.first_seen, s.tag.repository, s.tag.name))
        return out

    def save_file_checksums(self, checksums: Iterable[FileChecksum]) -> int:
        rows = [(c.project_id, c.sha, c.path, c.blob_id, c.last_commit_id, c.content_sha256) for c in checksums]
        self._write(
            upsert_sql("file_checksums", "project_id, sha, path, blob_id, last_commit_id, content_sha256", 3),
            rows,
        )
        return len(rows)

    def file_checksums(
        self,
        project_id: int | None = None,
        *,
        sha: str | None = None,
        shas: Iterable[str] | None = None,
        path: str | None = None,
    ) -> list[FileChecksum]:
        where: list[str] = []
        params: list[Any] = []
        for col, value in (("project_id", project_id), ("sha", sha), ("path", path)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        if shas is not None:
            sha_list = list(shas)
            where.append(f"sha IN ({','.join('?' * len(sha_list))})")
            params.extend(sha_list)
        sql = "SELECT project_id, sha, path, blob_id, last_commit_id, content_sha256 FROM file_checksums"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY project_id, sha, path"
        return [
            FileChecksum(project_id=r[0], sha=r[1], path=r[2], blob_id=r[3], last_commit_id=r[4], content_sha256=r[5])
            for r in self._query(sql, params)
        ]

    def checksummed_shas(self, project_id: int) -> set[str]:
        return {
            r[0] for r in self._query("SELECT DISTINCT sha FROM file_checksums WHERE project_id = ?", (project_id,))
        }

    def save_ci_config(self, config: CiConfig, *, fetched_at: datetime | None = None) -> None:
        self._write(
            upsert_sql("ci_configs", "project_id, sha, path, ref, content, fetched_at", 3),
            [
                (
                    config.project_id,
                    config.sha,
                    config.path,
                    config.ref,
                    config.content,
                    to_db_time(fetched_at or _now()),
                )
            ],
        )

    def ci_configs(self, project_id: int | None = None, *, sha: str | None = None) -> list[CiConfig]:
        where: list[str] = []
        params: list[Any] = []
        if project_id is not None:
            where.append("project_id = ?")
            params.append(project_id)
        if sha is not None:
            where.append("sha = ?")
            params.append(sha)
        sql = "SELECT project_id, sha, path, ref, content FROM ci_configs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY fetched_at, sha, path"
        return [
            CiConfig(project_id=r[0], sha=r[1], path=r[2], ref=r[3], content=r[4]) for r in self._query(sql, params)
        ]

    def latest_ci_config(
        self, project_id: int, ref: str | None = None, *, created_by: datetime | None = None
    ) -> CiConfig | None:
        """The CI file at the newest pipeline SHA (of ``ref`` if given) that has one stored; ``created_by``: among
        pipelines created at or before that time (``--now``)."""
        sql = (
            "SELECT c.project_id, c.sha, c.path, c.ref, c.content FROM ci_configs c JOIN pipelines p "
            "ON p.project_id = c.project_id AND p.sha = c.sha WHERE c.project_id = ?"
        )
        params: list[Any] = [project_id]
        if ref is not None:
            sql += " AND p.ref = ?"
            params.append(ref)
        if created_by is not None:
            sql += " AND p.created_at <= ?"
            params.append(to_db_time(created_by))
        sql += " ORDER BY p.created_at DESC, p.id DESC LIMIT 1"
        rows = self._query(sql, params)
        if not rows:
            return None
        r = rows[0]
        return CiConfig(project_id=r[0], sha=r[1], path=r[2], ref=r[3], content=r[4])

    def replace_resource_groups(self, project_id: int, groups: Iterable[ResourceGroup]) -> None:
        seen = to_db_time(_now())
        with self.transaction():
            self._run(lambda: self._conn.execute("DELETE FROM resource_groups WHERE project_id = ?", (project_id,)))
            self._write(
                upsert_sql("resource_groups", "project_id, key, process_mode, seen_at", 2),
                [(project_id, g.key, g.process_mode, seen) for g in groups],
            )

    def resource_groups(self, project_id: int | None = None) -> list[ResourceGroup]:
        sql = "SELECT project_id, key, process_mode FROM resource_groups"
        params: list[Any] = []
        if project_id is not None:
            sql += " WHERE project_id = ?"
            params.append(project_id)
        return [
            ResourceGroup(project_id=r[0], key=r[1], process_mode=r[2])
            for r in self._query(sql + " ORDER BY project_id, key", params)
        ]

    # -- sync state --------------------------------------------------------------------------------------------

    def cursor(self, project_id: int, kind: str) -> str | None:
        rows = self._query("SELECT cursor FROM sync_state WHERE project_id = ? AND kind = ?", (project_id, kind))
        return str(rows[0][0]) if rows else None

    def set_cursor(self, project_id: int, kind: str, value: str) -> None:
        self._write(
            upsert_sql("sync_state", "project_id, kind, cursor, updated_at", 2),
            [(project_id, kind, value, to_db_time(_now()))],
        )

    def set_instance_version(
        self, project_id: int, version: str | None, revision: str | None, checked_at: datetime
    ) -> None:
        """Record the version of the GitLab instance a project lives on (None: unknown, e.g. a 403)."""
        self._write(
            upsert_sql("instance_versions", "project_id, version, revision, checked_at", 1),
            [(project_id, version, revision, to_db_time(checked_at))],
        )

    def instance_version(self, project_id: int | None = None) -> str | None:
        """The recorded GitLab version for a project; with no project, the one version every recorded project
        agrees on (None when unknown or when they differ)."""
        if project_id is not None:
            rows = self._query("SELECT version FROM instance_versions WHERE project_id = ?", (project_id,))
            return str(rows[0][0]) if rows and rows[0][0] else None
        rows = self._query("SELECT DISTINCT version FROM instance_versions WHERE version IS NOT NULL")
        return str(rows[0][0]) if len(rows) == 1 else None

    def last_sync(self, project_id: int) -> datetime | None:
        """When a sync of the project last completed (None: never)."""
        value = self.cursor(project_id, "last_sync")
        return from_db_time(value) if value else None

    def start_sync_run(self, project_id: int, started_at: datetime) -> int:
        sql = "INSERT INTO sync_runs (project_id, started_at, status) VALUES (?, ?, 'running')"
        with self.transaction():
            if self._pg:
                rows = self._query(sql + " RETURNING id", (project_id, to_db_time(started_at)))
                return int(rows[0][0])
            cur = self._run(lambda: self._conn.execute(sql, (project_id, to_db_time(started_at))))
            return int(cur.lastrowid)

    def finish_sync_run(self, run_id: int, run: SyncRun) -> None:
        self._write(
            "UPDATE sync_runs SET finished_at = ?, status = ?, requests = ?, bytes = ?, pipelines = ?, jobs = ?, "
            "logs = ?, error = ?, warnings = ?, deferred = ? WHERE id = ?",
            [
                (
                    to_db_time(run.finished_at),
                    run.status,
                    run.requests,
                    run.bytes,
                    run.pipelines,
                    run.jobs,
                    run.logs,
                    run.error,
                    run.warnings,
                    run.deferred,
                    run_id,
                )
            ],
        )

    def sync_runs(self, project_id: int | None = None, *, limit: int = 20) -> list[SyncRun]:
        """The most recent sync runs, newest first."""
        sql = (
            "SELECT project_id, started_at, finished_at, status, requests, bytes, pipelines, jobs, logs, error, "
            "warnings, deferred FROM sync_runs"
        )
        params: list[Any] = []
        if project_id is not None:
            sql += " WHERE project_id = ?"
            params.append(project_id)
        sql += f" ORDER BY id DESC LIMIT {int(limit)}"
        return [
            SyncRun(
                project_id=r[0],
                started_at=_req_time(r[1]),
                finished_at=from_db_time(r[2]),
                status=r[3],
                requests=r[4],
                bytes=r[5],
                pipelines=r[6],
                jobs=r[7],
                logs=r[8],
                error=r[9],
                warnings=r[10],
                deferred=r[11],
            )
            for r in self._query(sql, params)
        ]

    def interrupt_running_sync_runs(self, project_id: int, *, now: datetime) -> int:
        """Mark the project's ``running`` sync runs ``interrupted`` (call while holding its lease: no live sync
        of the project can own them then). Returns how many."""
        with self.transaction():
            cur = self._run(
                lambda: self._conn.execute(
                    "UPDATE sync_runs SET status = 'interrupted', error = ? "
                    "WHERE project_id = ? AND status = 'running'",
                    (f"the sync ended without finishing (found by the sync at {to_db_time(now)})", project_id),
                )
            )
            return int(cur.rowcount)

    # -- sync leases: one sync per project at a time -----------------------------------------------------------

    def sync_lease(self, project_id: int) -> SyncLease | None:
        rows = self._query(
            "SELECT project_id, owner, pid, host, acquired_at, expires_at FROM sync_leases WHERE project_id = ?",
            (project_id,),
        )
        if not rows:
            return None
        r = rows[0]
        return SyncLease(r[0], r[1], r[2], r[3], _req_time(r[4]), _req_time(r[5]))

    def acquire_sync_lease(
        self,
        project_id: int,
        owner: str,
        *,
        pid: int,
        host: str,
        now: datetime,
        ttl: timedelta,
        is_dead: Callable[[SyncLease], bool] | None = None,
    ) -> SyncLease | None:
        """Take the project's lease for ``owner`` until ``now + ttl``, atomically. Returns None when taken, else
        the live lease of another owner (expired leases, and those ``is_dead`` says are gone, are taken over)."""
        with self.transaction():
            if self._pg:  # BEGIN does not serialise writers there: two takers of a free lease would both win
                from cidash.store_pg import lease_lock_key

                self._query("SELECT pg_advisory_xact_lock(?)", (lease_lock_key(project_id),))
            current = self.sync_lease(project_id)
            if (
                current is not None
                and current.owner != owner
                and current.expires_at > now
                and not (is_dead is not None and is_dead(current))
            ):
                return current
            self._write(
                upsert_sql("sync_leases", "project_id, owner, pid, host, acquired_at, expires_at", 1),
                [(project_id, owner, pid, host, to_db_time(now), to_db_time(now + ttl))],
            )
        return None

    def renew_sync_lease(self, project_id: int, owner: str, *, now: datetime, ttl: timedelta) -> bool:
        """Extend ``owner``'s lease; False when it is not (any more) the holder."""
        with self.transaction():
            cur = self._run(
                lambda: self._conn.execute(
                    "UPDATE sync_leases SET expires_at = ? WHERE project_id = ? AND owner = ?",
                    (to_db_time(now + ttl), project_id, owner),
                )
            )
            return int(cur.rowcount) > 0

    def release_sync_lease(self, project_id: int, owner: str) -> None:
        with self.transaction():
            self._run(
                lambda: self._conn.execute(
                    "DELETE FROM sync_leases WHERE project_id = ? AND owner = ?", (project_id, owner)
                )
            )

    # -- deferred records --------------------------------------------------------------------------------------

    def defer(self, project_id: int, kind: str, items: Iterable[tuple[int, str]], *, now: datetime) -> None:
        """Remember ``(item_id, reason)`` records of ``kind`` for the next sync (attempts counted)."""
        when = to_db_time(now)
        self._write(
            "INSERT INTO sync_deferred (project_id, kind, item_id, reason, first_seen, last_seen, attempts) "
            "VALUES (?, ?, ?, ?, ?, ?, 1) ON CONFLICT(project_id, kind, item_id) DO UPDATE SET "
            "reason = excluded.reason, last_seen = excluded.last_seen, attempts = sync_deferred.attempts + 1",
            [(project_id, kind, item_id, reason, when, when) for item_id, reason in items],
        )

    def deferred(self, project_id: int, kind: str | None = None) -> list[DeferredItem]:
        sql = (
            "SELECT project_id, kind, item_id, reason, first_seen, last_seen, attempts FROM sync_deferred "
            "WHERE project_id = ?"
        )
        params: list[Any] = [project_id]
        if kind is not None:
            sql += " AND kind = ?"
            params.append(kind)
        return [
            DeferredItem(r[0], r[1], r[2], r[3], _req_time(r[4]), _req_time(r[5]), r[6])
            for r in self._query(sql + " ORDER BY kind, item_id", params)
        ]

    def clear_deferred(self, project_id: int, kind: str, item_ids: Iterable[int]) -> None:
        self._write(
            "DELETE FROM sync_deferred WHERE project_id = ? AND kind = ? AND item_id = ?",
            [(project_id, kind, i) for i in item_ids],
        )

    # -- running totals of the exported counters ---------------------------------------------------------------

    def uncounted_ids(self, project_id: int, kind: str) -> list[int]:
        """Ids of finished pipelines (``kind="pipeline"``), finished jobs (``"job"``) or jobs with parsed log facts
        (``"log"``) of the project that :meth:`add_metric_totals` has not counted yet, ascending."""
        tables = {
            "pipeline": ("pipelines", "id", " AND finished_at IS NOT NULL"),
            "job": ("jobs", "id", " AND finished_at IS NOT NULL"),
            "log": ("job_facts", "job_id", ""),
        }
        if kind not in tables:
            raise ValueError(f"unknown kind {kind!r}")
        table, column, extra = tables[kind]
        sql = (
            f"SELECT {column} FROM {table} t WHERE project_id = ?{extra} AND NOT EXISTS "
            f"(SELECT 1 FROM metric_counted c WHERE c.kind = ? AND c.item_id = t.{column}) ORDER BY 1"
        )
        return [int(r[0]) for r in self._query(sql, (project_id, kind))]

    def add_metric_totals(
        self,
        project_id: int,
        increments: Mapping[tuple[str, str], float],
        counted: Iterable[tuple[str, int]] = (),
        *,
        now: datetime | None = None,
    ) -> None:
        """Add ``increments`` ({(sample name, labels as JSON): amount}) to the project's running totals and mark
        ``counted`` ((kind, id)) items as counted, in one transaction."""
        when = to_db_time(now or _now())
        with self.transaction():
            self._write(
                "INSERT INTO metric_totals (project_id, name, labels, value, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(project_id, name, labels) DO UPDATE SET value = metric_totals.value + excluded.value, "
                "updated_at = excluded.updated_at",
                [(project_id, name, labels, float(v), when) for (name, labels), v in increments.items()],
            )
            self._write(
                "INSERT INTO metric_counted (project_id, kind, item_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(project_id, kind, item_id) for kind, item_id in counted],
            )

    def metric_totals(self, project_id: int | None = None) -> list[tuple[int, str, str, float]]:
        """``(project_id, sample name, labels JSON, value)`` of the running totals, sorted."""
        sql = "SELECT project_id, name, labels, value FROM metric_totals"
        params: list[Any] = []
        if project_id is not None:
            sql += " WHERE project_id = ?"
            params.append(project_id)
        return [(int(r[0]), str(r[1]), str(r[2]), float(r[3])) for r in self._query(sql + " ORDER BY 1, 2, 3", params)]

    # -- audit -------------------------------------------------------------------------------------------------

    def add_audit(self, record: AuditRecord) -> None:
        self._write(
            "INSERT INTO audit (at, actor, project, action, target, request, result, dry_run, extra) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    to_db_time(record.at),
                    record.actor,
                    record.project,
                    record.action,
                    record.target,
                    record.request,
                    record.result,
                    int(record.dry_run),
                    json.dumps(record.extra, sort_keys=True),
                )
            ],
        )

    def audit(
        self, *, project: str | None = None, action: str | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        """Audit records, oldest first (``limit`` keeps the newest)."""
        where: list[str] = []
        params: list[Any] = []
        if project is not None:
            where.append("project = ?")
            params.append(project)
        if action is not None:
            where.append("action = ?")
            params.append(action)
        sql = "SELECT at, actor, project, action, target, request, result, dry_run, extra FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [
            AuditRecord(
                at=_req_time(r[0]),
                actor=r[1],
                project=r[2],
                action=r[3],
                target=r[4],
                request=r[5],
                result=r[6],
                dry_run=bool(r[7]),
                extra={str(k): str(v) for k, v in json.loads(r[8] or "{}").items()},
            )
            for r in reversed(self._query(sql, params))
        ]

    # -- retention ---------------------------------------------------------------------------------------------

    def prune(self, before: datetime, *, project_id: int | None = None, dry_run: bool = False) -> dict[str, int]:
        """Delete pipelines created before ``before`` with their jobs, facts, cache events and file checksums.

        Image-tag history, CI configs still referenced, resource groups, cursors and the audit log are kept.
        Returns the number of rows (to be) deleted per table.
        """
        cutoff = to_db_time(before)
        scope = "created_at < ?"
        params: list[Any] = [cutoff]
        if project_id is not None:
            scope += " AND project_id = ?"
            params.append(project_id)
        old_jobs = f"SELECT id FROM jobs WHERE pipeline_id IN (SELECT id FROM pipelines WHERE {scope})"
        counts: dict[str, int] = {}
        statements = [
            ("cache_events", f"job_id IN ({old_jobs})"),
            ("job_sections", f"job_id IN ({old_jobs})"),
            ("job_facts", f"job_id IN ({old_jobs})"),
            ("jobs", f"pipeline_id IN (SELECT id FROM pipelines WHERE {scope})"),
        ]
        with self._lock:
            ctx = contextlib.nullcontext() if dry_run else self.transaction()
            with ctx:
                for table, cond in statements:
                    counts[table] = self._count_or_delete(table, cond, params, dry_run)
                # Checksums and CI configs of SHAs that no remaining (newer) pipeline uses.
                keep = "SELECT sha FROM pipelines WHERE NOT (" + scope + ")"
                sha_cond = f"sha IN (SELECT sha FROM pipelines WHERE {scope}) AND sha NOT IN ({keep})"
                counts["file_checksums"] = self._count_or_delete("file_checksums", sha_cond, params * 2, dry_run)
                counts["ci_configs"] = self._count_or_delete("ci_configs", sha_cond, params * 2, dry_run)
                counts["pipelines"] = self._count_or_delete("pipelines", scope, params, dry_run)
        return counts

    def _count_or_delete(self, table: str, cond: str, params: Sequence[Any], dry_run: bool) -> int:
        if dry_run:
            return int(self._query(f"SELECT count(*) FROM {table} WHERE {cond}", params)[0][0])
        cur = self._run(lambda: self._conn.execute(f"DELETE FROM {table} WHERE {cond}", params))
        return int(cur.rowcount)

    def counts(self) -> dict[str, int]:
        """Row counts of the main tables (for ``--verbose`` and tests)."""
        tables = ("projects", "pipelines", "jobs", "job_facts", "cache_events", "image_tags", "file_checksums")
        return {t: int(self._query(f"SELECT count(*) FROM {t}")[0][0]) for t in tables}


def _filters(
    project_id: int | None,
    since: datetime | None,
    until: datetime | None,
    ref: str | None,
    status: str | Sequence[str] | None,
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if project_id is not None:
        where.append("project_id = ?")
        params.append(project_id)
    if since is not None:
        where.append("created_at >= ?")
        params.append(to_db_time(since))
    if until is not None:
        where.append("created_at < ?")
        params.append(to_db_time(until))
    if ref is not None:
        where.append("ref = ?")
        params.append(ref)
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        params.extend(statuses)
    return where, params


#: The ``pipelines`` columns :func:`pipeline_from_row` reads, in order (for read-only SQL on the schema).
PIPELINE_COLUMNS = (
    "project_id, id, iid, ref, sha, status, source, created_at, updated_at, started_at, finished_at, "
    "duration, queued_duration, web_url"
)


def pipeline_from_row(r: Sequence[Any]) -> Pipeline:
    """A :class:`Pipeline` from a row of ``SELECT {PIPELINE_COLUMNS} FROM pipelines``."""
    return Pipeline(
        project_id=r[0],
        id=r[1],
        iid=r[2],
        ref=r[3],
        sha=r[4],
        status=r[5],
        source=r[6],
        created_at=_req_time(r[7]),
        updated_at=_req_time(r[8]),
        started_at=from_db_time(r[9]),
        finished_at=from_db_time(r[10]),
        duration=r[11],
        queued_duration=r[12],
        web_url=r[13],
    )


def _job(r: Sequence[Any]) -> Job:
    return Job(
        project_id=r[0],
        id=r[1],
        pipeline_id=r[2],
        name=r[3],
        stage=r[4],
        status=r[5],
        ref=r[6],
        sha=r[7],
        created_at=_req_time(r[8]),
        started_at=from_db_time(r[9]),
        finished_at=from_db_time(r[10]),
        duration=r[11],
        queued_duration=r[12],
        failure_reason=r[13],
        allow_failure=bool(r[14]),
        retried=bool(r[15]),
        runner=r[16],
        web_url=r[17],
    )


def _store_error(exc: sqlite3.DatabaseError, path: Path) -> StoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return StoreError(f"store {path} is locked by another cidash process", hint="try again when it finishes")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StoreError(
            f"store {path} is corrupt or not a cidash store ({text})", hint="move it aside; 'cidash sync' rebuilds it"
        )
    if "readonly" in text or "read-only" in text:
        return StoreError(f"store {path} is read-only ({text})")
    if "disk" in text and "full" in text:
        return StoreError(f"store {path}: disk full")
    return StoreError(f"store {path}: {text}")
