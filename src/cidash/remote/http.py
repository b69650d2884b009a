"""Job logs, repository-file checksums, the container registry and resource groups, over plain HTTP/1.1.

These are the many small (or streamed) requests of a sync; they run in the sync's bounded worker pool, each
worker thread with its own keep-alive ``http.client`` connection (httpx, imported only then, for redirects and
proxies). Thread-safe. Every request passes the shared
:class:`~cidash.remote.policy.RateLimiter`, is retried a bounded number of times on 429/5xx/connection errors,
counted in :class:`~cidash.remote.policy.RequestStats`, and mapped to :mod:`cidash.errors` (never with the token).
"""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import ssl
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from cidash.connection import Connection
from cidash.errors import ConnectError, RateLimited, RemoteError, TLSError
from cidash.models import ImageTag, ResourceGroup
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
from cidash.remote.wire import WireLog, image_tag_from_json

if TYPE_CHECKING:
    import httpx

CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class _Headers(dict[str, str]):
    """Response headers, looked up case-insensitively (keys are stored lower-case)."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)


@dataclass(frozen=True)
class _Reply:
    """A finished response: status, headers, and the body (empty when it was streamed into a sink)."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class _TransportFailure(Exception):
    """No HTTP answer (connection refused/reset, timeout, TLS): ``text`` describes it without the token."""

    def __init__(self, text: str, *, tls: bool) -> None:
        super().__init__(text)
        self.text = text
        self.tls = tls


def _decoder(encoding: str) -> Any:
    """A streaming decompressor for a ``Content-Encoding`` (None: identity)."""
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    return None


def _peer_closed(sock: socket.socket) -> bool:
    """True when an idle keep-alive socket is readable: the server closed it (or sent something unasked)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


@dataclass(frozen=True)
class FileHead:
    """The repository-files HEAD headers of one file at one ref."""

    blob_id: str | None
    last_commit_id: str | None
    content_sha256: str | None


@dataclass(frozen=True)
class RegistryRepository:
    id: int
    path: str
    location: str | None


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """What httpx builds for ``verify``: certifi's CA bundle (or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), a CA file or
    directory, or no verification."""
    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _proxied(scheme: str, host: str) -> bool:
    """Whether the environment routes requests to ``host`` through a proxy (then httpx, which speaks proxy)."""
    proxies = urllib.request.getproxies()
    if not (proxies.get(scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(host)


def _is_tls_error(exc: BaseException) -> bool:
    text = repr(exc).lower()
    return "ssl" in text or "certificate" in text or "tls" in text


class HttpClient:
    def __init__(
        self,
        connection: Connection,
        *,
        limiter: RateLimiter,
        stats: RequestStats,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.connection = connection
        self.limiter = limiter
        self.stats = stats
        self.retry = retry or RetryPolicy()
        self._local = threading.local()
        #: Every thread's client, so close() reaches them all and a finished thread's connection is not kept open.
        self._clients: list[tuple[threading.Thread, httpx.Client]] = []
        self._clients_lock = threading.Lock()
        self._ssl_context: ssl.SSLContext | None = None
        # The many small requests of a sync go over one plain http.client connection per thread (httpx costs ~3x
        # the CPU per request, which a sync of thousands of requests on a busy machine feels); httpx still serves
        # redirects and proxied setups (HTTP(S)_PROXY / ALL_PROXY apply to the GitLab host).
        api = urlsplit(connection.api_url)
        self._scheme = api.scheme.lower()
        self._host = api.hostname or ""
        self._port = api.port
        self._base_path = api.path.rstrip("/")
        self._headers = {**connection.auth_headers(), "User-Agent": "cidash", "Accept-Encoding": "gzip"}
        self._fast_conns: list[tuple[threading.Thread, http.client.HTTPConnection]] = []
        self._fast = self._scheme in ("http", "https") and bool(self._host) and not _proxied(self._scheme, self._host)

    def _context(self) -> ssl.SSLContext:
        """The TLS context, built once (loading the CA bundle costs ~25 ms of CPU) and shared by all connections."""
        with self._clients_lock:
            if self._ssl_context is None:
                self._ssl_context = _ssl_context(self.connection.verify_tls)
            return self._ssl_context

    def _new_client(self) -> httpx.Client:
        import httpx  # only for redirects and proxies: the import alone costs ~0.2 s of CPU

        context = self._context()
        return httpx.Client(
            base_url=self.connection.api_url,
            headers={**self.connection.auth_headers(), "User-Agent": "cidash"},
            verify=context,
            timeout=self.connection.timeout,
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
            follow_redirects=True,
        )

    @property
    def client(self) -> httpx.Client:
        """This thread's ``httpx.Client`` (one keep-alive connection per worker thread).

        One client shared by all workers costs more CPU than the requests themselves: httpcore's pool takes one
        lock on every request and response close, and re-checks every pooled connection under it (a ``poll()`` per
        idle socket), so 16 workers queue on it (and on the GIL handed back and forth while they wait). A client
        per thread keeps the keep-alive reuse without the shared lock; the sync's pool bounds the connections.
        """
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None or client.is_closed:
            client = self._new_client()
            with self._clients_lock:
                gone = [c for t, c in self._clients if not t.is_alive()]
                self._clients = [(t, c) for t, c in self._clients if t.is_alive()]
                self._clients.append((threading.current_thread(), client))
            for old in gone:
                old.close()
            self._local.client = client
        return client

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
            fast, self._fast_conns = self._fast_conns, []
        for _, client in clients:
            client.close()
        for _, conn in fast:
            conn.close()

    # -- plumbing ----------------------------------------------------------------------------------------------

    def _fast_connection(self) -> http.client.HTTPConnection | None:
        """This thread's plain ``http.client`` connection (None: requests go through httpx, e.g. via a proxy)."""
        if not self._fast:
            return None
        conn: http.client.HTTPConnection | None = getattr(self._local, "fast", None)
        if conn is not None and conn.sock is not None and _peer_closed(conn.sock):
            conn.close()  # the server closed the idle keep-alive connection: reconnect rather than fail
        if conn is None:
            timeout = self.connection.timeout
            if self._scheme == "https":
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=self._context())
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            with self._clients_lock:
                gone = [c for t, c in self._fast_conns if not t.is_alive()]
                self._fast_conns = [(t, c) for t, c in self._fast_conns if t.is_alive()]
                self._fast_conns.append((threading.current_thread(), conn))
            for old in gone:
                old.close()
            self._local.fast = conn
        return conn

    def _send_fast(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        sink_factory: Callable[[], Callable[[bytes], None]] | None,
    ) -> _Reply | None:
        """One request over ``http.client`` (a third of httpx's CPU per request); None: a redirect, use httpx."""
        target = self._base_path + path
        if params:
            target += "?" + urlencode(params, quote_via=quote)
        reused = conn.sock is not None
        if not reused:
            self._connect(conn)
        try:
            try:
                conn.request(method, target, headers=self._headers)
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not reused or method not in ("GET", "HEAD"):
                    raise
                # The server closed the idle keep-alive connection while this request was on its way (the
                # check in _fast_connection can lose that race): nothing was answered, so send it again once
                # on a fresh connection, as urllib3 does. Not a retry of a failed request.
                conn.close()
                self._connect(conn)
                conn.request(method, target, headers=self._headers)
                response = conn.getresponse()
            status = response.status
            headers = _Headers((k.lower(), v) for k, v in response.getheaders())
            self.limiter.observe(headers, status)
            if status in _REDIRECTS:
                response.read()
                return None
            encoding = (headers.get("content-encoding") or "").strip().lower()
            decoder = _decoder(encoding)
            if status == 200 and sink_factory is not None:
                sink = sink_factory()
                nbytes = 0
                while chunk := response.read(CHUNK):
                    if decoder is not None:
                        chunk = decoder.decompress(chunk)
                    nbytes += len(chunk)
                    if chunk:
                        sink(chunk)
                if decoder is not None and (tail := decoder.flush()):
                    nbytes += len(tail)
                    sink(tail)
                self.stats.record(method, path, status, nbytes)
                return _Reply(status, headers, b"")
            content = response.read()
            if decoder is not None:
                content = decoder.decompress(content) + decoder.flush()
            self.stats.record(method, path, status, len(content))
            return _Reply(status, headers, content)
        except (OSError, http.client.HTTPException, zlib.error) as exc:
            conn.close()
            raise _TransportFailure(repr(exc), tls=False) from None
        except BaseException:
            conn.close()  # e.g. the sink raised mid-body: the connection is mid-response, never reuse it
            raise

    @staticmethod
    def _connect(conn: http.client.HTTPConnection) -> None:
        try:
            conn.connect()
        except ssl.SSLError as exc:
            conn.close()
            raise _TransportFailure(repr(exc), tls=True) from None
        except OSError as exc:
            conn.close()
            raise _TransportFailure(repr(exc), tls=_is_tls_error(exc)) from None

    def _send_httpx(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        sink_factory: Callable[[], Callable[[bytes], None]] | None,
    ) -> _Reply:
        import httpx

        try:
            client = self.client
            request = client.build_request(method, path, params=params)
            response = client.send(request, stream=True)
            try:
                status = response.status_code
                self.limiter.observe(response.headers, status)
                if status == 200 and sink_factory is not None:
                    sink = sink_factory()
                    nbytes = 0
                    for chunk in response.iter_bytes(CHUNK):
                        nbytes += len(chunk)
                        sink(chunk)
                    self.stats.record(method, path, status, nbytes)
                    return _Reply(status, response.headers, b"")
                response.read()
                self.stats.record(method, path, status, len(response.content))
                return _Reply(status, response.headers, response.content)
            finally:
                response.close()
        except httpx.TransportError as exc:
            raise _TransportFailure(repr(exc), tls=isinstance(exc, httpx.ConnectError) and _is_tls_error(exc)) from None

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        missing: Missing | None = "endpoint",
        sink_factory: Callable[[], Callable[[bytes], None]] | None = None,
    ) -> _Reply | None:
        """Send with rate limiting and bounded retries. ``None`` for 404 when ``missing`` is None.

        With ``sink_factory`` the body is streamed in chunks into a fresh sink per attempt (so a retried
        download never feeds a parser twice) and the returned response has no body.
        """
        what = f"{method} {path}"
        attempt = 0
        while True:
            attempt += 1
            self.limiter.acquire()
            try:
                conn = self._fast_connection()
                response = None if conn is None else self._send_fast(conn, method, path, params, sink_factory)
                if response is None:
                    response = self._send_httpx(method, path, params, sink_factory)
            except _TransportFailure as exc:
                if exc.tls:
                    raise TLSError(
                        f"TLS handshake with {self.connection.url} failed: {describe_network_error(exc.text)}",
                        hint="check the URL, or set [gitlab] verify_tls = false / a CA bundle",
                    ) from None
                self.stats.record(method, path, 599, 0)
                if attempt < self.retry.attempts:
                    self.stats.retried()
                    time.sleep(self.retry.delay(attempt))
                    continue
                raise ConnectError(
                    f"cannot reach GitLab at {self.connection.url}: {describe_network_error(exc.text)} (on {what})"
                ) from None
            status = response.status_code
            if status in RETRYABLE_STATUSES:
                after = parse_retry_after(response.headers.get("Retry-After"))
                if attempt < self.retry.attempts:
                    self.stats.retried()
                    if status != 429:
                        time.sleep(self.retry.delay(attempt, after))
                    continue
                if status == 429:
                    raise RateLimited(f"rate limited (429) on {what}", retry_after=after, hint="lower [gitlab] max_rps")
            if status == 404 and missing is None:
                return None
            if status >= 400:
                raise error_for_status(status, what, missing=missing or "resource", message=_message(response))
            return response

    def get_json(self, path: str, *, params: dict[str, Any] | None = None, missing: Missing = "endpoint") -> Any:
        response = self._request("GET", path, params=params, missing=missing)
        assert response is not None
        try:
            return response.json()
        except ValueError:
            raise RemoteError(f"GET {path} returned something that is not JSON") from None

    def get_pages(
        self, path: str, *, params: dict[str, Any] | None = None, missing: Missing = "endpoint"
    ) -> Iterator[Any]:
        """Items of an offset-paginated listing (``x-next-page``), 100 per request."""
        page = 1
        while True:
            response = self._request(
                "GET", path, params={**(params or {}), "per_page": 100, "page": page}, missing=missing
            )
            assert response is not None
            items = response.json()
            if not isinstance(items, list):
                raise RemoteError(f"GET {path} did not return a list")
            yield from items
            nxt = response.headers.get("x-next-page", "")
            if not nxt.strip() or not items:
                return
            page = int(nxt)

    # -- logs --------------------------------------------------------------------------------------------------

    def stream_trace(self, project_id: int, job_id: int, sink_factory: Callable[[], Callable[[bytes], None]]) -> bool:
        """Stream a job log into ``sink_factory()``'s sink, chunk by chunk. False: GitLab has no log (404)."""
        response = self._request(
            "GET", f"/projects/{project_id}/jobs/{job_id}/trace", missing=None, sink_factory=sink_factory
        )
        return response is not None

    # -- repository files --------------------------------------------------------------------------------------

    def file_head(self, project_id: int, path: str, ref: str) -> FileHead | None:
        """The blob id, last commit and content SHA-256 of a file at ``ref`` (None: no such file there)."""
        response = self._request(
            "HEAD", f"/projects/{project_id}/repository/files/{quote(path, safe='')}", params={"ref": ref}, missing=None
        )
        if response is None:
            return None
        h = response.headers
        return FileHead(
            blob_id=h.get("X-Gitlab-Blob-Id"),
            last_commit_id=h.get("X-Gitlab-Last-Commit-Id"),
            content_sha256=h.get("X-Gitlab-Content-Sha256"),
        )

    def file_raw(self, project_id: int, path: str, ref: str) -> bytes | None:
        response = self._request(
            "GET",
            f"/projects/{project_id}/repository/files/{quote(path, safe='')}/raw",
            params={"ref": ref},
            missing=None,
        )
        return None if response is None else response.content

    def commits(self, project_id: int, ref: str, *, path: str | None = None) -> Iterator[tuple[str, tuple[str, ...]]]:
        """(sha, parent shas) of the history of ``ref`` (newest first, 100 per request); with ``path``, only the
        commits that changed it. Iterate lazily: stop early and no further page is requested."""
        params: dict[str, Any] = {"ref_name": ref}
        if path is not None:
            params["path"] = path
        for c in self.get_pages(f"/projects/{project_id}/repository/commits", params=params):
            yield str(c["id"]), tuple(str(p) for p in c.get("parent_ids") or ())

    # -- registry ----------------------------------------------------------------------------------------------

    def registry_repositories(self, project_id: int) -> list[RegistryRepository]:
        return [
            RegistryRepository(id=int(r["id"]), path=str(r.get("path") or ""), location=r.get("location"))
            for r in self.get_pages(f"/projects/{project_id}/registry/repositories")
        ]

    def registry_tag_names(self, project_id: int, repository_id: int) -> list[str]:
        return [
            str(t["name"]) for t in self.get_pages(f"/projects/{project_id}/registry/repositories/{repository_id}/tags")
        ]

    def registry_tag(
        self, project_id: int, repository: RegistryRepository, name: str, log: WireLog | None = None
    ) -> ImageTag | None:
        """One tag with its size (None: gone). Range-checked by :func:`cidash.remote.wire.image_tag_from_json`."""
        response = self._request(
            "GET",
            f"/projects/{project_id}/registry/repositories/{repository.id}/tags/{quote(name, safe='')}",
            missing=None,
        )
        if response is None:
            return None
        try:
            data = response.json()
        except ValueError:
            raise RemoteError(f"GET registry tag {quote(name, safe='')} did not return JSON") from None
        return image_tag_from_json(project_id, repository.path, name, data, log)

    # -- resource groups ---------------------------------------------------------------------------------------

    def resource_groups(self, project_id: int) -> list[ResourceGroup]:
        return [
            ResourceGroup(
                project_id=project_id, key=str(g["key"]), process_mode=str(g.get("process_mode") or "unordered")
            )
            for g in self.get_pages(f"/projects/{project_id}/resource_groups")
        ]


def _message(response: _Reply) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    if isinstance(data, dict):
        for key in ("message", "error"):
            if isinstance(data.get(key), str):
                return str(data[key])[:200]
    return None
