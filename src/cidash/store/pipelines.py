"""Projects, pipelines and jobs: the sync's upserts and the reads over them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from cidash.models import Job, Pipeline, Project
from cidash.store.base import StoreBase
from cidash.store.rows import PIPELINE_COLUMNS, _filters, _job, _now, pipeline_from_row, to_db_time


class PipelinesMixin(StoreBase):
    """Projects, pipelines and jobs: the sync's upserts and the reads over them."""

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
        with self.transaction():
            self._write(
                f"INSERT INTO pipelines ({PIPELINE_COLUMNS}, synced_at) VALUES ({', '.join('?' * 15)}) "
                f"ON CONFLICT(id) DO UPDATE SET {updates}",
                rows,
            )
            self._run(lambda: self._copy_job_columns(pipelines=[(r[0], r[1]) for r in rows]))
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
        with self.transaction():
            self._write(
                f"INSERT INTO jobs ({self._JOB_COLS}, synced_at) VALUES ({', '.join('?' * 19)}) "
                f"ON CONFLICT(id) DO UPDATE SET {updates}",
                rows,
            )
            self._run(lambda: self._copy_job_columns(job_ids=[r[1] for r in rows]))
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
                from cidash.store.pg import glob_to_regex

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
