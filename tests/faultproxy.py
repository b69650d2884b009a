"""A small fault-injecting HTTP/1.1 proxy on 127.0.0.1, in front of the simulated GitLab, for transport tests.

It reads each request off the client's keep-alive connection, forwards it (headers verbatim) to the upstream
(or, for an absolute-form target as an HTTP proxy gets them, to the host named there), reads the whole answer,
and writes it back re-framed with a ``Content-Length``, unless a :class:`ProxyFault` fires for that request:

==================== ======================================================================================
``close_mid_body``   the full ``Content-Length`` header, half the body, then a clean close (FIN)
``rst``              a reset (RST) before any byte of the answer
``garbage``          bytes that are not HTTP, then a close
``html200``          ``200 OK`` with a proxy's HTML page
``empty200``         ``200 OK`` with an empty body
``truncated_json``   ``200 OK`` with the first half of the body, framed as complete
``chunk_cut``        a chunked body cut after its first chunk (no terminating chunk), then a clean close
``conflicting_len``  two different ``Content-Length`` headers, then the body
``hang``             no answer at all until the client gives up (or the proxy stops)
``redirect``         ``302`` to ``location`` (``{path}`` becomes the request's path and query)
==================== ======================================================================================

It also records every request it forwarded (:attr:`FaultProxy.seen`). :class:`Recorder` is the "other host":
a server (e.g. on 127.0.0.2) that records what it receives and answers ``200`` with a fixed text.
"""

from __future__ import annotations

import contextlib
import fnmatch
import http.client
import random
import socket
import socketserver
import struct
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

Kind = Literal[
    "close_mid_body",
    "rst",
    "garbage",
    "html200",
    "empty200",
    "truncated_json",
    "chunk_cut",
    "conflicting_len",
    "hang",
    "redirect",
]
HOP_BY_HOP = {"connection", "proxy-connection", "keep-alive", "transfer-encoding", "content-length", "te", "upgrade"}


@dataclass(frozen=True)
class ProxyFault:
    """Fire ``kind`` on requests whose ``METHOD /path`` (query stripped) matches ``endpoint`` (fnmatch)."""

    kind: Kind
    endpoint: str = "*"
    probability: float = 1.0
    first: int | None = None  # fire at most this often
    location: str = ""  # for "redirect"

    def matches(self, method: str, path: str) -> bool:
        return fnmatch.fnmatchcase(f"{method} {path}", self.endpoint) or fnmatch.fnmatchcase(path, self.endpoint)


@dataclass(frozen=True)
class Seen:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        proxy = self.server.proxy
        while not proxy.stopping.is_set():
            line = self.rfile.readline(65537)
            if not line or not line.strip():
                return
            try:
                method, target, _ = line.decode("latin-1").split(" ", 2)
            except ValueError:
                return
            headers: list[tuple[str, str]] = []
            while True:
                raw = self.rfile.readline(65537)
                if raw in (b"\r\n", b"\n", b""):
                    break
                name, _, value = raw.decode("latin-1").partition(":")
                headers.append((name.strip(), value.strip()))
            lower = {k.lower(): v for k, v in headers}
            body = self.rfile.read(int(lower.get("content-length") or 0)) if lower.get("content-length") else b""
            proxy.record(Seen(method, target, lower))
            host, port, path = proxy.route(target)
            fault = proxy.decide(method, urlsplit(path).path)
            if fault is not None and fault.kind == "redirect":  # a whole answer: the connection stays open
                self._answer(302, "Found", [("Location", fault.location.replace("{path}", path))], b"")
                continue
            if fault is not None and fault.kind in ("rst", "garbage", "hang"):
                self._early(fault)
                return
            status, reason, out_headers, content = _forward(host, port, method, path, headers, body)
            if fault is None:
                self._answer(status, reason, out_headers, content)
                continue
            if fault.kind in ("html200", "empty200", "truncated_json"):  # whole answers too
                self._replace(fault, out_headers, content)
                continue
            self._late(fault, status, reason, out_headers, content)
            return

    def _early(self, fault: ProxyFault) -> None:
        if fault.kind == "rst":
            _reset(self.connection)
        elif fault.kind == "garbage":
            self.wfile.write(b"\x16\x03\x01\x00 this is not HTTP \xff\xfe\r\n\r\n")
            self.wfile.flush()
        elif fault.kind == "hang":
            self.server.proxy.stopping.wait(30)

    def _replace(self, fault: ProxyFault, headers: list[tuple[str, str]], body: bytes) -> None:
        """A well-framed 200 whose body is not what the endpoint returns."""
        if fault.kind == "html200":
            page = b"<html><head><title>Sign in</title></head><body>Corporate proxy</body></html>\n"
            self._answer(200, "OK", [("Content-Type", "text/html")], page)
        elif fault.kind == "empty200":
            self._answer(200, "OK", [("Content-Type", "application/json")], b"")
        else:  # truncated_json
            kept = [(k, v) for k, v in headers if k.lower() != "content-encoding"]
            self._answer(200, "OK", kept, body[: len(body) // 2])

    def _late(self, fault: ProxyFault, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        """An answer whose framing does not hold, then a clean close (FIN)."""
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        if fault.kind == "close_mid_body":
            self.wfile.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body[: len(body) // 2])
        elif fault.kind == "chunk_cut":
            half = body[: max(1, len(body) // 2)]
            self.wfile.write(
                f"{head}Transfer-Encoding: chunked\r\n\r\n{len(half):x}\r\n".encode("latin-1") + half + b"\r\n"
            )
        elif fault.kind == "conflicting_len":
            framing = f"Content-Length: {len(body)}\r\nContent-Length: {len(body) + 7}\r\n\r\n"
            self.wfile.write((head + framing).encode("latin-1") + body)
        self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)

    def _answer(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        self.wfile.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body)
        self.wfile.flush()


def _forward(
    host: str, port: int, method: str, path: str, headers: list[tuple[str, str]], body: bytes
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                conn.putheader(name, value)
        if body:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        response = conn.getresponse()
        content = response.read()  # chunked decoded; Content-Encoding left as it is
        kept = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
        return response.status, response.reason, kept, content
    finally:
        conn.close()


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    proxy: FaultProxy

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that went away mid-answer is what these tests provoke


class FaultProxy:
    """``with FaultProxy(sim.url, [ProxyFault("rst", "*/trace", first=3)]) as proxy:`` then point a client at
    ``proxy.url``. ``fired`` counts the faults that fired, by kind; ``seen`` lists every request received."""

    def __init__(self, upstream: str, faults: Iterable[ProxyFault] = (), *, seed: int = 0) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.faults: tuple[ProxyFault, ...] = tuple(faults)
        self.fired: Counter[str] = Counter()
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        self._fired_by_rule: Counter[int] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_faults(self, faults: Iterable[ProxyFault]) -> None:
        with self._lock:
            self.faults = tuple(faults)
            self._fired_by_rule.clear()

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def route(self, target: str) -> tuple[str, int, str]:
        """(host, port, origin-form path) for a request target (absolute-form when used as an HTTP proxy)."""
        if target.startswith(("http://", "https://")):
            parts = urlsplit(target)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            return parts.hostname or "127.0.0.1", parts.port or 80, path or "/"
        return self.upstream[0], self.upstream[1], target

    def decide(self, method: str, path: str) -> ProxyFault | None:
        with self._lock:
            for index, fault in enumerate(self.faults):
                if not fault.matches(method, path):
                    continue
                if fault.first is not None and self._fired_by_rule[index] >= fault.first:
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                self._fired_by_rule[index] += 1
                self.fired[fault.kind] += 1
                return fault
        return None

    def start(self) -> FaultProxy:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _RecorderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    recorder: Recorder

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.recorder.record(Seen(method, self.path, {k.lower(): v for k, v in self.headers.items()}))
        body = self.recorder.body
        self.send_response(self.recorder.status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer("GET")

    def do_HEAD(self) -> None:
        self._answer("HEAD")

    def do_POST(self) -> None:
        self._answer("POST")


class Recorder:
    """The other host: records every request (method, target, headers) and answers ``status`` with ``body``."""

    def __init__(
        self, host: str = "127.0.0.2", body: bytes = b"object storage says hello\n", status: int = 200
    ) -> None:
        self.host = host
        self.body = body
        self.status = status
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def __enter__(self) -> Recorder:
        handler = type("BoundRecorder", (_RecorderHandler,), {"recorder": self})
        self._server = ThreadingHTTPServer((self.host, 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
