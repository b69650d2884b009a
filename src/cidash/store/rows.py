"""Rows and models: store times, the portable upsert, the row <-> model converters and shared filters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cidash.models import Job, Pipeline

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


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
