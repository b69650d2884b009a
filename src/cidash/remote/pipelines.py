"""Pipelines over the sync's HTTP client: the listing by update time and one pipeline's details."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from cidash.models import Pipeline
from cidash.remote.http import HttpClient
from cidash.remote.wire import RejectedRecord, WireLog, iso, pipeline_from_json

PER_PAGE = 100


def pipeline_pages(
    http: HttpClient, project_id: int, *, updated_after: datetime | None, log: WireLog | None = None
) -> Iterator[list[Pipeline]]:
    """Pipelines updated after a time, oldest update first, one list per API page (100).

    Ordered by ``updated_at`` ascending so a cursor can advance page by page: when a sync is killed, the next one
    continues after the last committed page instead of starting over. With ``log``, a record
    :mod:`cidash.remote.wire` rejects is left out and recorded there (without: it raises).
    """
    params: dict[str, Any] = {"order_by": "updated_at", "sort": "asc", "per_page": PER_PAGE}
    if updated_after is not None:
        params["updated_after"] = iso(updated_after)
    for page in http.get_link_pages(f"/projects/{project_id}/pipelines", params, missing="project"):
        accepted: list[Pipeline] = []
        for item in page:
            try:
                accepted.append(pipeline_from_json(project_id, item, log))
            except RejectedRecord as exc:
                if log is None:
                    raise
                log.reject(exc)
        if accepted:
            yield accepted


def pipeline(http: HttpClient, project_id: int, pipeline_id: int, log: WireLog | None = None) -> Pipeline:
    """One pipeline with the fields the listing omits (started_at, finished_at, duration, queued_duration).
    Raises :class:`~cidash.errors.NotFound` when GitLab no longer has it, :class:`RejectedRecord` for a bad one."""
    data = http.get_json(f"/projects/{project_id}/pipelines/{pipeline_id}", missing="resource")
    return pipeline_from_json(project_id, data, log)
