"""Repository files at each pipeline SHA, the CI config text and the resource groups."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from cidash.models import CiConfig, FileChecksum, ResourceGroup
from cidash.store.base import StoreBase
from cidash.store.rows import _now, to_db_time, upsert_sql


class RepositoryMixin(StoreBase):
    """Repository files at each pipeline SHA, the CI config text and the resource groups."""

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
