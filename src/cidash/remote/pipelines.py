"""Pipelines over the sync's HTTP client: the listing by update time and one pipeline's details."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from cidash.models import Pipeline
from cidash.remote.http import HttpClient
from cidash.remote.wire import (
    RejectedRecord,
    WireLog,
    iso,
    pipeline_details_from_graphql,
    pipeline_from_json,
    show,
)

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


#: Pipelines asked for in one GraphQL query. GitLab refuses a signed-in user's query whose complexity passes 250
#: (``GitlabSchema``, docs "GraphQL API: max query complexity"): a field costs 1 plus its children (``Types::
#: BaseField``: a field with a resolver counts its resolver's 1 and its children), so ``project`` costs 1 and
#: each ``pipeline(iid:)`` with its six fields 7: 30 pipelines make 211, with room for a server that counts more.
GRAPHQL_PIPELINES = 30

#: ``id`` (a global ID, ``gid://gitlab/Ci::Pipeline/<id>``) proves a node is the pipeline asked for: pipeline ids
#: are the instance's, so another project found at a stale path cannot pass its pipelines for this one's.
_DETAIL_FIELDS = "id iid startedAt finishedAt duration queuedDuration"


class GraphQLRefused(Exception):
    """GitLab's GraphQL API did not give the details (errors, no such project for this token): the caller asks
    the REST API instead. ``str()`` says why, in cidash's words (GitLab's own text shown, never raw);
    ``project_only``: the refusal is about this project (GraphQL does not show it), not the instance."""

    def __init__(self, message: str, *, project_only: bool = False) -> None:
        super().__init__(message)
        self.project_only = project_only


def pipeline_details(
    http: HttpClient, project_path: str, listed: list[Pipeline], log: WireLog | None = None
) -> dict[int, Pipeline]:
    """The details the REST listing omits (started_at, finished_at, duration, queued_duration) of up to
    :data:`GRAPHQL_PIPELINES` pipelines in one GraphQL query, by iid (``project(fullPath:) { pN: pipeline(iid:)
    {...} }``; GitLab resolves the aliases in one batch), instead of one REST request per pipeline.

    Returns the pipelines it could fill in, by id; one GitLab did not name (deleted, another iid, an unusable node)
    is left out for the caller to ask the REST API about. Raises :class:`GraphQLRefused` when the answer carries
    errors or no project, and what :meth:`HttpClient.graphql` raises for a failed request."""
    asked = {f"p{n}": p for n, p in enumerate(listed) if p.iid is not None}
    if not asked:
        return {}
    fields = " ".join(f'{alias}: pipeline(iid: "{p.iid}") {{ {_DETAIL_FIELDS} }}' for alias, p in asked.items())
    answer = http.graphql(f"query($path: ID!) {{ project(fullPath: $path) {{ {fields} }} }}", {"path": project_path})
    project = _project(answer)
    found: dict[int, Pipeline] = {}
    for alias, pipeline in asked.items():
        detailed = pipeline_details_from_graphql(pipeline, project.get(alias), log)
        if detailed is not None:
            found[pipeline.id] = detailed
    return found


def graphql_probe(http: HttpClient, project_path: str) -> None:
    """Whether GitLab's GraphQL API shows ``project_path`` to this token (what the sync's details query needs):
    returns, or raises :class:`GraphQLRefused` / what :meth:`HttpClient.graphql` raises. One request."""
    _project(http.graphql("query($path: ID!) { project(fullPath: $path) { id } }", {"path": project_path}))


def _project(answer: Any) -> dict[str, Any]:
    """The ``project`` object of a GraphQL answer, or :class:`GraphQLRefused` saying why there is none."""
    errors = answer.get("errors") if isinstance(answer, dict) else None
    if errors:
        first = errors[0] if isinstance(errors, list) and errors else errors
        message = first.get("message") if isinstance(first, dict) else first
        raise GraphQLRefused(f"GitLab's GraphQL API answered with an error: {show(message, 200)}")
    data = answer.get("data") if isinstance(answer, dict) else None
    project = data.get("project") if isinstance(data, dict) else None
    if not isinstance(project, dict):
        raise GraphQLRefused("GitLab's GraphQL API does not show this project to this token", project_only=True)
    return project
