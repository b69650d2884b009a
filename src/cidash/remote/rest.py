"""The GitLab REST API through python-gitlab: the only module that imports it.

Everything it returns is a :mod:`cidash.models` dataclass. python-gitlab is synchronous (built on
``requests``): call it from worker threads, never from an event loop. All requests go through
:class:`_AccountedSession`, which applies the shared rate limiter, retries transient failures a bounded number of
times (python-gitlab's own retry is off: it can sleep for minutes), counts requests and bytes, and turns
connection/TLS failures into :mod:`cidash.errors` exceptions without the token.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import gitlab
import gitlab.exceptions
import requests
import requests.adapters

from cidash.connection import Connection, warn_if_insecure
from cidash.errors import (
    BadPayload,
    ConnectError,
    PaginationError,
    RateLimited,
    RedirectRefused,
    RemoteError,
    TLSError,
    TruncatedBody,
)
from cidash.models import Job, Pipeline, Project
from cidash.remote import policy
from cidash.remote.policy import (
    MAX_REDIRECTS,
    RETRYABLE_STATUSES,
    Missing,
    PageGuard,
    RateLimiter,
    RequestStats,
    RetryPolicy,
    describe_network_error,
    endpoint_kind,
    error_for_status,
    parse_retry_after,
    read_json,
    same_origin,
    show_origin,
    too_long,
)

# JSON -> models lives in cidash.remote.wire (range-checked); re-exported here for existing importers.
from cidash.remote.wire import (
    RejectedRecord,
    WireLog,
    is_decimal,
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
    """A ``requests`` session that rate-limits, retries, counts and maps errors for python-gitlab, and keeps the
    credential on the configured origin.

    ``requests`` keeps custom headers such as ``PRIVATE-TOKEN`` on a redirect to another host (it strips only
    ``Authorization``), so every request and every redirect hop is checked here: one that would leave the
    configured origin (scheme, host, port) is refused with :class:`RedirectRefused` before anything is sent.
    Every answer python-gitlab reads is JSON: a 2xx whose body is not (a proxy's HTML page, an empty or cut
    JSON body) is retried like a transient error, then raised as :class:`BadPayload`.
    """

    def __init__(
        self, limiter: RateLimiter, stats: RequestStats, retry: RetryPolicy, pool: int, *, origin: str = ""
    ) -> None:
        super().__init__()
        self.limiter = limiter
        self.stats = stats
        self.retry = retry
        self.origin = origin
        self.max_redirects = MAX_REDIRECTS
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max(pool, 4))
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target is not None and self.origin:
            absolute = urljoin(resp.url or self.origin, target)
            if not same_origin(absolute, self.origin):
                method = resp.request.method if resp.request is not None else "GET"
                raise RedirectRefused(
                    f"{method} {urlsplit(resp.url or '').path} was redirected to another origin "
                    f"({show_origin(absolute)}); not followed: cidash sends its credentials only to "
                    f"{show_origin(self.origin)}",
                    hint="if GitLab moved, set [gitlab] url to its new address",
                )
        return target

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = request.url or ""
        parts = urlsplit(url)
        what = f"{request.method} {parts.path}"
        if self.origin and not same_origin(url, self.origin):
            raise RedirectRefused(
                f"refused to send {what} to {show_origin(url)}: cidash sends its credentials only to "
                f"{show_origin(self.origin)}"
            )
        idempotent = request.method in ("GET", "HEAD")
        attempt = 0
        while True:
            attempt += 1
            ticket = self.limiter.enter(endpoint_kind(request.method or "GET", parts.path))
            answered: int | None = None
            try:
                try:
                    response = super().send(request, **{**kwargs, "stream": True})
                    answered = response.status_code
                    nbytes = 0 if kwargs.get("stream") else _read_capped(response, what)  # may fail too
                finally:
                    self.limiter.leave(ticket, answered)  # the slot is free before any retry pause
            except requests.exceptions.SSLError as exc:
                raise TLSError(
                    f"TLS handshake with {parts.netloc} failed: {_short(exc)}",
                    hint="check the URL, or set [gitlab] ca_file to your CA bundle, or verify_tls = false",
                ) from None
            except requests.TooManyRedirects:
                raise RedirectRefused(f"{what}: more than {MAX_REDIRECTS} redirects; not followed") from None
            except _TRANSPORT_ERRORS as exc:
                self.stats.record(request.method or "GET", parts.path, 599, 0)
                if attempt < self.retry.attempts:
                    self.stats.retried()
                    time.sleep(self.retry.delay(attempt))
                    continue
                if isinstance(exc, _INCOMPLETE_ERRORS):
                    raise TruncatedBody(
                        f"incomplete answer from GitLab at {parts.scheme}://{parts.netloc} on {what}: "
                        f"{_incomplete(exc)} ({attempt} tries)"
                    ) from None
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
            if _answers_json(request, response, kwargs):
                data, problem, lossy = read_json(response.content, response.headers.get("content-type"))
                if lossy:  # python-gitlab parses it again, with json's own refusal of a huge integer: hand it ours
                    response._content = json.dumps(data).encode()
                if problem is not None:
                    self.stats.record(request.method or "GET", parts.path, 599, 0)
                    if idempotent and attempt < self.retry.attempts:
                        self.stats.retried()
                        time.sleep(self.retry.delay(attempt))
                        continue
                    raise BadPayload(
                        f"GitLab at {parts.scheme}://{parts.netloc} answered {what} with {problem} ({attempt} tries)"
                    )
            return response


def _read_capped(response: requests.Response, what: str) -> int:
    """Read the body as ``response.content`` would (decoded), refusing one past
    :data:`~cidash.remote.policy.MAX_ANSWER_BYTES` with :class:`BadPayload` before it fills the memory."""
    parts: list[bytes] = []
    size = 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > policy.MAX_ANSWER_BYTES:
            response.close()
            raise BadPayload(f"GitLab answered {what} with {too_long(size)}")
        parts.append(chunk)
    response._content = b"".join(parts)
    return size


#: Failures with no usable answer: retried, then ConnectError (TruncatedBody for a body cut short / misframed).
_INCOMPLETE_ERRORS: tuple[type[Exception], ...] = (
    requests.exceptions.ChunkedEncodingError,  # urllib3 2's enforce_content_length, a cut chunked body
    requests.exceptions.ContentDecodingError,  # a gzip body cut short
    requests.exceptions.InvalidHeader,  # conflicting Content-Length headers
)
_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (requests.ConnectionError, requests.Timeout, *_INCOMPLETE_ERRORS)


def _short(exc: BaseException) -> str:
    """A short, token-free reason for a connection or TLS failure."""
    return describe_network_error(str(exc))


def _incomplete(exc: BaseException) -> str:
    """A short reason for a body that did not end as framed."""
    if isinstance(exc, requests.exceptions.InvalidHeader):
        return "conflicting Content-Length headers"
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return "gzip body ended early"
    return "body ended before its Content-Length or chunked end"


def _answers_json(request: requests.PreparedRequest, response: requests.Response, kwargs: dict[str, Any]) -> bool:
    """Whether this answer must be JSON: a 2xx with a body, read whole, of an endpoint that answers JSON."""
    if not 200 <= response.status_code < 300 or response.status_code == 204 or request.method == "HEAD":
        return False
    if kwargs.get("stream"):
        return False
    path = urlsplit(request.url or "").path
    return not path.endswith(("/trace", "/raw", "/artifacts"))


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
        self.session = _AccountedSession(
            limiter, stats, retry or RetryPolicy(), connection.concurrency + 2, origin=connection.url
        )
        token_kwargs: dict[str, str] = {}
        if connection.token is not None:
            key = {"private": "private_token", "job": "job_token", "oauth": "oauth_token"}[connection.token_kind]
            token_kwargs[key] = connection.token.reveal()
        warn_if_insecure(connection)
        self.gl = gitlab.Gitlab(
            connection.url,
            ssl_verify=connection.tls_verify(),  # the same CA bundle as the http.client/httpx paths
            timeout=connection.timeout,
            per_page=PER_PAGE,
            retry_transient_errors=False,
            session=self.session,
            keep_base_url=True,
            **token_kwargs,
        )
        self._api_path = urlsplit(connection.api_url).path.rstrip("/")

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
            raise error_for_status(
                status, what, missing=missing, message=message, token_sent=self.connection.token is not None
            ) from None
        except requests.exceptions.RequestException as exc:
            raise ConnectError(f"{what} failed: {_short(exc)}") from None

    def pages(
        self, path: str, params: dict[str, Any], *, missing: Missing = "endpoint"
    ) -> Iterator[list[dict[str, Any]]]:
        """The pages of a listing (offset or keyset), one list of JSON objects per request, following ``Link:
        rel="next"`` (else ``X-Next-Page``).

        Every next link is taken as a path and query under the API on the **configured** origin (as
        python-gitlab's ``keep_base_url``): a link naming another host is never followed there. A next page
        already read (a loop, or a keyset cursor that does not advance) ends the listing with
        :class:`PaginationError` naming the endpoint, as does running past ``MAX_PAGES``.
        """
        what = f"GET {path}"
        guard = PageGuard(what)
        url, query = path, dict(params)
        guard.visit(_page_key(path, urlencode(query, doseq=True)))
        while True:
            with self._mapped(what, missing):
                response = self.gl.http_request("get", url, query_data=query)
            data = response.json()  # checked by the session: a 2xx here is JSON
            if not isinstance(data, list):
                raise BadPayload(f"{what} did not return a list")
            yield data
            if not data:
                return
            nxt = self._next_page(response, url, query, what)
            if nxt is None:
                return
            guard.visit(_page_key(*nxt), describe='the "next" link')
            # the query stays in the URL (python-gitlab splits it into lists, so repeated keys like scope[] survive)
            url, query = f"{nxt[0]}?{nxt[1]}", {}

    def _next_page(
        self, response: requests.Response, url: str, query: dict[str, Any], what: str
    ) -> tuple[str, str] | None:
        """(path under the API, query string) of the next page, or None at the end."""
        path, _, in_url = url.partition("?")
        if in_url:
            query = {**dict(parse_qsl(in_url, keep_blank_values=True)), **query}
        link = (response.links.get("next") or {}).get("url")
        if link:
            parts = urlsplit(link)
            if not parts.path.startswith(self._api_path + "/"):
                raise PaginationError(f'{what}: the "next" link leaves the API; listing stopped')
            return parts.path[len(self._api_path) :], parts.query
        page = (response.headers.get("x-next-page") or "").strip()
        if not page:
            return None
        if not is_decimal(page):
            raise PaginationError(f"{what}: X-Next-Page {page[:20]!r} is not a page number")
        return path, urlencode({**query, "page": page}, doseq=True)

    # -- projects ----------------------------------------------------------------------------------------------

    def project(self, ref: str | int) -> Project:
        """One project by path (``group/name``) or id."""
        key: str | int = int(ref) if isinstance(ref, str) and is_decimal(ref) else ref
        with self._mapped(f"GET /projects/{ref}", "project"):
            obj = self.gl.projects.get(key)
        return project_from_json(obj.attributes)

    # -- pipelines ---------------------------------------------------------------------------------------------

    def pipeline_pages(
        self, project_id: int, *, updated_after: datetime | None, log: WireLog | None = None
    ) -> Iterator[list[Pipeline]]:
        """Pipelines updated after a time, oldest update first, one list per API page (100).

        Ordered by ``updated_at`` ascending so a cursor can advance page by page: when a sync is killed, the next
        one continues after the last committed page instead of starting over. With ``log``, a record
        :mod:`cidash.remote.wire` rejects is left out and recorded there (without: it raises).
        """
        params: dict[str, Any] = {"order_by": "updated_at", "sort": "asc", "per_page": PER_PAGE}
        if updated_after is not None:
            params["updated_after"] = iso(updated_after)
        # plain dicts: no RESTObject per item (python-gitlab deep-copies each one's attributes)
        for page in self.pages(f"/projects/{project_id}/pipelines", params, missing="project"):
            if page:
                accepted = list(_accepted(page, lambda p: pipeline_from_json(project_id, p, log), log))
                if accepted:
                    yield accepted

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
        newest-first order lets the caller stop at the first page it already knows. A page that does not go
        below the previous page's oldest id (a cursor that does not advance) ends it with PaginationError.
        ``log``: as for :meth:`pipeline_pages`.
        """
        path = f"/projects/{project_id}/jobs"
        params = {"pagination": "keyset", "order_by": "id", "sort": "desc", "per_page": PER_PAGE}
        floor: int | None = None
        for page in self.pages(path, params, missing="project"):
            jobs = list(_accepted(page, lambda j: job_from_json(project_id, j, log), log))
            if jobs and floor is not None and max(j.id for j in jobs) >= floor:
                raise PaginationError(f"GET {path}: the keyset cursor does not advance; listing stopped")
            if jobs:
                floor = min(j.id for j in jobs)
            yield from jobs


def _accepted(items: Iterable[Any], convert: Callable[[Any], _M], log: WireLog | None) -> Iterator[_M]:
    """Converted items; a rejected one is recorded in ``log`` and left out (raised when there is no log)."""
    for item in items:
        try:
            yield convert(item)
        except RejectedRecord as exc:
            if log is None:
                raise
            log.reject(exc)


def _page_key(path: str, query: str) -> str:
    """A page's identity for the loop check: its path and its query parameters in a fixed order."""
    return path + "?" + urlencode(sorted(parse_qsl(query, keep_blank_values=True)))
