"""Pruning old history, and row counts."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cidash.store.base import StoreBase
from cidash.store.rows import to_db_time


class RetentionMixin(StoreBase):
    """Pruning old history, and row counts."""

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
