"""The HTTP side of the simulated GitLab: :class:`SimulatedGitLab` (a context manager) and the request handler.

``with SimulatedGitLab() as sim:`` starts a ``ThreadingHTTPServer`` on ``127.0.0.1`` (ephemeral port) in a
background thread; ``sim.url`` is ``http://127.0.0.1:PORT``. HTTP/1.1 keep-alive, ``HEAD`` on every ``GET``
route, ``Content-Length`` bodies. Routes follow GitLab's REST API v4 (paths, field names, status codes, pagination
and rate-limit headers); see ``src/cidash/sim/README.md`` for the list.

Public API::

    SimulatedGitLab(scenario=Scenario(), token="demo-token", readonly_token="demo-readonly-token",
                    latency_ms=0, jitter_ms=0, faults=FaultPlan(), rate_limit=None, rate_limit_window=60.0,
                    rate_limit_advertised=2000, time_scale=0.0, world=None, port=0, clock_start=None,
                    hostile_numbers=None, capacity=None)

Capacity: ``capacity=N`` serves at most N requests at once, as a GitLab of N Puma threads: the others wait in a
queue and their latency counts from when a thread takes them (None, the default: no queue).

Rate limits: every response carries ``RateLimit-Limit/Observed/Remaining/Reset`` for a fixed window of
``rate_limit_window`` seconds per user; the advertised limit is ``rate_limit`` if set (and then exceeding it
answers 429 + ``Retry-After``), else ``rate_limit_advertised`` (GitLab.com's 2,000/min) without enforcement;
``rate_limit_advertised=None`` (and no ``rate_limit``) sends no ``RateLimit-*`` header, as a self-managed GitLab
with its throttles off (the default) does.
    .url .token .readonly_token .project_path .project_id .world .truth .stats
    .set_faults(plan) .advance(seconds) .start() .stop()

``stats``: :class:`Stats` with ``total_requests``, ``by_endpoint`` ({template: count}), ``bytes_by_endpoint``,
``by_method``, ``by_status``, ``mutating_requests``, ``log`` (method, path, status), ``reset()``. Also served
as ``GET /__sim/stats`` and reset by ``POST /__sim/stats/reset`` (no token needed).
"""

from __future__ import annotations

import contextlib
import math
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import SplitResult, parse_qs, urlsplit

from cidash.sim.api import Api
from cidash.sim.api.base import ApiError, Request, Response, _dumps
from cidash.sim.faults import FaultDecision, FaultPlan, FaultState
from cidash.sim.hostile_numbers import HostileNumbers
from cidash.sim.scenario import Scenario, Truth, build_world
from cidash.sim.world import World

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class Stats:
    """Request accounting. Thread-safe; ``reset()`` clears everything."""

    total_requests: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    bytes_by_endpoint: Counter[str] = field(default_factory=Counter)
    by_method: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    log: list[tuple[str, str, int]] = field(default_factory=list)
    bytes_out: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, method: str, template: str, path: str, status: int, nbytes: int) -> None:
        with self._lock:
            self.total_requests += 1
            key = f"{method} {template}"
            self.by_endpoint[key] += 1
            self.bytes_by_endpoint[key] += nbytes
            self.by_method[method] += 1
            self.by_status[status] += 1
            self.bytes_out += nbytes
            if len(self.log) < 100_000:
                self.log.append((method, path, status))

    @property
    def mutating_requests(self) -> int:
        return sum(n for m, n in self.by_method.items() if m in MUTATING)

    def count(self, pattern: str) -> int:
        """Requests whose ``"METHOD template"`` contains ``pattern`` (e.g. ``"/trace"``)."""
        return sum(n for k, n in self.by_endpoint.items() if pattern in k)

    def reset(self) -> None:
        with self._lock:
            self.total_requests = 0
            self.bytes_out = 0
            self.by_endpoint.clear()
            self.bytes_by_endpoint.clear()
            self.by_method.clear()
            self.by_status.clear()
            self.log.clear()

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total_requests": self.total_requests,
                "bytes_out": self.bytes_out,
                "mutating_requests": self.mutating_requests,
                "by_method": dict(sorted(self.by_method.items())),
                "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                "by_endpoint": dict(sorted(self.by_endpoint.items())),
                "bytes_by_endpoint": dict(sorted(self.bytes_by_endpoint.items())),
            }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "nginx"
    sys_version = ""
    sim: SimulatedGitLab  # set on the subclass per server

    def log_message(self, format: str, *args: Any) -> None:
        del format, args

    # -- a lighter HTTP/1.1 than http.server's (its CPU is the benchmark machine's, shared with the client) --------

    def parse_request(self) -> bool:
        """The request line and headers of a well-formed HTTP/1.0 or 1.1 request, without the ``email`` package
        (http.server parses every header block with it: about a quarter of the simulator's CPU per request).
        Anything else (another version, a malformed line) goes to http.server's own parser and its error answers.
        Same results: ``command``, ``path``, ``request_version``, ``headers`` (``get`` case-insensitive, first
        value; ``items`` all), ``close_connection``, and ``Expect: 100-continue``."""
        self.arrived = time.monotonic()  # the request line was read: the latency counts from here
        raw: bytes = getattr(self, "raw_requestline", b"")
        words = raw.split()
        if len(words) != 3 or words[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
            return super().parse_request()
        self.command = words[0].decode("iso-8859-1")
        self.request_version = version = words[2].decode("iso-8859-1")
        self.requestline = str(raw, "iso-8859-1").rstrip("\r\n")
        path = words[1].decode("iso-8859-1")
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path  # as http.server (gh-87389)
        headers = _RequestHeaders()
        while True:
            line = self.rfile.readline(65537)
            if len(line) > 65536:
                self.send_error(431, "Line too long")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            if len(headers.pairs) >= 100:
                self.send_error(431, "Too many headers")
                return False
            text = line.decode("iso-8859-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and headers.pairs:  # an obsolete folded line continues the last header
                name, value = headers.pairs[-1]
                headers.pairs[-1] = (name, f"{value} {text.strip()}")
                continue
            name, sep, value = text.partition(":")
            if sep:
                headers.pairs.append((name.strip(), value.strip()))
        self.headers = headers  # type: ignore[assignment]
        self.close_connection = version == "HTTP/1.0"
        connection = (headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if (headers.get("Expect") or "").lower() == "100-continue" and version == "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def _write_answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """Status line, headers and body in one write (http.server sends the head and the body apart: two system
        calls, and a client reads them in two). The same bytes as ``send_response`` + ``send_header`` would send."""
        message = self.responses[status][0] if status in self.responses else ""
        lines = [
            f"HTTP/1.1 {status} {message}\r\n",
            f"Server: {self.version_string()}\r\nDate: {_http_date()}\r\n",
        ]
        for key, value in headers:
            lines.append(f"{key}: {value}\r\n")
            if key.lower() == "connection":
                if value.lower() == "close":
                    self.close_connection = True
                elif value.lower() == "keep-alive":
                    self.close_connection = False
        lines.append("\r\n")
        self.wfile.write("".join(lines).encode("latin-1", "strict") + body)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        sim = self.sim
        arrived = getattr(self, "arrived", None) or time.monotonic()
        body = self._read_body()
        workers = sim.workers
        if workers is None or self.path.startswith("/__sim/"):
            self._serve(method, arrived, body)
            return
        # A server of ``capacity`` request threads (Puma's): a request waits in its queue for a free one, and its
        # latency counts from then, so more requests in flight than threads come back later, not faster.
        with workers:
            with sim.serving_lock:
                sim.serving += 1
                sim.peak_serving = max(sim.peak_serving, sim.serving)
            try:
                self._serve(method, max(arrived, time.monotonic()), body)
            finally:
                with sim.serving_lock:
                    sim.serving -= 1

    def _serve(self, method: str, arrived: float, body: bytes) -> None:
        sim = self.sim
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        if path.startswith("/__sim/"):
            self._sim_control(method, path)
            return
        template, handler, params, path_unknown = sim.api.match(method, path)
        req = Request(method=method, path=path, query=query, headers=headers, body=body, params=params)
        sim.api._local.host = headers.get("host")
        decision = sim.fault_state.decide(method, template, path)
        if decision.delay_s > 0:
            time.sleep(decision.delay_s)
        base_delay = sim.latency_ms / 1000.0
        if sim.jitter_ms:
            with sim.rng_lock:
                base_delay += sim.rng.uniform(0.0, sim.jitter_ms) / 1000.0
        # The answer leaves ``latency_ms`` (plus jitter) after the request line arrived, its own work included:
        # the time this process spends on it (and waiting for its GIL among the other connections' threads) is
        # not added on top, so a round trip takes the latency asked for, as the benchmarks' bound assumes.
        response = self._answer(
            split=split, path=path, handler=handler, path_unknown=path_unknown, req=req, decision=decision
        )
        wait = arrived + decision.delay_s + base_delay - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._send(method, template, path, response, decision)

    def _answer(
        self,
        *,
        split: SplitResult,
        path: str,
        handler: Any,
        path_unknown: bool,
        req: Request,
        decision: FaultDecision,
    ) -> Response:
        """The response to one request: a front-end redirect or gateway error of the fault plan, else the API's."""
        sim = self.sim
        if decision.redirect_to is not None:  # a front-end redirect: before authentication
            target = self.path if split.query else path
            location = decision.redirect_to.replace("{path}", target)
            return Response(decision.redirect_status, b"", {"Location": location})
        if decision.status is not None and decision.status >= 500:
            # a proxy-level failure (load balancer, Workhorse): no application headers, HTML body for 502/503
            return self._gateway_error(decision.status)
        extra: dict[str, str] = {}
        try:
            self._authenticate(req)
            extra.update(sim.rate_limiter.check(req.user))
            if decision.status is not None:
                raise self._fault_error(decision)
            if handler is None:
                if path_unknown:
                    raise ApiError(404, {"error": "404 Not Found"})
                raise ApiError(405, {"error": "405 Not Allowed"})
            with sim.world.lock:
                result = handler(sim.api, req)
            response = result if isinstance(result, Response) else Response(200, _dumps(result), {})
        except ApiError as exc:
            response = Response(exc.status, _dumps(exc.body), exc.headers)
        except Exception as exc:  # a simulator bug: answer like GitLab would, keep serving
            response = Response(500, _dumps({"message": f"500 Internal Server Error ({type(exc).__name__})"}), {})
        response.headers.update(extra)
        return response

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline(65537)
                try:
                    size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                except ValueError:
                    size = 0
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    def _authenticate(self, req: Request) -> None:
        sim = self.sim
        token = req.headers.get("private-token") or req.headers.get("job-token") or req.arg("private_token")
        auth = req.headers.get("authorization", "")
        if not token and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        if req.path.startswith("/v2/") or req.path == "/jwt/auth":
            req.user, req.role = "demo", "reporter"
            return
        if req.path == "/api/graphql" and (not token or req.headers.get("job-token") == token):
            # GitLab's GraphQL API takes no CI job token and lets anyone ask: such a query runs anonymously
            req.user, req.role = "anonymous", ""
            return
        if token and token == sim.token:
            req.user, req.role = "demo", "maintainer"
        elif token and sim.readonly_token and token == sim.readonly_token:
            req.user, req.role = "reporter", "reporter"
        else:
            raise ApiError(401, {"message": "401 Unauthorized"})

    @staticmethod
    def _gateway_error(status: int) -> Response:
        if status == 500:
            return Response(500, _dumps({"message": "500 Internal Server Error"}), {})
        reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}.get(status, "Error")
        html = f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>\n"
        return Response(status, html.encode(), {}, content_type="text/html")

    def _fault_error(self, decision: FaultDecision) -> ApiError:
        status = decision.status or 500
        if status == 429:
            return ApiError(
                429,
                {"message": "429 Too Many Requests"},
                {"Retry-After": str(math.ceil(decision.retry_after))},
            )
        text = {500: "500 Internal Server Error", 502: "502 Bad Gateway", 503: "503 Service Unavailable"}.get(
            status, f"{status} Error"
        )
        return ApiError(status, {"message": text})

    def _send(self, method: str, template: str, path: str, response: Response, decision: FaultDecision) -> None:
        sim = self.sim
        if decision.page_loop and response.status == 200:
            response = self._looped(response)
        body = response.body
        if decision.truncate_bytes is not None and response.status == 200:
            body = body[: decision.truncate_bytes]
        payload = b"" if method == "HEAD" else body
        if decision.reset:
            payload = body[: max(1, len(body) // 2)] if body else b""
        # account before answering, so a client that got its response sees it counted
        sim.stats.record(method, template, path, response.status, len(payload))
        if not decision.reset and not decision.slow_bytes_per_s:
            head = [
                ("Content-Type", response.content_type),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "max-age=0, private, must-revalidate"),
                ("X-Request-Id", f"sim-{sim.stats.total_requests:08d}"),
                *response.headers.items(),
            ]
            self._write_answer(response.status, head, payload)
            return
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=0, private, must-revalidate")
        self.send_header("X-Request-Id", f"sim-{sim.stats.total_requests:08d}")
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if method == "HEAD":
            return
        if decision.reset:
            try:
                self.wfile.write(payload)
                self.wfile.flush()
            finally:
                self._reset()
            return
        if decision.slow_bytes_per_s:
            chunk = max(1, int(decision.slow_bytes_per_s / 20))
            for i in range(0, len(body), chunk):
                self.wfile.write(body[i : i + chunk])
                self.wfile.flush()
                time.sleep(chunk / decision.slow_bytes_per_s)
        else:
            self.wfile.write(body)

    def _looped(self, response: Response) -> Response:
        """The page-loop fault: the pagination headers point back at this very page (even on the last one)."""
        headers = dict(response.headers)
        if "x-next-page" in headers:
            headers["x-next-page"] = headers.get("x-page") or "1"
        here = f"{self.sim.api.base()}{self.path}"
        links = [part for part in headers.get("Link", "").split(", ") if part and 'rel="next"' not in part]
        headers["Link"] = ", ".join([f'<{here}>; rel="next"', *links])
        return Response(response.status, response.body, headers, content_type=response.content_type)

    def _reset(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.close()

    def _sim_control(self, method: str, path: str) -> None:
        sim = self.sim
        if path == "/__sim/stats" and method in ("GET", "HEAD"):
            body = _dumps(sim.stats.as_dict())
            status = 200
        elif path == "/__sim/stats/reset" and method == "POST":
            sim.stats.reset()
            body, status = _dumps({"reset": True}), 200
        elif path == "/__sim/truth" and method == "GET":
            t = sim.truth
            body = _dumps(
                {
                    "migration_at": t.migration_at.isoformat(),
                    "baseline_startup_median": t.baseline_startup_median,
                    "candidate_startup_median": t.candidate_startup_median,
                    "startup_improvement": t.startup_improvement,
                    "baseline_image_tag": t.baseline_image_tag,
                    "candidate_image_tag": t.candidate_image_tag,
                }
            )
            status = 200
        else:
            body, status = _dumps({"error": "404 Not Found"}), 404
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)


class _RequestHeaders:
    """A request's headers as :meth:`_Handler.parse_request` reads them: the few lookups the handler makes."""

    __slots__ = ("pairs",)

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []

    def get(self, name: str, default: str | None = None) -> str | None:
        key = name.lower()
        for k, v in self.pairs:
            if k.lower() == key:
                return v
        return default

    def __getitem__(self, name: str) -> str | None:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def items(self) -> list[tuple[str, str]]:
        return list(self.pairs)

    def keys(self) -> list[str]:
        return [k for k, _ in self.pairs]

    def get_all(self, name: str, failobj: Any = None) -> list[str] | Any:
        found = [v for k, v in self.pairs if k.lower() == name.lower()]
        return found or failobj


_DATE: list[Any] = [0, ""]  # (second, its HTTP date): formatted once a second, not once an answer


def _http_date() -> str:
    now = int(time.time())
    if _DATE[0] != now:
        from email.utils import formatdate

        _DATE[1], _DATE[0] = formatdate(now, usegmt=True), now
    return str(_DATE[1])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Python's default listen backlog is 5: a client opening a pool of 16+ connections at once would see some
    # refused or stalled. GitLab's front end accepts far more.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return  # a client went away (or a reset fault): not worth a traceback
        super().handle_error(request, client_address)


class RateLimiter:
    """Fixed windows of ``window`` seconds per user; past ``budget`` requests: 429 with ``Retry-After``."""

    def __init__(self, budget: int | None, window: float = 60.0, advertised: int | None = 2000) -> None:
        self.budget = budget
        self.window = window
        #: None: no RateLimit-* headers at all (a self-managed GitLab with its throttles off, its default).
        self.limit = budget if budget is not None else advertised
        self._counts: dict[str, int] = {}
        self._window_start = time.time()
        self._lock = threading.Lock()

    def check(self, user: str) -> dict[str, str]:
        with self._lock:
            now = time.time()
            if now - self._window_start >= self.window:
                self._window_start = now
                self._counts.clear()
            count = self._counts.get(user, 0) + 1
            self._counts[user] = count
            reset = self._window_start + self.window
            if self.limit is None:
                return {}
            headers = {
                "RateLimit-Limit": str(self.limit),
                "RateLimit-Observed": str(count),
                "RateLimit-Remaining": str(max(0, self.limit - count)),
                "RateLimit-Reset": str(math.ceil(reset)),
                "RateLimit-ResetTime": datetime.fromtimestamp(reset, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"),
            }
        if self.budget is not None and count > self.budget:
            headers["Retry-After"] = str(max(1, math.ceil(reset - now)))
            raise ApiError(429, {"message": "429 Too Many Requests"}, headers)
        return headers


class SimulatedGitLab:
    """A running simulated GitLab. Use as a context manager (starts and stops the server)."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        token: str = "demo-token",
        readonly_token: str | None = "demo-readonly-token",
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        faults: FaultPlan | None = None,
        rate_limit: int | None = None,
        rate_limit_window: float = 60.0,
        rate_limit_advertised: int | None = 2000,
        time_scale: float = 0.0,
        world: World | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        clock_start: datetime | None = None,
        hostile_numbers: HostileNumbers | None = None,
        capacity: int | None = None,
    ) -> None:
        if scenario is None and world is not None:
            scenario = world.scenario
        if scenario is None:
            scenario = Scenario() if seed is None else Scenario(seed=seed)
        self.scenario = scenario
        self.world = (
            world if world is not None else build_world(scenario, time_scale=time_scale, clock_start=clock_start)
        )
        if world is not None:
            self.world.set_time_scale(time_scale)
        self.token = token
        self.readonly_token = readonly_token
        # What GET /personal_access_tokens/self says about each token (expires_at: an ISO date or None).
        expires = (scenario.end + timedelta(days=90)).date().isoformat()
        self.personal_tokens: dict[str, dict[str, Any]] = {token: {"id": 1, "scopes": ["api"], "expires_at": expires}}
        if readonly_token:
            self.personal_tokens[readonly_token] = {"id": 2, "scopes": ["read_api"], "expires_at": expires}
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.rng = random.Random(scenario.seed)
        self.rng_lock = threading.Lock()
        self.fault_state = FaultState(faults or FaultPlan())
        self.hostile_numbers = hostile_numbers
        self.rate_limiter = RateLimiter(rate_limit, rate_limit_window, rate_limit_advertised)
        #: At most ``capacity`` requests served at once (None: as many as arrive); the rest wait their turn.
        self.workers = threading.BoundedSemaphore(capacity) if capacity is not None else None
        self.serving = 0  # requests being served now, and the most at once (counted only with a capacity)
        self.peak_serving = 0
        self.serving_lock = threading.Lock()
        self.stats = Stats()
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.api = Api(self)

    # -- facts for callers --------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def project_path(self) -> str:
        return self.scenario.project_path

    @property
    def project_id(self) -> int:
        return self.scenario.project_id

    @property
    def truth(self) -> Truth:
        assert self.world.truth is not None
        return self.world.truth

    def set_faults(self, plan: FaultPlan | None) -> None:
        self.fault_state = FaultState(plan or FaultPlan())

    def advance(self, seconds: float) -> float:
        return self.world.advance(seconds)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.world.now(), UTC)

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> SimulatedGitLab:
        handler = type("BoundHandler", (_Handler,), {"sim": self})
        server = _Server((self.host, self.port), handler)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"sim-gitlab-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Run in the foreground (``cidash simulate``) until interrupted."""
        if self._server is None:
            self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def __enter__(self) -> SimulatedGitLab:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
