"""Running totals of the exported counters (``cidash serve``'s /metrics), each item counted once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from cidash.store.base import StoreBase
from cidash.store.rows import _now, to_db_time


class TotalsMixin(StoreBase):
    """Running totals of the exported counters (``cidash serve``'s /metrics), each item counted once."""

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
