"""The audit log of every mutating action."""

from __future__ import annotations

import json
from typing import Any

from cidash.models import AuditRecord
from cidash.store.base import StoreBase
from cidash.store.rows import _req_time, to_db_time


class AuditMixin(StoreBase):
    """The audit log of every mutating action."""

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
