"""Job logs, repository-file checksums, the container registry and resource groups, over plain HTTP/1.1.

These are the many small (or streamed) requests of a sync; they run in the sync's bounded worker pool, each
worker thread with its own keep-alive connection (:mod:`cidash.remote.conn`) to the configured origin (httpx,
imported only then, for proxies and for redirects to other origins). Thread-safe. Every request passes the shared
:class:`~cidash.remote.policy.RateLimiter`, is retried a bounded number of times on 429/5xx, connection errors,
bodies cut short and 2xx bodies that are not what the endpoint returns, counted in
:class:`~cidash.remote.policy.RequestStats`, and mapped to :mod:`cidash.errors` (never with the token).

Trust boundary (see docs/security.md): the token goes only to the configured origin (scheme, host, port);
redirects to another origin are followed without it for downloads (logs, raw files) and refused for API calls;
a body is complete only when its Content-Length, chunked end or gzip end says so.
"""

from __future__ import annotations

import dataclasses
import os
import re
import ssl
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit

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
from cidash.models import ImageTag, ResourceGroup
from cidash.remote import policy
from cidash.remote.conn import PeerClosed, ProtocolFailure, RawConnection
from cidash.remote.policy import (
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    RETRYABLE_STATUSES,
    Missing,
    PageGuard,
    RateLimiter,
    RequestStats,
    RetryPolicy,
    describe_network_error,
    endpoint_kind,
    error_for_status,
    is_html,
    json_problem,
    origin_of,
    parse_json,
    parse_retry_after,
    same_origin,
    show_origin,
    too_long,
)
from cidash.remote.wire import (
    RegistryRepository,
    WireLog,
    image_tag_from_json,
    is_decimal,
    is_object_id,
    registry_repository_from_json,
    registry_tag_name_from_json,
    resource_group_from_json,
    show,
)

if TYPE_CHECKING:
    import httpx

CHUNK = 64 * 1024
#: A body meant for a sink (a log streamed into the parser) of up to this many bytes is received whole and fed to
#: the sink after the request's slot of the in-flight window is given back: the next request goes out while this
#: one is parsed. A longer body is streamed into the sink as it arrives (memory stays bounded by this per worker).
SINK_AFTER_SLOT = 256 * 1024


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
    data: Any = None  # the parsed JSON when the request expected JSON
    foreign: str | None = None  # the origin that answered, when a redirect led away from GitLab's
    #: A complete small body meant for a sink, not fed yet (see :data:`SINK_AFTER_SLOT`): the caller feeds it to a
    #: fresh sink once the request's slot is free.
    pending: tuple[bytes, ...] | None = None

    def json(self) -> Any:
        return parse_json(self.content)[0]


class _TransportFailure(Exception):
    """No complete HTTP answer (connection refused/reset, timeout, TLS, a body cut short or badly framed): ``text``
    describes it without the token; ``incomplete``: an answer started but its body did not end as framed;
    ``malformed``: ``text`` is cidash's own words for an answer that is not HTTP as GitLab speaks it (shown as is,
    not boiled down like a library's exception text); ``slow``: past its time (never retried: a try that took
    minutes would take as long again)."""

    def __init__(
        self, text: str, *, tls: bool = False, incomplete: bool = False, malformed: bool = False, slow: bool = False
    ) -> None:
        super().__init__(text)
        self.text = text
        self.tls = tls
        self.incomplete = incomplete
        self.malformed = malformed
        self.slow = slow


def _tries(n: int) -> str:
    return "1 try" if n == 1 else f"{n} tries"


def _ended_by_httpx_wire(exc: BaseException, *, incomplete: bool) -> _TransportFailure | None:
    """httpx's error for an answer ended by :mod:`cidash.remote.httpx_wire` (its text is cidash's own), as the fast
    path reports it; None for any other error."""
    text = str(exc)
    slow = text.startswith("an answer too slow")
    if not slow and "bytes on the wire" not in text:
        return None
    return _TransportFailure(text, incomplete=incomplete or slow, malformed=True, slow=slow)


class _BadPayload(Exception):
    """A 2xx whose body is not what the endpoint returns (``text`` says what it was)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _decoder(encoding: str) -> Any:
    """A streaming decompressor for a ``Content-Encoding`` (None: identity)."""
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    return None


@dataclass(frozen=True)
class FileHead:
    """The repository-files HEAD headers of one file at one ref."""

    blob_id: str | None
    last_commit_id: str | None
    content_sha256: str | None


@dataclass(frozen=True)
class Comparison:
    """``GET /projects/:id/repository/compare`` of two commits: the paths that differ (old and new names), the
    commits of the range (sha, parent shas; oldest first), and whether GitLab cut the answer short (``complete``
    False: ``compare_timeout``, which GitLab sets when the diff overflowed its limits, or an ``overflow`` key;
    the paths are then not the whole story)."""

    paths: frozenset[str]
    commits: tuple[tuple[str, tuple[str, ...]], ...]
    complete: bool


def _ssl_context(verify: Literal[False] | str) -> ssl.SSLContext:
    """The one TLS context of every connection: no verification, or a CA file or directory (see
    :func:`cidash.connection.tls_verify`, which the python-gitlab path uses too)."""
    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


def _proxied(scheme: str, host: str) -> bool:
    """Whether the environment routes requests to ``host`` through a proxy (then httpx, which speaks proxy).

    On Linux and the BSDs only ``*_proxy`` variables name a proxy (:func:`urllib.request.getproxies`): with none set,
    ``urllib.request`` is not imported (~30 ms of a command's start). macOS and Windows also have system settings."""
    if sys.platform not in ("darwin", "win32") and not any(name[-6:].lower() == "_proxy" for name in os.environ):
        return False
    import urllib.request

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
        # The many small requests of a sync go over one plain keep-alive connection per thread (httpx costs ~3x
        # the CPU per request, which a sync of thousands of requests on a busy machine feels); httpx serves
        # proxied setups (HTTP(S)_PROXY / ALL_PROXY apply to the GitLab host) and redirects to other origins.
        api = urlsplit(connection.api_url)
        self._origin = origin_of(connection.url)
        self._scheme = api.scheme.lower()
        self._host = api.hostname or ""
        self._port = api.port
        self._base_path = api.path.rstrip("/")
        #: The API URL up to its path: a request URL that starts with it is sent as the rest (its path and query).
        self._api_root = (
            connection.api_url[: len(connection.api_url) - len(api.path)] if api.path else connection.api_url
        )
        self._auth = connection.auth_headers()
        self._headers = {**self._auth, "User-Agent": "cidash", "Accept-Encoding": "gzip"}
        self._raw_headers = "".join(f"{k}: {v}\r\n" for k, v in self._headers.items()).encode("latin-1")
        self._fast_conns: list[tuple[threading.Thread, RawConnection]] = []
        self._fast = self._scheme in ("http", "https") and bool(self._host) and not _proxied(self._scheme, self._host)
        warn_if_insecure(connection)

    def _context(self) -> ssl.SSLContext:
        """The TLS context, built once (loading the CA bundle costs ~25 ms of CPU) and shared by all connections."""
        with self._clients_lock:
            if self._ssl_context is None:
                self._ssl_context = _ssl_context(self.connection.tls_verify())
            return self._ssl_context

    def _new_client(self) -> httpx.Client:
        import httpx  # only for proxies and other origins: the import alone costs ~0.2 s of CPU

        # No credential in the client's own headers and no automatic redirects: each request carries the token
        # only when it goes to the configured origin (see _exchange).
        from cidash.remote.httpx_wire import count_wire

        client = httpx.Client(
            headers={"User-Agent": "cidash"},
            verify=self._context(),
            timeout=self.connection.timeout,
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
            follow_redirects=False,
        )
        count_wire(client)  # the answer's wire limit, as on the fast path
        return client

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

    def _fast_connection(self) -> RawConnection | None:
        """This thread's keep-alive connection to the configured origin (None: requests go through httpx, e.g.
        via a proxy)."""
        if not self._fast:
            return None
        conn: RawConnection | None = getattr(self._local, "fast", None)
        if conn is not None and conn.stale():
            conn.close()  # the server closed the idle keep-alive connection: reconnect rather than fail
        if conn is None:
            context = self._context if self._scheme == "https" else None
            conn = RawConnection(self._host, self._port, timeout=self.connection.timeout, context=context)
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
        conn: RawConnection,
        method: str,
        target: str,
        record_as: str,
        sink_factory: Callable[[], Callable[[bytes], None]] | None,
        *,
        body: bytes = b"",
    ) -> _Reply:
        """One request over this thread's :class:`~cidash.remote.conn.RawConnection` to the configured origin
        (``body``: JSON, see :meth:`post_json`).

        A body counts only when its framing says it is complete: ``Content-Length`` bytes, the chunked end, and
        the gzip end.
        """
        reused = conn.sock is not None
        if not reused:
            self._connect(conn)
            self.limiter.sending()  # a new connection's handshake is not the server's answer time
        wire = policy.wire_limit(sink_factory is not None)
        sent = self._raw_headers + _body_headers(body) if body or method == "POST" else self._raw_headers
        sink: Callable[[bytes], None] | None = None
        status = nbytes = 0
        try:
            try:
                response = conn.request(method, target, sent, wire, body)
            except (PeerClosed, ConnectionResetError, BrokenPipeError):
                if not reused or method not in ("GET", "HEAD"):
                    raise
                # The server closed the idle keep-alive connection while this request was on its way (the
                # check in _fast_connection can lose that race): nothing was answered, so send it again once
                # on a fresh connection, as urllib3 does. Not a retry of a failed request.
                conn.close()
                self._connect(conn)
                response = conn.request(method, target, sent, wire, body)
            status = response.status
            headers = _Headers(response.headers)
            self.limiter.observe(headers, status)
            problem = response.framing_problem()
            if problem is not None:
                raise _TransportFailure(problem, incomplete=True)
            decoder = _decoder(headers.get("content-encoding", "").strip().lower())
            streamed = status == 200 and sink_factory is not None and not is_html(headers.get("content-type"))
            # A sink's body is held back (fed after the slot is free) while it stays under SINK_AFTER_SLOT bytes.
            parts: list[bytes] = []
            out = parts.append
            nbytes = raw = 0
            for chunk in response.body(method):
                raw += len(chunk)
                if decoder is not None:
                    chunk = decoder.decompress(chunk)
                nbytes += len(chunk)
                if sink is None and nbytes > policy.MAX_ANSWER_BYTES and not streamed:
                    raise _BadPayload(too_long(nbytes))
                if chunk:
                    if streamed and sink is None and nbytes > SINK_AFTER_SLOT and sink_factory is not None:
                        sink = sink_factory()  # a long body: stream it from here on
                        for part in parts:
                            sink(part)
                        parts.clear()
                        out = sink
                    out(chunk)
            if response.remaining:  # a clean close before Content-Length bytes: a short read, not the end
                raise _TransportFailure(f"body ended {response.remaining} bytes short", incomplete=True)
            if decoder is not None and raw:
                if tail := decoder.flush():
                    nbytes += len(tail)
                    out(tail)
                if not decoder.eof:
                    raise _TransportFailure("gzip body ended early", incomplete=True)
            conn.finished()
            self.stats.record(method, record_as, status, nbytes)
            if streamed and sink is None:
                return _Reply(status, headers, b"", pending=tuple(parts))
            return _Reply(status, headers, b"" if sink is not None else b"".join(parts))
        except _TransportFailure:
            conn.close()
            raise
        except PeerClosed:
            conn.close()
            raise _TransportFailure("the connection closed before an answer", incomplete=False) from None
        except ProtocolFailure as exc:
            conn.close()
            raise _TransportFailure(exc.text, incomplete=exc.incomplete, malformed=True, slow=exc.slow) from None
        except (OSError, zlib.error) as exc:
            conn.close()
            raise _TransportFailure(repr(exc)) from None
        except BaseException:
            conn.close()  # e.g. the sink raised mid-body: the connection is mid-response, never reuse it
            if sink is not None:  # the sink stopped the download (a log past its cap): what came still counts
                self.stats.record(method, record_as, status, nbytes)
            raise

    @staticmethod
    def _connect(conn: RawConnection) -> None:
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
        url: str,
        record_as: str,
        sink_factory: Callable[[], Callable[[bytes], None]] | None,
        *,
        own: bool,
        body: bytes = b"",
    ) -> _Reply:
        """One request through httpx (proxies, other origins): credentials only when ``own`` (configured origin)."""
        import httpx

        from cidash.remote.httpx_wire import expect

        try:
            client = self.client
            headers = {**self._auth, "Accept-Encoding": "gzip"} if own else {"Accept-Encoding": "gzip"}
            if body:
                headers["Content-Type"] = "application/json"
            request = client.build_request(method, url, headers=headers, content=body if method == "POST" else None)
            expect(policy.wire_limit(sink_factory is not None))
            response = client.send(request, stream=True)
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.RemoteProtocolError) and "content-length" in str(exc).lower():
                raise _TransportFailure("conflicting Content-Length headers", incomplete=True) from None
            if (ended := _ended_by_httpx_wire(exc, incomplete=False)) is not None:
                raise ended from None
            raise _TransportFailure(repr(exc), tls=isinstance(exc, httpx.ConnectError) and _is_tls_error(exc)) from None
        sink: Callable[[bytes], None] | None = None
        status = nbytes = 0
        try:
            status = response.status_code
            if own:
                self.limiter.observe(response.headers, status)
            # Raw bytes, decoded here as on the fast path: httpx's own gzip decoder accepts a stream that
            # ends early without complaint.
            decoder = _decoder((response.headers.get("content-encoding") or "").strip().lower())
            stream = status == 200 and sink_factory is not None and not is_html(response.headers.get("content-type"))
            sink = sink_factory() if stream and sink_factory is not None else None
            parts: list[bytes] = []
            out = sink if sink is not None else parts.append
            nbytes = raw = 0
            for chunk in response.iter_raw(CHUNK):
                raw += len(chunk)
                if decoder is not None:
                    chunk = decoder.decompress(chunk)
                nbytes += len(chunk)
                if sink is None and nbytes > policy.MAX_ANSWER_BYTES:
                    raise _BadPayload(too_long(nbytes))
                if chunk:
                    out(chunk)
            if decoder is not None and raw:
                if tail := decoder.flush():
                    nbytes += len(tail)
                    out(tail)
                if not decoder.eof:
                    raise _TransportFailure("gzip body ended early", incomplete=True)
            self.stats.record(method, record_as, status, nbytes)
            return _Reply(status, response.headers, b"" if sink is not None else b"".join(parts))
        except (httpx.TransportError, httpx.DecodingError, zlib.error) as exc:
            if (ended := _ended_by_httpx_wire(exc, incomplete=True)) is not None:
                raise ended from None
            raise _TransportFailure(f"body ended early: {describe_network_error(repr(exc))}", incomplete=True) from None
        except (_TransportFailure, _BadPayload):
            raise
        except BaseException:
            if sink is not None:  # the sink stopped the download (a log past its cap): what came still counts
                self.stats.record(method, record_as, status, nbytes)
            raise
        finally:
            response.close()

    def _exchange(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        sink_factory: Callable[[], Callable[[bytes], None]] | None,
        *,
        cross_origin: bool,
        body: bytes = b"",
        url: str | None = None,
    ) -> _Reply:
        """Send one request, following at most MAX_REDIRECTS redirects (a ``POST``: none). ``url``: instead of
        the API's URL for ``path`` (GraphQL's endpoint, beside the REST API on the configured origin).

        The credential goes only to the configured origin (scheme, host, port). A redirect to another origin is
        followed without any credential when ``cross_origin`` (downloads such as logs and raw files, which an
        instance may serve from object storage), else refused: an API answer from another host is not GitLab's.
        """
        what = f"{method} {path}"
        url = self.connection.api_url + path if url is None else url
        if params:
            url += "?" + urlencode(params, doseq=True, quote_via=quote)
        for hop in range(MAX_REDIRECTS + 1):
            if hop == 0:  # the API URL built above: the configured origin by construction
                own, record_as = True, path
                target = url[len(self._api_root) :] if url.startswith(self._api_root) else None
            else:
                own = same_origin(url, self._origin)
                if own:
                    self.limiter.acquire()  # the first hop's slot was taken by _request
                parts = urlsplit(url)
                record_as, target = parts.path, parts.path + (f"?{parts.query}" if parts.query else "")
            conn = self._fast_connection() if own and target is not None else None
            if conn is not None and target is not None:
                reply = self._send_fast(conn, method, target, record_as, sink_factory, body=body)
            else:
                reply = self._send_httpx(method, url, record_as, sink_factory, own=own, body=body)
            location = reply.headers.get("location")
            if reply.status_code not in REDIRECT_STATUSES or not location:
                return reply if own else dataclasses.replace(reply, foreign=show_origin(url))
            nxt = urljoin(url, location.strip())
            if method == "POST":  # as python-gitlab: a POST is never sent again, to any address
                where = "the same origin" if same_origin(nxt, self._origin) else f"another origin ({show_origin(nxt)})"
                raise RedirectRefused(
                    f"{what} was redirected ({reply.status_code}) to {where}; not followed: an action is sent once",
                    hint="if GitLab moved, set [gitlab] url to its new address (https:// if it redirects there)",
                )
            if urlsplit(nxt).scheme.lower() not in ("http", "https"):
                raise RedirectRefused(f"{what} was redirected to a non-HTTP location; not followed")
            if not same_origin(nxt, self._origin) and not cross_origin:
                raise RedirectRefused(
                    f"{what} was redirected to another origin ({show_origin(nxt)}); not followed: cidash sends "
                    f"its credentials only to {show_origin(self.connection.url)}",
                    hint="if GitLab moved, set [gitlab] url to its new address",
                )
            url = nxt
        raise RedirectRefused(f"{what}: more than {MAX_REDIRECTS} redirects; not followed")

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        missing: Missing | None = "endpoint",
        sink_factory: Callable[[], Callable[[bytes], None]] | None = None,
        expect: Literal["json", "text", "bytes"] = "bytes",
        download: bool = False,
        body: bytes = b"",
        url: str | None = None,
    ) -> _Reply | None:
        """Send with rate limiting and bounded retries. ``None`` for 404 when ``missing`` is None.

        With ``sink_factory`` the body is streamed in chunks into a fresh sink per attempt (so a retried
        download never feeds a parser twice) and the returned response has no body. A body cut short, a
        connection failure, a 429/5xx, and a 2xx body that is not what ``expect`` says (``json``: parseable JSON;
        ``text``: not an HTML page) are retried; after the last try they raise :class:`TruncatedBody`,
        :class:`ConnectError`, :class:`RateLimited`/:class:`RemoteError` or :class:`BadPayload`. ``download``
        (a log, a raw file): a redirect to another origin is followed, without credentials; else refused.
        """
        what = f"{method} {path}"
        kind = endpoint_kind(method, path)
        attempt = 0
        while True:
            attempt += 1
            ticket = self.limiter.enter(kind)
            answered: int | None = None
            try:
                try:
                    response = self._exchange(
                        method, path, params, sink_factory, cross_origin=download, body=body, url=url
                    )
                    answered = response.status_code
                finally:
                    self.limiter.leave(ticket, answered)  # the slot is free before any retry pause (and parsing)
                if response.pending is not None and sink_factory is not None:
                    sink = sink_factory()  # a whole small body, received: parsed now, while the next request is out
                    pending = response.pending
                    if pending:  # one call (a parser has a cost per call), none for an empty body
                        sink(pending[0] if len(pending) == 1 else b"".join(pending))
                if 200 <= response.status_code < 300 and method != "HEAD":
                    response = self._checked(response, expect)
            except _TransportFailure as exc:
                if exc.tls:
                    raise self._failed(exc, what, attempt) from None
                self.stats.record(method, path, 599, 0)
                if attempt < self.retry.attempts and not exc.slow:
                    self.stats.retried()
                    time.sleep(self.retry.delay(attempt))
                    continue
                raise self._failed(exc, what, attempt) from None
            except _BadPayload as exc:
                if attempt < self.retry.attempts:
                    self.stats.retried()
                    time.sleep(self.retry.delay(attempt))
                    continue
                raise BadPayload(
                    f"GitLab at {self.connection.url} answered {what} with {exc.text} ({_tries(attempt)})"
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
            if status >= 400 and response.foreign is not None:  # not GitLab's answer: no token went there
                raise RemoteError(
                    f"{what} was redirected to {response.foreign}, which answered {status}",
                    status=status,
                    hint="if GitLab moved there, set [gitlab] url to its new address",
                )
            if status == 404 and missing is None:
                return None
            if status >= 400:
                raise error_for_status(
                    status,
                    what,
                    missing=missing or "resource",
                    message=_message(response),
                    token_sent=bool(self._auth),
                )
            return response

    @staticmethod
    def _checked(response: _Reply, expect: str) -> _Reply:
        """The response with its JSON parsed (``expect="json"``), or :class:`_BadPayload`."""
        content_type = response.headers.get("content-type")
        if expect == "json":
            data, problem = json_problem(response.content, content_type)
            if problem is not None:
                raise _BadPayload(problem)
            return dataclasses.replace(response, data=data)
        if expect == "text" and is_html(content_type):
            raise _BadPayload(f"an HTML page ({len(response.content)} bytes) instead of text")
        return response

    def get_json(self, path: str, *, params: dict[str, Any] | None = None, missing: Missing = "endpoint") -> Any:
        response = self._request("GET", path, params=params, missing=missing, expect="json")
        assert response is not None
        return response.data

    def graphql(self, query: str, variables: Mapping[str, Any]) -> Any:
        """A GraphQL query (a read, retried like one) to GitLab's ``/api/graphql`` on the configured origin: the
        answer's parsed JSON, whatever it holds (``data``, ``errors``: the caller judges). Raises as
        :meth:`get_json` for a failed request or an error status; a redirect is refused (a ``POST``)."""
        import json

        payload = json.dumps({"query": query, "variables": dict(variables)}).encode()
        url = self.connection.url.rstrip("/") + "/api/graphql"
        response = self._request("POST", "/api/graphql", missing="endpoint", expect="json", body=payload, url=url)
        assert response is not None
        return response.data

    def _failed(self, exc: _TransportFailure, what: str, attempt: int) -> ConnectError:
        """The error for a request that got no complete answer on its last try (``attempt``)."""
        url = self.connection.url
        if exc.tls:
            return TLSError(
                f"TLS handshake with {url} failed: {describe_network_error(exc.text)}",
                hint="check the URL, or set [gitlab] ca_file to your CA bundle, or verify_tls = false",
            )
        if exc.incomplete:
            return TruncatedBody(f"incomplete answer from GitLab at {url} on {what}: {exc.text} ({_tries(attempt)})")
        if exc.malformed:
            return ConnectError(f"GitLab at {url} sent a malformed answer to {what}: {exc.text} ({_tries(attempt)})")
        return ConnectError(f"cannot reach GitLab at {url}: {describe_network_error(exc.text)} (on {what})")

    def post_json(self, path: str, payload: Mapping[str, Any] | None) -> _Reply:
        """One ``POST`` of ``payload`` as JSON to the configured origin, sent once and never again, to any address
        (an action: a try without a complete answer may or may not have taken effect). Any status is returned, the
        caller decides (a 429 has paused every sender already); a 2xx's body is parsed JSON (``.data``). Raises
        :class:`ConnectError` / :class:`TruncatedBody` without a complete answer, :class:`RedirectRefused` on a
        redirect, :class:`BadPayload` for a 2xx that is not JSON."""
        import json

        body = json.dumps(payload).encode() if payload else b""
        what = f"POST {path}"
        ticket = self.limiter.enter(endpoint_kind("POST", path))
        answered: int | None = None
        try:
            reply = self._exchange("POST", path, None, None, cross_origin=False, body=body)
            answered = reply.status_code
        except _TransportFailure as exc:
            if not exc.tls:
                self.stats.record("POST", path, 599, 0)
            raise self._failed(exc, what, 1) from None
        finally:
            self.limiter.leave(ticket, answered)
        if 200 <= reply.status_code < 300:
            try:
                return self._checked(reply, "json")
            except _BadPayload as exc:
                raise BadPayload(f"GitLab at {self.connection.url} answered {what} with {exc.text}") from None
        return reply

    def get_pages(
        self, path: str, *, params: dict[str, Any] | None = None, missing: Missing = "endpoint"
    ) -> Iterator[Any]:
        """Items of an offset-paginated listing (``x-next-page``), 100 per request.

        A next page already read ends the listing with :class:`PaginationError`, as does running past
        :data:`~cidash.remote.policy.MAX_PAGES`.
        """
        what = f"GET {path}"
        guard = PageGuard(what)
        page = 1
        while True:
            guard.visit(str(page), describe=f"X-Next-Page ({page})")
            response = self._request(
                "GET", path, params={**(params or {}), "per_page": 100, "page": page}, missing=missing, expect="json"
            )
            assert response is not None
            items = response.data
            if not isinstance(items, list):
                raise BadPayload(f"{what} did not return a list")
            yield from items
            nxt = (response.headers.get("x-next-page") or "").strip()
            if not nxt or not items:
                return
            try:
                page = int(nxt)
            except ValueError:
                raise PaginationError(f"{what}: X-Next-Page {nxt[:20]!r} is not a page number") from None

    def get_link_pages(
        self, path: str, params: dict[str, Any], *, missing: Missing = "endpoint"
    ) -> Iterator[list[Any]]:
        """The pages of a listing (offset or keyset), one list of JSON values per request, following ``Link:
        rel="next"`` (else ``X-Next-Page``).

        Every next link is taken as a path and query under the API on the **configured** origin: a link naming
        another host is never followed there (the token stays home). A next page already read (a loop, or a
        keyset cursor that does not advance) ends the listing with :class:`PaginationError` naming the endpoint,
        as does running past :data:`~cidash.remote.policy.MAX_PAGES`.
        """
        what = f"GET {path}"
        guard = PageGuard(what)
        query = urlencode(params, doseq=True)
        guard.visit(_page_key(path, query))
        current = path
        while True:
            response = self._request("GET", current, params=_query_dict(query), missing=missing, expect="json")
            assert response is not None
            data = response.data
            if not isinstance(data, list):
                raise BadPayload(f"{what} did not return a list")
            yield data
            if not data:
                return
            nxt = self._next_page(response, current, query, what)
            if nxt is None:
                return
            guard.visit(_page_key(*nxt), describe='the "next" link')
            current, query = nxt

    def _next_page(self, response: _Reply, path: str, query: str, what: str) -> tuple[str, str] | None:
        """(path under the API, query string) of the next page, or None at the end."""
        link = _next_link(response.headers.get("link") or "")
        if link:
            parts = urlsplit(link)
            if not parts.path.startswith(self._base_path + "/"):
                raise PaginationError(f'{what}: the "next" link leaves the API; listing stopped')
            return parts.path[len(self._base_path) :], parts.query
        page = (response.headers.get("x-next-page") or "").strip()
        if not page:
            return None
        if not is_decimal(page):
            raise PaginationError(f"{what}: X-Next-Page {page[:20]!r} is not a page number")
        return path, urlencode({**dict(parse_qsl(query, keep_blank_values=True)), "page": page}, doseq=True)

    # -- logs --------------------------------------------------------------------------------------------------

    def stream_trace(self, project_id: int, job_id: int, sink_factory: Callable[[], Callable[[bytes], None]]) -> bool:
        """Stream a job log into ``sink_factory()``'s sink, chunk by chunk. False: GitLab has no log (404).

        Raises :class:`TruncatedBody` when every try ended before the body's framing said it was complete (the
        sink then holds a partial log: the caller must not store it), :class:`BadPayload` for an HTML page."""
        response = self._request(
            "GET",
            f"/projects/{project_id}/jobs/{job_id}/trace",
            missing=None,
            sink_factory=sink_factory,
            expect="text",
            download=True,
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
        h, what = response.headers, f"HEAD {path} at {ref[:12]}"
        return FileHead(
            blob_id=_object_id(h, "X-Gitlab-Blob-Id", what),
            last_commit_id=_object_id(h, "X-Gitlab-Last-Commit-Id", what),
            content_sha256=_object_id(h, "X-Gitlab-Content-Sha256", what, sha256=True),
        )

    def file_raw(self, project_id: int, path: str, ref: str) -> bytes | None:
        response = self._request(
            "GET",
            f"/projects/{project_id}/repository/files/{quote(path, safe='')}/raw",
            params={"ref": ref},
            missing=None,
            download=True,
        )
        return None if response is None else response.content

    def commits(self, project_id: int, ref: str, *, path: str | None = None) -> Iterator[tuple[str, tuple[str, ...]]]:
        """(sha, parent shas) of the history of ``ref`` (newest first, 100 per request); with ``path``, only the
        commits that changed it. Iterate lazily: stop early and no further page is requested."""
        params: dict[str, Any] = {"ref_name": ref}
        if path is not None:
            params["path"] = path
        what = f"GET /projects/{project_id}/repository/commits"
        for c in self.get_pages(f"/projects/{project_id}/repository/commits", params=params):
            parents = c.get("parent_ids") if isinstance(c, dict) else None
            if not isinstance(c, dict) or not is_object_id(c.get("id")) or not isinstance(parents, list | None):
                # a history with a hole is no history: the step that asked for it fails, not the sync
                raise BadPayload(f"{what} returned a record that is not a commit: {show(c)}")
            if not all(is_object_id(p) for p in parents or ()):
                raise BadPayload(f"{what} returned a commit whose parent_ids are not commit ids: {show(parents)}")
            yield c["id"], tuple(parents or ())

    def compare(self, project_id: int, from_sha: str, to_sha: str) -> Comparison:
        """What changed from ``from_sha`` to ``to_sha`` (``straight=true``: the two trees directly, not the merge
        base). Anything GitLab sends that is not the documented shape counts as an incomplete comparison."""
        data = self.get_json(
            f"/projects/{project_id}/repository/compare",
            params={"from": from_sha, "to": to_sha, "straight": "true"},
            missing="resource",
        )
        if not isinstance(data, dict):
            raise BadPayload("GET repository/compare did not return an object")
        paths: set[str] = set()
        complete = not data.get("compare_timeout") and not data.get("overflow")
        diffs, commits = data.get("diffs"), data.get("commits")
        if not isinstance(diffs, list) or not isinstance(commits, list):
            return Comparison(frozenset(), (), False)
        for d in diffs:
            if not isinstance(d, dict):
                complete = False
                continue
            for key in ("old_path", "new_path"):
                if isinstance(d.get(key), str):
                    paths.add(d[key])
        shas: list[tuple[str, tuple[str, ...]]] = []
        for c in commits:
            parents = c.get("parent_ids") if isinstance(c, dict) else None
            if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not isinstance(parents, list):
                complete = False
                continue
            shas.append((c["id"], tuple(str(p) for p in parents)))
        return Comparison(frozenset(paths), tuple(shas), complete)

    # -- registry ----------------------------------------------------------------------------------------------

    def registry_repositories(self, project_id: int) -> list[RegistryRepository]:
        """The project's registry repositories; a record without an integer id is left out (never a crash)."""
        records = self.get_pages(f"/projects/{project_id}/registry/repositories")
        return [r for r in map(registry_repository_from_json, records) if r is not None]

    def registry_tag_names(self, project_id: int, repository_id: int) -> list[str]:
        """The repository's tag names; a record without a name is left out."""
        records = self.get_pages(f"/projects/{project_id}/registry/repositories/{repository_id}/tags")
        return [name for name in map(registry_tag_name_from_json, records) if name is not None]

    def registry_tag(
        self, project_id: int, repository: RegistryRepository, name: str, log: WireLog | None = None
    ) -> ImageTag | None:
        """One tag with its size (None: gone). Range-checked by :func:`cidash.remote.wire.image_tag_from_json`."""
        response = self._request(
            "GET",
            f"/projects/{project_id}/registry/repositories/{repository.id}/tags/{quote(name, safe='')}",
            missing=None,
            expect="json",
        )
        if response is None:
            return None
        d = response.data
        if not isinstance(d, dict):
            raise BadPayload(f"GET registry tag {name} did not return an object")
        return image_tag_from_json(project_id, repository.path, name, d, log)

    # -- resource groups ---------------------------------------------------------------------------------------

    def resource_groups(self, project_id: int) -> list[ResourceGroup]:
        """The project's resource groups; a record without a key is left out (:func:`resource_group_from_json`)."""
        records = self.get_pages(f"/projects/{project_id}/resource_groups")
        return [g for g in (resource_group_from_json(project_id, r) for r in records) if g is not None]


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _object_id(headers: Mapping[str, str], name: str, what: str, *, sha256: bool = False) -> str | None:
    """A repository-files HEAD header holding an object id or a content SHA-256 (None: not sent, as by a GitLab
    older than the header). Anything else is a bad answer (:class:`BadPayload`): the checksum of that file at that
    commit is retried on the next sync, never stored as it came (keys and ``.cache-key`` checks are computed
    from it) nor taken for an absent file."""
    value = headers.get(name)
    if value is None:
        return None
    value = value.strip().lower()
    if not (_SHA256.fullmatch(value) if sha256 else is_object_id(value)):
        raise BadPayload(f"{what}: {name} {show(value)} is not {'a SHA-256' if sha256 else 'a git object id'}")
    return value


def _body_headers(body: bytes) -> bytes:
    """A request body's headers: JSON, or ``Content-Length: 0`` for a POST without one (as requests sends it)."""
    if not body:
        return b"Content-Length: 0\r\n"
    return b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)


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


def _next_link(header: str) -> str | None:
    """The URL of ``rel="next"`` in a ``Link`` header (RFC 8288), or None."""
    for part in header.split(","):
        target, _, rest = part.partition(";")
        target = target.strip()
        if not (target.startswith("<") and target.endswith(">")):
            continue
        for param in rest.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "rel" and "next" in value.strip().strip('"').lower().split():
                return target[1:-1].strip()
    return None


def _query_dict(query: str) -> dict[str, Any] | None:
    """A query string as request params (repeated keys such as ``scope[]`` kept as lists); None when empty."""
    if not query:
        return None
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in out:
            previous = out[key]
            out[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[key] = value
    return out


def _page_key(path: str, query: str) -> str:
    """A page's identity for the loop check: its path and its query parameters in a fixed order."""
    return path + "?" + urlencode(sorted(parse_qsl(query, keep_blank_values=True)))
