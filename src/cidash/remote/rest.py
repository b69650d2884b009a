"""The GitLab REST API through python-gitlab: the only module that imports it.

Everything it returns is a :mod:`cidash.models` dataclass. python-gitlab is synchronous (built on
``requests``): call it from worker threads, never from an event loop. All requests go through
:class:`_AccountedSession`, which applies the shared rate limiter, retries transient failures a bounded number of
times (python-gitlab's own retry is off: it can sleep for minutes), counts requests and bytes, and turns
connection/TLS failures into :mod:`cidash.errors` exceptions without the token.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import gitlab
import gitlab.exceptions
import requests
import requests.adapters

from cidash.connection import Connection
from cidash.errors import ConnectError, RateLimited, RemoteError, TLSError
from cidash.models import Job, Pipeline, Project
from cidash.remote.policy import (
    RETRYABLE_STATUSES,
    Missing,
    RateLimiter,
    RequestStats,
    RetryPolicy,
    describe_network_error,
    error_for_status,
    parse_retry_after,
)

# JSON -> models lives in cidash.remote.wire (range-checked); re-exported here for existing importers.
from cidash.remote.wire import (
    RejectedRecord,
    WireLog,
    iso,
    job_from_json,
    parse_time,
    pipeline_from_json,
    project_from_json,
)

__all__ = [
    "PER_PAGE",
    "RestClient",
    "iso",
    "job_from_json",
    "parse_time",
    "pipeline_from_json",
    "project_from_json",
]

PER_PAGE = 100
_M = TypeVar("_M")


class _AccountedSession(requests.Session):
    """A ``requests`` session that rate-limits, retries, counts and maps errors for python-gitlab."""

    def __init__(self, limiter: RateLimiter, stats: RequestStats, retry: RetryPolicy, pool: int) -> None:
        super().__init__()
        self.limiter = limiter
        self.stats = stats
        self.retry = retry
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(pool, 4))
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        parts = urlsplit(url)
        what = f"{request.method} {parts.path}"
        attempt = 0
        while True:
            attempt += 1
            self.limiter.acquire()
            try:
                response = super().send(request, **kwargs)
                nbytes = 0 if kwargs.get("stream") else len(response.content)  # reads the body: may fail too
            except requests.exceptions.SSLError as exc:
                raise TLSError(
                    f"TLS handshake with {parts.netloc} failed: {_short(exc)}",
                    hint="check the URL, or set [gitlab] verify_tls = false / a CA bundle for self-signed certificates",
                ) from None
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                self.stats.record(request.method or "GET", parts.path, 599, 0)
                if attempt < self.retry.attempts:
                    self.stats.retried()
                    time.sleep(self.retry.delay(attempt))
                    continue
                raise ConnectError(f"cannot reach GitLab at {parts.scheme}://{parts.netloc}: {_short(exc)}") from None
            self.stats.record(request.method or "GET", parts.path, response.status_code, nbytes)
            self.limiter.observe(response.headers, response.status_code)
            if response.status_code in RETRYABLE_STATUSES:
                after = parse_retry_after(response.headers.get("Retry-After"))
                if attempt < self.retry.attempts:
                    self.stats.retried()
                    if response.status_code != 429:  # a 429 pause is taken by the limiter for every thread
                        time.sleep(self.retry.delay(attempt, after))
                    continue
                if response.status_code == 429:
                    raise RateLimited(f"rate limited (429) on {what}", retry_after=after, hint="lower [gitlab] max_rps")
            return response


def _short(exc: BaseException) -> str:
    """A short, token-free reason for a connection or TLS failure."""
    return describe_network_error(str(exc))


class RestClient:
    """Listings and lookups through python-gitlab, converted to :mod:`cidash.models`."""

    def __init__(
        self,
        connection: Connection,
        *,
        limiter: RateLimiter,
        stats: RequestStats,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.connection = connection
        self.session = _AccountedSession(limiter, stats, retry or RetryPolicy(), connection.concurrency + 2)
        token_kwargs: dict[str, str] = {}
        if connection.token is not None:
            key = {"private": "private_token", "job": "job_token", "oauth": "oauth_token"}[connection.token_kind]
            token_kwargs[key] = connection.token.reveal()
        self.gl = gitlab.Gitlab(
            connection.url,
            ssl_verify=connection.verify_tls,
            timeout=connection.timeout,
            per_page=PER_PAGE,
            retry_transient_errors=False,
            session=self.session,
            keep_base_url=True,
            **token_kwargs,
        )

    def close(self) -> None:
        self.session.close()

    @contextlib.contextmanager
    def _mapped(self, what: str, missing: Missing = "endpoint") -> Iterator[None]:
        try:
            yield
        except gitlab.exceptions.GitlabError as exc:
            status = exc.response_code or 0
            if status == 0:
                raise RemoteError(f"{what} failed: {exc.error_message}") from None
            message = exc.error_message if isinstance(exc.error_message, str) and status not in (401,) else None
            raise error_for_status(status, what, missing=missing, message=message) from None
        except requests.exceptions.RequestException as exc:
            raise ConnectError(f"{what} failed: {_short(exc)}") from None

    # -- projects ----------------------------------------------------------------------------------------------

    def project(self, ref: str | int) -> Project:
        """One project by path (``group/name``) or id."""
        key: str | int = int(ref) if isinstance(ref, str) and ref.isdigit() else ref
        with self._mapped(f"GET /projects/{ref}", "project"):
            obj = self.gl.projects.get(key)
        return project_from_json(obj.attributes)

    def group_projects(self, group: str, *, log: WireLog | None = None) -> list[Project]:
        """Every non-archived project of a group and its subgroups (``log``: as for :meth:`pipeline_pages`)."""
        with self._mapped(f"GET /groups/{group}/projects", "group"):
            grp = self.gl.groups.get(group, lazy=True)
            items = grp.projects.list(iterator=True, include_subgroups=True, archived=False, per_page=PER_PAGE)
            return list(_accepted((p.attributes for p in items), lambda d: project_from_json(d, log), log))

    # -- pipelines ---------------------------------------------------------------------------------------------

    def pipeline_pages(
        self, project_id: int, *, updated_after: datetime | None, log: WireLog | None = None
    ) -> Iterator[list[Pipeline]]:
        """Pipelines updated after a time, oldest update first, one list per API page (100).

        Ordered by ``updated_at`` ascending so a cursor can advance page by page: when a sync is killed, the next
        one continues after the last committed page instead of starting over. With ``log``, a record
        :mod:`cidash.remote.wire` rejects is left out and recorded there (without: it raises).
        """
        what = f"GET /projects/{project_id}/pipelines"
        params: dict[str, Any] = {"order_by": "updated_at", "sort": "asc", "per_page": PER_PAGE}
        if updated_after is not None:
            params["updated_after"] = iso(updated_after)
        with self._mapped(what, "project"):
            # http_list yields plain dicts: no RESTObject per item (python-gitlab deep-copies each one's attributes)
            listing = self.gl.http_list(f"/projects/{project_id}/pipelines", query_data=params, iterator=True)
            yield from _chunks(_accepted(listing, lambda p: pipeline_from_json(project_id, p, log), log), PER_PAGE)

    def pipeline(self, project_id: int, pipeline_id: int) -> Pipeline:
        """One pipeline with the fields the list omits (started_at, finished_at, duration, queued_duration)."""
        with self._mapped(f"GET /projects/{project_id}/pipelines/{pipeline_id}", "resource"):
            data = self.gl.http_get(f"/projects/{project_id}/pipelines/{pipeline_id}")
        if not isinstance(data, dict):
            raise RemoteError(f"GET /projects/{project_id}/pipelines/{pipeline_id} did not return an object")
        return pipeline_from_json(project_id, data)

    # -- jobs --------------------------------------------------------------------------------------------------

    def jobs_newest_first(self, project_id: int, *, log: WireLog | None = None) -> Iterator[Job]:
        """Every job of the project, newest (highest id) first, 100 per request; stop iterating when done.

        Why this endpoint: ``/projects/:id/jobs`` lists the jobs of *all* pipelines in one paginated stream, so
        a refresh that gained 40 jobs in 5 pipelines costs 1 request instead of 5 (one per pipeline via
        ``/pipelines/:id/jobs``), a first sync of 200 pipelines x 8 jobs costs 16 instead of 200, and retried
        jobs are included (the per-pipeline listing hides them unless ``include_retried``). Keyset pagination
        (``pagination=keyset&order_by=id&sort=desc``) stays cheap and stable however deep it goes, and the
        newest-first order lets the caller stop at the first page it already knows. ``log``: as for
        :meth:`pipeline_pages`.
        """
        what = f"GET /projects/{project_id}/jobs"
        params = {"pagination": "keyset", "order_by": "id", "sort": "desc", "per_page": PER_PAGE}
        with self._mapped(what, "project"):
            listing = self.gl.http_list(f"/projects/{project_id}/jobs", query_data=params, iterator=True)
            yield from _accepted(listing, lambda j: job_from_json(project_id, j, log), log)


def _accepted(items: Iterable[Any], convert: Callable[[Any], _M], log: WireLog | None) -> Iterator[_M]:
    """Converted items; a rejected one is recorded in ``log`` and left out (raised when there is no log)."""
    for item in items:
        try:
            yield convert(item)
        except RejectedRecord as exc:
            if log is None:
                raise
            log.reject(exc)


def _chunks(items: Iterable[Pipeline], size: int) -> Iterator[list[Pipeline]]:
    chunk: list[Pipeline] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
