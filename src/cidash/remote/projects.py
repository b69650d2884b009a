"""Projects over the sync's HTTP client: one by path or id, and a group's projects (paths and JSON live here)."""

from __future__ import annotations

from urllib.parse import quote

from cidash.errors import AuthError, NotFound, PermissionDenied, Unsupported
from cidash.models import Project
from cidash.remote.http import HttpClient
from cidash.remote.wire import RejectedRecord, WireLog, is_decimal, project_from_json

PER_PAGE = 100


def project(http: HttpClient, ref: str | int) -> Project:
    """``GET /projects/:id`` by path (``group/name``) or id. Raises :class:`~cidash.errors.NotFound` (project)."""
    key = str(ref) if isinstance(ref, int) or is_decimal(str(ref)) else quote(str(ref), safe="")
    try:
        data = http.get_json(f"/projects/{key}", missing="project")
    except (NotFound, PermissionDenied, AuthError, Unsupported) as exc:
        if key == str(ref):
            raise
        # Say the path as the user wrote it (GET /projects/platform/app), not as it is sent (platform%2Fapp).
        raise type(exc)(
            exc.message.replace(f"/projects/{key}", f"/projects/{ref}"), status=exc.status, hint=exc.hint
        ) from None
    return project_from_json(data)


def group_projects(http: HttpClient, group: str, *, log: WireLog | None = None) -> list[Project]:
    """Every non-archived project of a group and its subgroups. With ``log``, a record the wire rejects is left
    out and recorded there (without: it raises)."""
    path = f"/groups/{quote(group, safe='')}/projects"
    params = {"include_subgroups": "true", "archived": "false", "per_page": PER_PAGE}
    out: list[Project] = []
    for page in http.get_link_pages(path, params, missing="group"):
        for item in page:
            try:
                out.append(project_from_json(item, log))
            except RejectedRecord as exc:
                if log is None:
                    raise
                log.reject(exc)
    return out
