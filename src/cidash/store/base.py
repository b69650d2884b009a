"""Opening, migrating and the plumbing every part of the :class:`~cidash.store.Store` writes and reads through."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self, cast

from cidash.errors import StoreError
from cidash.store.rows import _now, to_db_time
from cidash.store.schema import MIGRATION_STEPS, MIGRATIONS, SCHEMA_VERSION

DEFAULT_BUSY_TIMEOUT = 30.0


class StoreBase:
    """What every part of :class:`~cidash.store.Store` builds on: the connection (SQLite or PostgreSQL) and its
    lock, opening and migrating, ``transaction()``, and the ``_query``/``_write``/``_run`` plumbing."""

    def __init__(
        self, conn: Any, path: Path, *, readonly: bool = False, backend: str = "sqlite", url: str | None = None
    ) -> None:
        self._conn = conn
        self.path = path
        self.readonly = readonly
        #: "sqlite" or "postgresql" (:mod:`cidash.store.pg` lists what differs).
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
            from cidash.store.pg import redact_url

            return redact_url(self._url)
        return str(self.path)

    # -- opening -----------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False, timeout: float = DEFAULT_BUSY_TIMEOUT) -> Self:
        """Open (creating and migrating if needed) the store at ``path``: an SQLite file, or a
        ``postgresql://`` URL (:mod:`cidash.store.pg`).

        ``readonly`` opens an existing file without writing (no migration; a missing file is an error).
        Raises :class:`StoreError` for a corrupt file, a newer schema, or a lock held longer than ``timeout``.
        """
        from cidash.store.pg import is_postgres_url

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
    def older_schema(cls, path: str | Path) -> int | None:
        """The schema version of the SQLite store at ``path`` when it is older than this cidash's (opening it
        for writing migrates it), else None: a PostgreSQL URL, a missing or empty file, a current or newer one,
        a file that is not a store. Reads the file's header only, without writing."""
        from cidash.store.pg import is_postgres_url

        if is_postgres_url(path):
            return None
        path = Path(path).expanduser()
        if not path.is_file():
            return None
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
            try:
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            finally:
                conn.close()
        except sqlite3.Error:
            return None  # opening it says what is wrong
        return version if 0 < version < SCHEMA_VERSION else None

    @classmethod
    def _open_postgres(cls, url: str, *, readonly: bool, timeout: float) -> Self:
        from cidash.store import pg as store_pg

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
            raise StoreError(
                f"store {self.location} has an old schema (version {version})",
                hint="run 'cidash sync'"
                if self._pg
                else "run 'cidash sync', or any cidash command as a user who can write the file: it upgrades it",
            )

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
                from cidash.store.pg import MIGRATION_LOCK, pg_ddl

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
                step = MIGRATION_STEPS.get(number)
                if step is not None:
                    step(conn)
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connection(self) -> Any:
        """The raw connection, for read-only SQL on the documented schema: an ``sqlite3.Connection``, or on
        PostgreSQL a :class:`cidash.store.pg.PgConnection` (same ``execute``; ``.raw`` is the psycopg one)."""
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

    def noindex(self, column: str) -> str:
        """:meth:`_noindex` for the reads built on :meth:`read` (:mod:`cidash.dataset`, :mod:`cidash.queries`)."""
        return self._noindex(column)

    def open_reader(self) -> Any:
        """A new read-only connection to the same store (for worker threads that page through rows while a sync
        writes): ``sqlite3`` in ``mode=ro``, or a read-only PostgreSQL session. The caller closes it."""
        if self._pg:
            from cidash.store import pg as store_pg

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
                from cidash.store.pg import store_error

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

    def read_batches(
        self, sql: str, params: Sequence[Any] = (), *, batch: int = 2000
    ) -> Generator[list[Any], None, None]:
        """The rows of one read-only statement, ``batch`` rows at a time (the store's lock held until the last
        batch, or until the iterator is closed): a loop that turns many rows into objects reads each batch while
        the one before is freed, instead of holding every row's values at once (:meth:`read`): ~10 % of the
        time of 100,000 rows of 20 columns on SQLite, whose values are then made in memory just freed."""
        with self._lock:
            cursor = self._run(lambda: self._conn.execute(sql, params))
            while rows := self._run(lambda: cursor.fetchmany(batch)):
                yield rows

    def scan(self, sql: str, params: Sequence[Any], visit: Callable[[Any], None], *, batch: int = 10_000) -> None:
        """Call ``visit`` with each row of one read-only statement, fetched ``batch`` rows at a time (under this
        store's lock): a pass over many rows that does not hold them all in memory."""
        with self._lock:

            def go() -> None:
                cursor = self._conn.execute(sql, params)
                while rows := cursor.fetchmany(batch):
                    for row in rows:
                        visit(row)

            self._run(go)

    def _copy_job_columns(self, job_ids: Sequence[int] = (), pipelines: Sequence[tuple[int, int]] = ()) -> None:
        """Rewrite ``job_facts``' copies of its job (schema version 8: ``pipeline_ref``, ``job_started_at``,
        ``visible_at``) for the facts of ``job_ids`` and of the jobs of ``pipelines`` (``(project_id,
        pipeline_id)`` pairs), from the job and pipeline rows as stored now. Called in the transaction that wrote
        them (facts, jobs or pipelines), so the copies never disagree with the rows: a job or pipeline not stored
        yet leaves them NULL until it is."""
        conn = self._conn
        unique = sorted(set(job_ids))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            conn.execute(_COPY_JOB_COLUMNS + f"job_id IN ({','.join('?' * len(chunk))})", chunk)
        by_project: dict[int, set[int]] = {}
        for project_id, pipeline_id in pipelines:
            by_project.setdefault(project_id, set()).add(pipeline_id)
        for project_id, ids in sorted(by_project.items()):
            wanted = sorted(ids)
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                conn.execute(
                    _COPY_JOB_COLUMNS + "job_id IN (SELECT id FROM jobs WHERE project_id = ? AND pipeline_id IN "
                    f"({','.join('?' * len(chunk))}))",
                    [project_id, *chunk],
                )

    def _write(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.transaction():
            self._run(lambda: self._conn.executemany(sql, rows))


#: Sets ``job_facts``' copies of its job from the job and pipeline rows (what schema version 8's migration does for
#: the rows it finds); a WHERE on ``job_id`` follows.
_COPY_JOB_COLUMNS = (
    "UPDATE job_facts SET (pipeline_ref, job_started_at, visible_at) = (SELECT p.ref, j.started_at, CASE "
    "WHEN j.finished_at IS NOT NULL AND j.finished_at > p.created_at AND j.finished_at > j.created_at "
    "THEN j.finished_at WHEN p.created_at > j.created_at THEN p.created_at ELSE j.created_at END "
    "FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id WHERE j.id = job_facts.job_id) WHERE "
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
