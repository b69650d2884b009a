"""Running totals of the exported counters (``cidash serve``'s /metrics), each item counted once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from cidash.store.base import StoreBase
from cidash.store.rows import _now, to_db_time

#: kind -> (table, id column, condition): where :meth:`TotalsMixin.uncounted_ids` looks, through the table's
#: ``*_uncounted`` partial index (migration 6).
COUNTED_TABLES: dict[str, tuple[str, str, str]] = {
    "pipeline": ("pipelines", "id", " AND finished_at IS NOT NULL"),
    "job": ("jobs", "id", " AND finished_at IS NOT NULL"),
    "log": ("job_facts", "job_id", ""),
}


class TotalsMixin(StoreBase):
    """Running totals of the exported counters (``cidash serve``'s /metrics), each item counted once."""

    # -- running totals of the exported counters ---------------------------------------------------------------

    def uncounted_ids(self, project_id: int, kind: str) -> list[int]:
        """Ids of finished pipelines (``kind="pipeline"``), finished jobs (``"job"``) or jobs with parsed log facts
        (``"log"``) of the project that :meth:`add_metric_totals` has not counted yet, ascending.

        Reads only the rows not flagged ``counted`` (a partial index), so a refresh costs what changed, not the
        history. A row that is in ``metric_counted`` but not flagged (pruned, then synced again) is flagged here
        (unless the store is read-only), so it is looked at once."""
        if kind not in COUNTED_TABLES:
            raise ValueError(f"unknown kind {kind!r}")
        table, column, extra = COUNTED_TABLES[kind]
        sql = (
            f"SELECT {column}, EXISTS (SELECT 1 FROM metric_counted c WHERE c.kind = ? AND c.item_id = t.{column}) "
            f"FROM {table} t WHERE project_id = ? AND counted IS NULL{extra} ORDER BY 1"
        )
        rows = self._query(sql, (kind, project_id))
        seen = [(int(r[0]),) for r in rows if r[1]]
        if seen and not self.readonly:
            self._write(f"UPDATE {table} SET counted = 1 WHERE {column} = ?", seen)
        return [int(r[0]) for r in rows if not r[1]]

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
        items = list(counted)
        with self.transaction():
            self._write(
                "INSERT INTO metric_totals (project_id, name, labels, value, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(project_id, name, labels) DO UPDATE SET value = metric_totals.value + excluded.value, "
                "updated_at = excluded.updated_at",
                [(project_id, name, labels, float(v), when) for (name, labels), v in increments.items()],
            )
            self._write(
                "INSERT INTO metric_counted (project_id, kind, item_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(project_id, kind, item_id) for kind, item_id in items],
            )
            for kind, (table, column, _) in COUNTED_TABLES.items():
                ids = [(item_id,) for k, item_id in items if k == kind]
                if ids:
                    self._write(f"UPDATE {table} SET counted = 1 WHERE {column} = ?", ids)

    def metric_totals(self, project_id: int | None = None) -> list[tuple[int, str, str, float]]:
        """``(project_id, sample name, labels JSON, value)`` of the running totals, sorted."""
        sql = "SELECT project_id, name, labels, value FROM metric_totals"
        params: list[Any] = []
        if project_id is not None:
            sql += " WHERE project_id = ?"
            params.append(project_id)
        return [(int(r[0]), str(r[1]), str(r[2]), float(r[3])) for r in self._query(sql + " ORDER BY 1, 2, 3", params)]
