"""The sync's own bookkeeping: cursors, instance versions, runs, leases and deferred records."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cidash.models import SyncRun
from cidash.store.base import StoreBase
from cidash.store.rows import _now, _req_time, from_db_time, to_db_time, upsert_sql


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


class SyncStateMixin(StoreBase):
    """The sync's own bookkeeping: cursors, instance versions, runs, leases and deferred records."""

    # -- sync state --------------------------------------------------------------------------------------------

    def cursor(self, project_id: int, kind: str) -> str | None:
        rows = self._query("SELECT cursor FROM sync_state WHERE project_id = ? AND kind = ?", (project_id, kind))
        return str(rows[0][0]) if rows else None

    def set_cursor(self, project_id: int, kind: str, value: str) -> None:
        self._write(
            upsert_sql("sync_state", "project_id, kind, cursor, updated_at", 2),
            [(project_id, kind, value, to_db_time(_now()))],
        )

    def claim_origin(self, project_id: int, kind: str, value: str) -> str:
        """Record ``value`` under ``(project_id, kind)`` unless a value is there already; returns the one that is
        there now (``value``, or the one recorded first). Atomic: of two processes claiming at once, one wins."""
        with self.transaction():
            self._write(
                "INSERT INTO sync_state (project_id, kind, cursor, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(project_id, kind) DO NOTHING",
                [(project_id, kind, value, to_db_time(_now()))],
            )
            rows = self._query("SELECT cursor FROM sync_state WHERE project_id = ? AND kind = ?", (project_id, kind))
        return str(rows[0][0])

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

    def last_syncs(self) -> dict[int, datetime]:
        """When a sync of each project last completed, for every project synced at least once (one query)."""
        rows = self._query("SELECT project_id, cursor FROM sync_state WHERE kind = 'last_sync'")
        return {int(r[0]): t for r in rows if r[1] and (t := from_db_time(str(r[1]))) is not None}

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
                from cidash.store.pg import lease_lock_key

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
