"""CI-image tags seen in the container registry."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from cidash.models import ImageTag, StoredImageTag
from cidash.store.base import StoreBase
from cidash.store.rows import _now, _req_time, from_db_time, to_db_time


class RegistryMixin(StoreBase):
    """CI-image tags seen in the container registry."""

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
