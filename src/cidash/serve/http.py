"""The HTTP side of ``cidash serve`` (standard library ``ThreadingHTTPServer``, HTTP/1.1, Content-Length bodies).

``GET /metrics`` (OpenMetrics when ``Accept`` asks for ``application/openmetrics-text``, else Prometheus text
0.0.4), ``GET /healthz``, ``GET /readyz``, ``POST /webhook``. Every answer is produced by :class:`ServeApp`
methods; this module only speaks HTTP. A failure inside a handler is one log line and a 500, never a traceback.

Each connection has a thread of its own while it lasts, so the connections are bounded: at most
:data:`MAX_CONNECTIONS` at once (one more is closed as it is accepted, and logged), one that sends nothing for
:data:`IDLE_SECONDS` (a request line, a header, a piece of a body, or the next request of a keep-alive
connection) is closed, and so is one whose request, once begun, is not whole :data:`REQUEST_SECONDS` later (a
client trickling a byte now and then, which no read's timeout ends) or whose answer is not taken
:data:`ANSWER_SECONDS` after it is ready (a client reading a byte now and then). Without them, sockets opened and
left silent or trickling made a thread each, for ever, and 64 of them held every slot.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast

from cidash.errors import ConfigError, UsageError
from cidash.serve.webhook import MAX_BODY_BYTES

if TYPE_CHECKING:
    from cidash.serve.app import ServeApp

DEFAULT_PORT = 9717
DEFAULT_LISTEN = f"127.0.0.1:{DEFAULT_PORT}"
#: Connections served at once (a Prometheus or two, GitLab's webhook deliveries: a handful).
MAX_CONNECTIONS = 64
#: A connection silent this long is closed (Prometheus and GitLab send a whole request in milliseconds).
IDLE_SECONDS = 30.0
#: A request must be whole (request line, headers, body) this long after its first byte, else its connection is
#: closed.
REQUEST_SECONDS = 10.0
#: An answer must be taken by the client (written whole) this long after it is ready, else its connection is closed.
ANSWER_SECONDS = 30.0


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` (127.0.0.1) or ``PORT``."""
    value = text.strip()
    host = "127.0.0.1"
    port_text = value
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or not value[end + 1 :].startswith(":"):
            raise UsageError(f"--listen {text!r} is not HOST:PORT", hint="e.g. 127.0.0.1:9717 or [::1]:9717")
        host, port_text = value[1:end], value[end + 2 :]
    elif ":" in value:
        head, port_text = value.rsplit(":", 1)
        host = head or host
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise UsageError(f"--listen {text!r} is not HOST:PORT", hint="e.g. 127.0.0.1:9717 or 0.0.0.0:9717")
    return host, port


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    app: ServeApp
    max_connections = MAX_CONNECTIONS

    def server_activate(self) -> None:
        self._lock = threading.Lock()
        self.connections = 0  # being served now
        self._refused = 0
        self._slow = 0
        self._due: dict[_Handler, tuple[float, str]] = {}  # a request read or an answer written -> by when, what
        self._closed = threading.Event()
        super().server_activate()
        threading.Thread(target=self._reap, name="cidash-serve-reaper", daemon=True).start()

    def due(self, handler: _Handler, deadline: float | None, what: str = "") -> None:
        """``handler``'s connection is closed at ``deadline`` unless this is called again first (None: no deadline);
        ``what`` is logged then."""
        with self._lock:
            if deadline is None:
                self._due.pop(handler, None)
            else:
                self._due[handler] = (deadline, what)

    def _reap(self) -> None:
        """Close the connections past their deadline (a request not whole, an answer not taken): the thread reading or
        writing there sees the end."""
        while not self._closed.wait(min(1.0, REQUEST_SECONDS / 4)):
            now = time.monotonic()
            with self._lock:
                late = [(h, what) for h, (deadline, what) in self._due.items() if deadline <= now]
                for handler, _ in late:
                    del self._due[handler]
            for handler, what in late:
                self._slow += 1
                if self._slow == 1 or self._slow % 1000 == 0:
                    self.app.log("http_refused", "warning", reason=what, refused=self._slow)
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(socket.SHUT_RDWR)

    def server_close(self) -> None:
        closed = getattr(self, "_closed", None)  # (not there when the port could not be bound)
        if closed is not None:
            closed.set()
        super().server_close()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            full = self.connections >= self.max_connections
            if not full:
                self.connections += 1
        if full:
            self._refused += 1  # (the accept loop's thread only)
            if self._refused == 1 or self._refused % 1000 == 0:  # one line, not one per connection of a flood
                self.app.log("http_refused", "warning", reason="too many connections", refused=self._refused)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread could be started: the slot is free again
            self._done()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self.connections -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer, or a bug: one line, never a traceback on stderr.
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        self.app.log("http_error", "error", error=type(exc).__name__)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cidash"
    sys_version = ""
    server: _Server
    timeout = IDLE_SECONDS  # the socket's timeout: each read waits at most this long

    def log_message(self, format: str, *args: Any) -> None:
        pass  # events are logged by the app, one line each; scrapes are not events

    def handle_one_request(self) -> None:
        # The request's deadline starts with its first byte, not with the wait for it (that is IDLE_SECONDS').
        try:
            first = cast(io.BufferedReader, self.rfile).peek(1)  # (rbufsize -1: always buffered)
        except (OSError, ValueError):
            self.close_connection = True
            return
        if not first:
            self.close_connection = True
            return
        self.server.due(self, time.monotonic() + REQUEST_SECONDS, "request not whole in time")
        try:
            super().handle_one_request()
        finally:
            self.server.due(self, None)

    def _read(self) -> None:
        """The request is whole: its deadline no longer applies (the answer is the app's work)."""
        self.server.due(self, None)

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.server.due(self, time.monotonic() + ANSWER_SECONDS, "answer not taken in time")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, doc: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        self._send(status, (json.dumps(doc) + "\n").encode(), "application/json", extra)

    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # never a traceback; the client gets a 500
            self.server.app.log("http_error", "error", path=self.path.split("?")[0][:200], error=type(exc).__name__)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._json(500, {"status": "error", "error": "internal error (see the cidash serve log)"})

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_HEAD(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    def _get(self) -> None:
        self._read()
        app = self.server.app
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, ctype = app.metrics(self.headers.get("Accept", ""))
            self._send(200, body, ctype)
        elif path == "/healthz":
            ok = app.healthy()
            self._json(200 if ok else 503, {"status": "ok" if ok else "stopping"})
        elif path == "/readyz":
            ready, pending = app.ready()
            doc: dict[str, Any] = {"status": "ready" if ready else "starting"}
            if not ready:
                doc["pending"] = pending
            self._json(200 if ready else 503, doc)
        elif path == "/webhook":
            self._json(405, {"status": "error", "error": "use POST"}, {"Allow": "POST"})
        else:
            self._json(404, {"status": "error", "error": "not found"})

    def _post(self) -> None:
        app = self.server.app
        path = self.path.split("?", 1)[0]
        if path != "/webhook":
            self.close_connection = True
            self._json(404, {"status": "error", "error": "not found"})
            return
        length_text = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length_text is None:
            self.close_connection = True
            self._json(411, {"status": "error", "error": "a Content-Length body is required"})
            return
        try:
            length = int(length_text)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            app.webhook_refused("too_large" if length > 0 else "bad_request")
            self._json(413 if length > 0 else 400, {"status": "error", "error": "body too large or invalid length"})
            return
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return  # the client went away mid-body (or took too long): nothing to answer
        self._read()
        status, doc = app.webhook(self.headers.get("X-Gitlab-Token"), self.headers.get("X-Gitlab-Event"), body)
        self._json(status, doc)


def bind(app: ServeApp, host: str, port: int) -> _Server:
    """A server bound to ``host:port`` (not yet serving). A taken port is a one-line :class:`ConfigError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server_class = type("BoundServer", (_Server,), {"address_family": family, "app": app})
    try:
        server: _Server = server_class((host, port), _Handler)
        return server
    except OSError as exc:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"cannot listen on {where}: the port is already in use",
                hint="stop the other process or choose another --listen HOST:PORT",
            ) from None
        raise ConfigError(f"cannot listen on {where}: {exc.strerror or exc}", hint="check --listen") from None
