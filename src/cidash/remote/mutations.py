"""The GitLab side of :mod:`cidash.actions`: the reads a plan needs and the mutating calls (play, retry, cancel,
create pipeline), over the sync's own HTTP client (:class:`cidash.remote.http.HttpClient`).

Built on :class:`cidash.remote.GitLabClient`: reads are the client's GETs (shared rate limiter, request counters,
bounded retries of transient errors, every limit on what an answer may be). A mutating call is
:meth:`~cidash.remote.http.HttpClient.post_json`: sent once, **without** retries of 5xx answers and dropped
connections, never re-sent to a redirect's address: a ``POST .../pipeline`` that timed out may have created the
pipeline, and sending it again would create a second one. Only ``429 Too Many Requests`` (GitLab did not process
the request) is sent again, at most ``MUTATION_ATTEMPTS`` times, each after the pause the shared limiter takes from
``Retry-After``.

Implements :class:`cidash.actions.ActionRemote`; returns :mod:`cidash.models` dataclasses only.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import quote

from cidash.errors import ActionHttpError, BadPayload, ConnectError, RemoteError
from cidash.models import API_PREFIX, FileChecksum, HttpCall, Job, Pipeline, Project
from cidash.remote import GitLabClient
from cidash.remote.policy import Missing, parse_retry_after
from cidash.remote.wire import (
    RejectedRecord,
    is_decimal,
    is_object_id,
    job_from_json,
    pipeline_from_json,
    project_from_json,
    show,
)
from cidash.textsafe import storable

#: Tries per mutating call when GitLab answers 429 (the pause between them is the limiter's Retry-After wait).
MUTATION_ATTEMPTS = 3
#: Longest Retry-After a mutation waits for; beyond it the call is reported as rate limited straight away.
MAX_MUTATION_WAIT = 60.0
#: Jobs looked at by the duplicate guard (active jobs are few; one page).
ACTIVE_SCOPES = ("created", "pending", "running", "waiting_for_resource")
#: Pages of active jobs the duplicate guard reads at most (100 each).
MAX_ACTIVE_PAGES = 5


def _server_message(data: object) -> str:
    """GitLab's ``message`` (or ``error``) in an error answer's JSON, in words: ``{"base": ["Reference not found"]}``
    -> ``Reference not found``."""
    msg: object = None
    if isinstance(data, dict):
        msg = data.get("message", data.get("error"))
    if isinstance(msg, dict):
        parts: list[str] = []
        for key, value in msg.items():
            values = value if isinstance(value, list) else [value]
            parts.extend(str(v) if key == "base" else f"{key} {v}" for v in values)
        msg = "; ".join(parts)
    return str(msg or "")[:300]


def _named(item: object, name: str) -> bool:
    return isinstance(item, dict) and item.get("name") == name


class ActionsRemote:
    """:class:`cidash.actions.ActionRemote` over a :class:`GitLabClient`. Call from a worker thread (blocking)."""

    def __init__(self, client: GitLabClient, *, owns_client: bool = False) -> None:
        self.client = client
        self.owns_client = owns_client  # close() also closes the client

    def close(self) -> None:
        if self.owns_client:
            self.client.close()

    # -- reads -------------------------------------------------------------------------------------------------

    def _get(self, path: str, query: dict[str, Any] | None = None, *, missing: Missing = "resource") -> Any:
        return self.client.http.get_json(path, params=query or None, missing=missing)

    def project(self, ident: str | int) -> Project:
        key = str(ident)
        path = f"/projects/{key if is_decimal(key) else quote(key, safe='')}"
        data = self._get(path, missing="project")
        return project_from_json(data)

    def username(self) -> str | None:
        """The token's GitLab username (``GET /user``); None for a job token or when GitLab will not say."""
        if self.client.connection.token is None or self.client.connection.token_kind == "job":
            return None
        try:
            data = self._get("/user")
        except RemoteError:
            return None
        name = data.get("username") if isinstance(data, dict) else None
        return storable(name) if isinstance(name, str) and name else None  # shown, and kept in the audit table

    def latest_pipeline(self, project_id: int, ref: str) -> Pipeline | None:
        data = self._get(
            f"/projects/{project_id}/pipelines",
            {"ref": ref, "order_by": "id", "sort": "desc", "per_page": 1},
            missing="project",
        )
        if not isinstance(data, list):
            raise BadPayload(f"GET /projects/{project_id}/pipelines did not return a list")
        return pipeline_from_json(project_id, data[0]) if data else None

    def pipeline_jobs(self, project_id: int, pipeline_id: int) -> list[Job]:
        """The pipeline's jobs; a record the wire rejects is left out (the others are still shown)."""
        data = self._get(f"/projects/{project_id}/pipelines/{pipeline_id}/jobs", {"per_page": 100})
        if not isinstance(data, list):
            raise BadPayload(f"GET /projects/{project_id}/pipelines/{pipeline_id}/jobs did not return a list")
        jobs: list[Job] = []
        for d in data:
            with contextlib.suppress(RejectedRecord):
                jobs.append(job_from_json(project_id, d))
        return jobs

    def active_jobs(self, project_id: int, name: str) -> list[Job]:
        """Jobs named ``name`` that are created/pending/running/waiting, newest first.

        One request for most projects: GitLab filters by status (``scope[]``), so only jobs on their way come
        back, 100 per page; at most ``MAX_ACTIVE_PAGES`` pages are read.
        """
        path = f"/projects/{project_id}/jobs"
        out: list[Job] = []
        params = {"scope[]": list(ACTIVE_SCOPES), "per_page": 100}
        pages = self.client.http.get_link_pages(path, params, missing="project")
        for n, page in enumerate(pages):
            out.extend(job_from_json(project_id, item) for item in page if _named(item, name))
            if n + 1 >= MAX_ACTIVE_PAGES:
                break
        return out

    def job(self, project_id: int, job_id: int) -> Job:
        return job_from_json(project_id, self._get(f"/projects/{project_id}/jobs/{job_id}"))

    def ref_head(self, project_id: int, ref: str) -> str | None:
        """The commit ``ref`` points at (``GET .../repository/commits/:ref``); None if there is no such ref."""
        try:
            data = self._get(f"/projects/{project_id}/repository/commits/{quote(ref, safe='')}")
        except RemoteError as exc:
            if exc.status == 404:
                return None
            raise
        sha = data.get("id") if isinstance(data, dict) else None
        if not is_object_id(sha):
            # the files' checksums and keys are asked for at it: never at whatever text came
            raise BadPayload(f"GET repository/commits/{show(ref)}: {show(sha)} is not a commit id")
        return sha

    def file_head(self, project_id: int, path: str, ref: str) -> FileChecksum | None:
        """The repository-files HEAD headers of ``path`` at ``ref`` (None: no such file there)."""
        head = self.client.http.file_head(project_id, path, ref)
        if head is None:
            return None
        return FileChecksum(
            project_id=project_id,
            sha=ref,
            path=path,
            blob_id=head.blob_id,
            last_commit_id=head.last_commit_id,
            content_sha256=head.content_sha256,
        )

    def file_raw(self, project_id: int, path: str, ref: str) -> bytes | None:
        return self.client.http.file_raw(project_id, path, ref)

    # -- the mutating call -------------------------------------------------------------------------------------

    def send(self, call: HttpCall) -> Job | Pipeline:
        """Send one planned call exactly as planned; a pipeline for ``.../pipeline``, else the job GitLab returns."""
        if call.method != "POST" or not call.path.startswith(API_PREFIX + "/projects/"):
            raise RemoteError(f"not a mutation cidash makes: {call.line}")
        path = call.path[len(API_PREFIX) :]
        project_id = int(path.split("/")[2])
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = self.client.http.post_json(path, dict(call.body) if call.body else None)
            except ConnectError as exc:  # no complete answer (incl. a cut or garbled body): never sent again
                raise type(exc)(f"{call.line}: {exc.message}: it may or may not have taken effect") from None
            status = reply.status_code
            if status == 429:
                wait = parse_retry_after(reply.headers.get("Retry-After")) or 1.0
                if attempt >= MUTATION_ATTEMPTS or wait > MAX_MUTATION_WAIT:
                    raise ActionHttpError(
                        f"rate limited (429) on {call.line}", status=429, call=call, server_message="429"
                    )
                continue  # the shared limiter already holds every sender back until Retry-After has passed
            if status >= 300:
                try:
                    message = _server_message(reply.json())
                except ValueError:
                    message = ""
                raise ActionHttpError(
                    f"GitLab answered {status} on {call.line}" + (f": {message}" if message and status != 401 else ""),
                    status=status,
                    call=call,
                    server_message=message if status != 401 else "",
                )
            data = reply.data
            break
        if not isinstance(data, dict):
            raise RemoteError(f"{call.line} returned something that is not a JSON object")
        if path.endswith("/pipeline"):
            return pipeline_from_json(project_id, data)
        return job_from_json(project_id, data)
