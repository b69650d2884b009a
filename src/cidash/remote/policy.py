"""What every request to GitLab shares: the rate limiter, the retry policy, request accounting, error mapping.

One :class:`RateLimiter` and one :class:`RequestStats` are shared by every request of the HTTP client
(:mod:`cidash.remote.http`: its own connections and httpx), so the ceiling and GitLab's own ``RateLimit-*``
headers hold across both and across all worker threads.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from cidash.config import url_origin
from cidash.errors import (
    AuthError,
    NotFound,
    PaginationError,
    PermissionDenied,
    RateLimited,
    RemoteError,
    Unsupported,
)
from cidash.models import RateLimitState

#: Statuses worth another attempt (after a pause): rate limited, and the transient server errors.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Redirect statuses; at most MAX_REDIRECTS hops are followed, and only as :func:`same_origin` allows.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
#: Hard cap on the pages of one listing (100 items each): a second guard behind the visited-page check.
MAX_PAGES = 10_000
#: Headers that carry a GitLab credential: sent only to the configured origin.
CREDENTIAL_HEADERS = frozenset({"private-token", "job-token", "authorization"})

Origin = tuple[str, str, int]


def origin_of(url: str) -> Origin:
    """(scheme, host, port) of a URL, lower-cased, with the scheme's default port filled in."""
    return url_origin(url)


def same_origin(url: str, other: str | Origin) -> bool:
    """Whether ``url`` is on the same origin (scheme, host, port) as ``other`` (a URL or an origin)."""
    return origin_of(url) == (other if isinstance(other, tuple) else origin_of(other))


def show_origin(url: str) -> str:
    """``scheme://host:port`` of a URL, for messages (never a path, query or user info)."""
    scheme, host, port = origin_of(url)
    return f"{scheme}://{host}:{port}"


def instance_url(url: str) -> str:
    """The GitLab a URL names, as the store records it: scheme, host and port (the default port left out) and the
    path GitLab is served under (a relative URL root such as ``/gitlab``); never user info, a query or a fragment.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default = 443 if scheme == "https" else 80
    netloc = host if port in (None, default) else f"{host}:{port}"
    path = parts.path.rstrip("/")
    if path.endswith("/api/v4"):
        path = path[: -len("/api/v4")]
    return f"{scheme}://{netloc}{path}"


#: An answer held whole in memory (anything but a log streamed into its parser) may not be longer than this once
#: decoded, on either HTTP stack: no GitLab API answer comes near (a page of 100 jobs is ~300 KB), and a gzip body
#: a thousand times smaller (a "zip bomb" from a proxy or a hostile server) would otherwise fill the memory.
MAX_ANSWER_BYTES = 64 * 1024 * 1024

#: A job log is streamed into its parser, never held whole, so MAX_ANSWER_BYTES is not its limit; past this many
#: decoded bytes the sync stops reading it and keeps the facts of what it read, marked truncated. GitLab's own
#: limit is 100 MB unless an administrator raised ``ci_jobs_trace_size_limit`` (docs, "Maximum file size for job
#: logs"); this is ten times that, and a log that never ends stops here instead of holding a sync for ever.
MAX_LOG_BYTES = 1024**3


def wire_limit(streamed: bool) -> int:
    """The most bytes one answer may take on the wire (status lines, headers, framing, body): twice what its body
    may decode to (:data:`MAX_LOG_BYTES` for a log streamed into a sink, else :data:`MAX_ANSWER_BYTES`) and 256 KiB
    for its headers and the last read, so the body's own cap is met first. Ends an answer that never does,
    whatever its framing says: endless interim answers, chunk extensions, bodies."""
    return 2 * (MAX_LOG_BYTES if streamed else MAX_ANSWER_BYTES) + 256 * 1024


def too_long(nbytes: int) -> str:
    """What an answer past :data:`MAX_ANSWER_BYTES` is, for the error."""
    limit = MAX_ANSWER_BYTES // 2**20
    return f"an answer longer than {limit} MiB ({nbytes:,} bytes read, decoded): not a GitLab API answer"


#: Digits past which an integer in a JSON answer is read as an infinity of its sign (see :func:`parse_json`).
JSON_INT_DIGITS = 40


class JSONTooDeep(ValueError):
    """A JSON text nested deeper than Python's parser recurses."""


def _bounded_int(text: str) -> int | float:
    if len(text) - text.startswith("-") > JSON_INT_DIGITS:
        return -math.inf if text.startswith("-") else math.inf
    return int(text)


def parse_json(body: bytes | str) -> tuple[Any, bool]:
    """An untrusted JSON text: (data, lossy). Python refuses an integer literal of more than 4,300 digits with a
    ``ValueError`` for the whole text (a page of 100 jobs, over one number); then every integer of more than
    :data:`JSON_INT_DIGITS` digits is read as an infinity of its sign instead (``lossy``), which the wire turns
    away like any implausible number, one record at a time. Raises ``ValueError`` for a text that is not JSON,
    :class:`JSONTooDeep` for one nested past Python's recursion limit (``json`` raises ``RecursionError``)."""
    try:
        return json.loads(body), False
    except RecursionError:
        raise JSONTooDeep("JSON nested too deep") from None
    except ValueError:
        pass
    try:
        return json.loads(body, parse_int=_bounded_int), True
    except RecursionError:
        raise JSONTooDeep("JSON nested too deep") from None


def read_json(body: bytes, content_type: str | None) -> tuple[Any, str | None, bool]:
    """A 2xx body an endpoint answers with JSON: (data, None, lossy) (see :func:`parse_json`), or (None, what is
    wrong with it, False)."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if not body.strip():
        return None, "an empty body", False
    if kind == "text/html" or body.lstrip()[:1] == b"<":
        return None, f"an HTML page ({len(body)} bytes)", False
    try:
        data, lossy = parse_json(body)
    except JSONTooDeep:
        return None, f"a JSON body nested too deep to read ({len(body)} bytes)", False
    except ValueError:
        return None, f"a body that is not complete JSON ({len(body)} bytes)", False
    return data, None, lossy


def json_problem(body: bytes, content_type: str | None) -> tuple[Any, str | None]:
    """Parse a 2xx body an endpoint answers with JSON: (data, None), or (None, what is wrong with it)."""
    data, problem, _ = read_json(body, content_type)
    return data, problem


def is_html(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "text/html"


class PageGuard:
    """Ends a listing that would loop: a next page already read, or more than :data:`MAX_PAGES` pages."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.pages = 0
        self._seen: set[str] = set()

    def visit(self, key: str, *, describe: str = "the next-page link") -> None:
        if key in self._seen:
            raise PaginationError(
                f"{self.what}: {describe} points to a page already read (after {self.pages} pages); listing stopped",
                hint="GitLab (or a proxy in front of it) answers with a looping pagination link",
            )
        self._seen.add(key)
        self.pages += 1
        if self.pages > MAX_PAGES:
            raise PaginationError(f"{self.what}: more than {MAX_PAGES} pages; listing stopped")


Missing = Literal["project", "group", "endpoint", "resource"]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # total tries per request
    base_delay: float = 0.2  # first back-off; doubles each time, with jitter
    max_delay: float = 4.0
    max_retry_after: float = 60.0  # never sleep longer than this on a Retry-After

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base = min(self.base_delay * (2 ** (attempt - 1)), self.max_delay)
        jitter: float = 0.75 + random.random() / 2  # not crypto: spreads retries of parallel workers
        return float(base * jitter)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # rare (GitLab sends seconds): not imported at every start

    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except (ValueError, OverflowError):  # not a number, or "inf" / "1e400" (no integer): as if not sent
        return None


#: In-flight requests while the server has sent no ``RateLimit-*`` header (a self-managed GitLab with its
#: throttles off, the default): as many as a 16-thread script would hold, which a platform engineer already
#: accepts; more only while the server answers as fast as it did (below), or once it publishes a limit it
#: enforces (then its headers govern).
UNADVERTISED_CONCURRENCY = 16

#: While the server publishes no limit, the in-flight ceiling grows past :data:`UNADVERTISED_CONCURRENCY` (up to
#: ``concurrency``) by :data:`PROBE_STEP` after each round of answers that kept their pace: the mean, over a
#: round of answers to requests sent at the current ceiling, of each one's time to its first byte against the
#: median of its kind's at :data:`UNADVERTISED_CONCURRENCY`, within :data:`ON_TIME`. Past :data:`QUEUED` it shrinks
#: by a quarter (never below :data:`UNADVERTISED_CONCURRENCY`) and waits :data:`PROBE_HOLD` rounds before it tries
#: again. A server with request threads to spare answers as fast with more requests in flight; one without queues
#: them (Puma serves one request a thread), and all its answers come later: the sync then keeps to about what the
#: server serves at once.
PROBE_STEP = 2
ON_TIME = 1.15
QUEUED = 1.4
PROBE_HOLD = 8
#: Answers of a kind at :data:`UNADVERTISED_CONCURRENCY` that make its reference pace (the first ones), and how
#: many it takes, of all kinds, before the first step (two rounds at the start).
_REFERENCE_ANSWERS = 256
_MIN_REFERENCE = 8
_FIRST_STEP = 2 * UNADVERTISED_CONCURRENCY
#: An answer counts at most this many times the usual pace in a round's mean (one big download does not stop it).
_RATIO_CAP = 3.0


def unadvertised_window(concurrency: int, *, chosen: bool) -> int:
    """The requests in flight a sync starts from while the server has sent no ``RateLimit-*`` header: a
    ``concurrency`` the user chose (``--concurrency``, ``[gitlab] concurrency`` in a file) holds from the start;
    the default starts from :data:`UNADVERTISED_CONCURRENCY` and grows to ``concurrency`` only while answers keep
    their pace (:data:`PROBE_STEP`)."""
    return concurrency if chosen else min(concurrency, UNADVERTISED_CONCURRENCY)


#: Per-endpoint budgets GitLab.com enforces on top of the per-user one (gitlab-facts.md §3): kind -> (requests,
#: per seconds). Kept on every instance: a sync never comes near them, so they cost nothing elsewhere.
ENDPOINT_BUDGETS: dict[str, tuple[int, float]] = {"GET jobs": (600, 60.0)}
#: Statuses that say "too much": the in-flight window halves (at most once per round trip).
CONGESTION_STATUSES = frozenset({429, 503})
#: Requests nothing else waits for (a sync's log downloads, thousands of them): while any other request waits for
#: a slot of the in-flight window, these wait behind it, so the chain of a listing's pages, whose next request
#: depends on this one, is never queued behind a whole window of downloads (see :class:`cidash.sync.pool`).
BULK_KINDS = frozenset({"GET trace"})


class Ticket:
    """One request's hold on a slot of the in-flight window (see :meth:`RateLimiter.enter`): its kind, when it was
    sent (after any pacing) and when its answer's headers came (:meth:`RateLimiter.observe`)."""

    __slots__ = ("answered", "epoch", "kind", "left", "level", "sent")

    def __init__(self, epoch: int, kind: str | None, level: float) -> None:
        self.epoch = epoch
        self.kind = kind
        self.level = level  # the unadvertised ceiling when it was sent
        self.left = False
        self.sent: float | None = None
        self.answered: float | None = None


class RateLimiter:
    """The request policy every sender shares: an adaptive in-flight window, GitLab's ``RateLimit-*`` budget,
    ``Retry-After`` pauses, per-endpoint budgets, and an optional hard ``max_rps`` ceiling.

    - **In flight** (:meth:`enter` / :meth:`leave`): at most ``window`` requests at once. The window starts at
      ``initial_concurrency``, doubles per round of successes up to the first congestion signal (slow start), then
      grows by one per window of successes (additive increase); a 429 or 503 halves it (multiplicative decrease,
      at most once per round trip: answers to requests sent before the last cut do not cut again). It never
      exceeds ``max_concurrency``, nor, until the server has sent ``RateLimit-*`` headers, the unadvertised
      ceiling: ``unadvertised_concurrency``, grown towards ``max_concurrency`` while answers keep their pace
      (:data:`PROBE_STEP`). A free slot goes to a waiting request of any other kind before one of
      :data:`BULK_KINDS`.
    - **Budget**: ``RateLimit-Remaining`` minus what was sent since; at ``reserve`` or below every sender waits for
      ``RateLimit-Reset``, so the server's limit is never run past (the reserve covers requests in flight).
    - **429**: every sender waits ``Retry-After`` (else until ``RateLimit-Reset``, else 1 s).
    - **max_rps** > 0: a hard ceiling on the request rate, whatever the server says; 0: none.

    ``acquire()`` alone paces without taking a slot (a redirect hop of a request that holds one).
    """

    def __init__(
        self,
        max_rps: float,
        *,
        reserve: int = 2,
        max_wait: float = 60.0,
        max_concurrency: int = 64,
        initial_concurrency: int = 8,
        unadvertised_concurrency: int = UNADVERTISED_CONCURRENCY,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_rps = max_rps
        self.reserve = reserve
        self.max_wait = max_wait
        self.max_concurrency = max(1, max_concurrency)
        self.unadvertised_concurrency = max(1, unadvertised_concurrency)
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._lock = threading.Lock()
        # Senders waiting for a slot, woken one per free slot (a notify_all per answer woke every waiting worker
        # thread to find the slot taken: thousands of needless thread switches in a sync).
        self._turn = threading.Condition(self._lock)
        self._bulk_turn = threading.Condition(self._lock)  # senders of BULK_KINDS
        self._next_slot = 0.0
        self._blocked_until = 0.0
        self._state = RateLimitState()
        #: Requests we may still send in the current window: the server's last ``RateLimit-Remaining`` minus
        #: what was sent since (conservative: concurrent senders' responses arrive out of order). None = unknown.
        self._budget: int | None = None
        self.waited = 0.0  # total seconds senders spent waiting
        self.rate_limit_waits = 0  # pauses for RateLimit-Reset or Retry-After
        #: Told ``(seconds, why)`` when a pause for GitLab's rate limit starts (a CLI says so: a quiet minute
        #: looks like a hang). Called without the limiter's lock held.
        self.on_pause: Callable[[float, str], None] | None = None
        # The adaptive in-flight window.
        self.window = float(max(1, min(initial_concurrency, self.max_concurrency)))
        self._threshold: float | None = None  # slow start until the first congestion signal
        self._in_flight = 0
        self._waiting = 0  # requests not of BULK_KINDS waiting for a slot (bulk ones let them go first)
        self._bulk_waiting = 0
        self._epoch = 0  # bumped on every cut: answers to older requests do not cut again
        self.advertised = False  # the server has sent RateLimit-* headers
        self.cuts = 0  # times the window was halved
        self.peak_window = self.window
        self.low_window = self.window  # the smallest the window was cut to
        self.peak_in_flight = 0
        # The ceiling while no RateLimit-* header came: from unadvertised_concurrency, grown while answers keep
        # their pace (PROBE_STEP): each kind's times to the first byte at the start (sorted, for their median),
        # and the current round's answers against it.
        self._probe_floor = float(min(self.unadvertised_concurrency, self.max_concurrency))
        self.probe = self._probe_floor
        self.peak_probe = self.probe
        self._reference: dict[str | None, list[float]] = {}
        self._ratios: list[float] = []
        self._answers = 0  # answers in the current round
        self._round_peak = 0  # the most in flight during the current round
        self._hold = 0  # rounds to wait before growing again (after a shrink)
        self._endpoint_sent: dict[str, list[float]] = {}
        self._held = threading.local()  # slots the current thread holds

    # -- the in-flight window ----------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Requests holding a slot of the window now."""
        with self._lock:
            return self._in_flight

    def limit(self) -> int:
        """How many requests may be in flight now."""
        cap = self.max_concurrency if self.advertised else int(self.probe)
        return max(1, min(int(self.window), cap))

    def enter(self, kind: str | None = None) -> Ticket:
        """Wait for a slot in the in-flight window, then for the rate (:meth:`acquire`). Pair with :meth:`leave`."""
        held = getattr(self._held, "n", 0)
        with self._lock:
            # A thread that already holds a slot (a redirect hop sent from inside its request) is not held back:
            # it would wait for itself.
            if held == 0:
                if kind in BULK_KINDS:
                    if self._in_flight >= self.limit() or self._waiting:
                        self._bulk_waiting += 1
                        try:
                            while self._in_flight >= self.limit() or self._waiting:
                                self._bulk_turn.wait()
                        finally:
                            self._bulk_waiting -= 1
                elif self._in_flight >= self.limit():
                    self._waiting += 1
                    try:
                        while self._in_flight >= self.limit():
                            self._turn.wait()
                    finally:
                        self._waiting -= 1
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            self._round_peak = max(self._round_peak, self._in_flight)
            ticket = Ticket(self._epoch, kind, self.probe)
            self._wake()  # a slot may still be free for a sender this one held back
        self._held.n = held + 1
        try:
            self.acquire(kind)
        except BaseException:
            self.leave(ticket, None)
            raise
        if held == 0:  # a redirect hop's answer is timed as its request's
            ticket.sent = self._clock()
            self._held.ticket = ticket
        return ticket

    def _wake(self) -> None:
        """Wake as many waiting senders as there are free slots (call with the lock held): others first, then
        bulk ones. Each woken sender takes its slot and wakes the next; one that finds none waits again."""
        free = self.limit() - self._in_flight
        if free <= 0:
            return
        if self._waiting:
            self._turn.notify(min(free, self._waiting))
        elif self._bulk_waiting:
            self._bulk_turn.notify(min(free, self._bulk_waiting))

    def leave(self, ticket: Ticket, status: int | None) -> None:
        """Give the slot back; ``status`` (None: no answer) grows or shrinks the window."""
        with self._lock:
            if ticket.left:
                return
            ticket.left = True
            self._in_flight -= 1
            self._held.n = max(0, getattr(self._held, "n", 1) - 1)
            if getattr(self._held, "ticket", None) is ticket:
                self._held.ticket = None
            if (
                status is not None
                and status < 500
                and not self.advertised
                and ticket.sent is not None
                and ticket.answered is not None
            ):
                self._paced(ticket, ticket.answered - ticket.sent)
            if status in CONGESTION_STATUSES:
                if ticket.epoch == self._epoch:  # the first signal of this round trip
                    self.window = max(1.0, self.window / 2)
                    self._threshold = self.window
                    self._epoch += 1
                    self.cuts += 1
                    self.low_window = min(self.low_window, self.window)
            elif status is not None and status < 500:
                cap = float(self.max_concurrency)
                if self._threshold is None or self.window < self._threshold:
                    self.window = min(cap, self.window + 1.0)  # slow start: +1 per answer, x2 per round
                else:
                    self.window = min(cap, self.window + 1.0 / self.window)  # +1 per round
                self.peak_window = max(self.peak_window, self.window)
            self._wake()

    def _paced(self, ticket: Ticket, waited: float) -> None:
        """One answer's time to its first byte (call with the lock held; :meth:`leave` then wakes the senders a
        grown ceiling lets in): after each round of answers, grow or shrink the ceiling that holds while the
        server publishes no limit (:data:`PROBE_STEP`)."""
        if self._probe_floor >= self.max_concurrency:
            return  # nothing to grow into (a chosen concurrency holds from the start)
        reference = self._reference.setdefault(ticket.kind, [])
        if ticket.level <= self._probe_floor and len(reference) < _REFERENCE_ANSWERS:
            bisect.insort(reference, waited)
        if ticket.level != self.probe:
            return  # sent before the ceiling last changed: it says nothing of this one
        # A round: twice as many answers to requests sent at this ceiling as it holds; the first half only lets
        # a queue the step made build up (the answers to the first requests sent at it come before it has).
        self._answers += 1
        size = max(8, int(self.probe))
        if ticket.level > self._probe_floor and len(reference) >= _MIN_REFERENCE and self._answers > size:
            usual = reference[len(reference) // 2]
            self._ratios.append(min(waited / usual, _RATIO_CAP) if usual > 0 else 1.0)
        if self._answers < 2 * size:
            return
        used = self._round_peak >= int(self.probe)  # the round filled the ceiling: its pace says something of it
        ratios, self._ratios = self._ratios, []
        self._answers, self._round_peak = 0, self._in_flight
        pace = sum(ratios) / len(ratios) if len(ratios) >= _MIN_REFERENCE else None  # else: too few to tell
        if pace is not None and pace > QUEUED:
            self.probe = max(self._probe_floor, self.probe * 0.75)
            self._hold = PROBE_HOLD
        elif self._hold > 0:
            self._hold -= 1
        else:
            # At the start, once a kind's reference pace is taken; above it, when the answers kept their pace.
            if self.probe <= self._probe_floor:
                on_pace = sum(len(r) for r in self._reference.values()) >= _FIRST_STEP
            else:
                on_pace = pace is not None and pace <= ON_TIME
            if used and on_pace and self.probe < self.max_concurrency:  # the ceiling in use: try a little more
                self.probe = min(float(self.max_concurrency), self.probe + PROBE_STEP)
                self.peak_probe = max(self.peak_probe, self.probe)

    @contextlib.contextmanager
    def slot(self, kind: str | None = None) -> Iterator[list[int]]:
        """``with limiter.slot() as status: ...; status.append(code)``: :meth:`enter`, then :meth:`leave` with the
        last status appended (none: the request got no answer)."""
        ticket = self.enter(kind)
        status: list[int] = []
        try:
            yield status
        finally:
            self.leave(ticket, status[-1] if status else None)

    # -- pacing ------------------------------------------------------------------------------------------------

    def acquire(self, kind: str | None = None) -> None:
        announce: tuple[float, str] | None = None
        with self._lock:
            now = self._clock()
            if self._budget is not None:
                if self._budget <= self.reserve and self._state.reset_at is not None:
                    # Requests already in flight would spend the rest of the window: wait for the next one.
                    pause = min(max(self._state.reset_at - self._wall(), 0.0), self.max_wait)
                    if now + pause > self._blocked_until + 1.0:  # a new pause, not the one already said
                        announce = (pause, "RateLimit-Remaining is spent")
                    self._blocked_until = max(self._blocked_until, now + pause)
                    self._budget = None
                    self.rate_limit_waits += 1
                else:
                    self._budget -= 1
            start = max(now, self._blocked_until)
            if kind is not None and kind in ENDPOINT_BUDGETS:
                budget, period = ENDPOINT_BUDGETS[kind]
                sent = self._endpoint_sent.setdefault(kind, [])
                sent[:] = [t for t in sent if t > start - period]
                if len(sent) >= budget:
                    start = max(start, sent[-budget] + period)
                sent.append(start)
            if self.max_rps > 0:
                start = max(start, self._next_slot)
                self._next_slot = start + 1.0 / self.max_rps
            wait = min(start - now, self.max_wait)
            if wait > 0:
                self.waited += wait
        if announce is not None:
            self._announce(*announce)
        if wait > 0:
            self._sleep(wait)

    def _announce(self, pause: float, why: str) -> None:
        if self.on_pause is not None and pause >= 1.0:
            self.on_pause(pause, why)

    def sending(self) -> None:
        """The current thread's request leaves now (its connection just opened): its answer is timed from here."""
        ticket = getattr(self._held, "ticket", None)
        if ticket is not None and ticket.answered is None:
            ticket.sent = self._clock()

    def observe(self, headers: Mapping[str, str], status: int) -> None:
        ticket = getattr(self._held, "ticket", None)
        if ticket is not None and ticket.answered is None:  # the first answer of this thread's request
            ticket.answered = self._clock()
        limit = _int_header(headers, "RateLimit-Limit")
        remaining = _int_header(headers, "RateLimit-Remaining")
        reset = _int_header(headers, "RateLimit-Reset")
        announce: tuple[float, str] | None = None
        with self._lock:
            if remaining is not None:
                new_window = reset is not None and reset != self._state.reset_at
                if self._budget is None or new_window:
                    self._budget = remaining
                else:
                    self._budget = min(self._budget, remaining)
            if limit is not None or remaining is not None or reset is not None:
                self.advertised = True
                self._state = RateLimitState(
                    limit=limit if limit is not None else self._state.limit,
                    remaining=remaining,
                    reset_at=float(reset) if reset is not None else self._state.reset_at,
                )
            now = self._clock()
            if status == 429:
                after = parse_retry_after(headers.get("Retry-After"))
                if after is None and reset is not None:
                    after = reset - self._wall()
                pause = min(max(after or 1.0, 0.0), self.max_wait)
                if now + pause > self._blocked_until + 1.0:
                    announce = (pause, "GitLab answered 429 Too Many Requests")
                self._blocked_until = max(self._blocked_until, now + pause)
                self.rate_limit_waits += 1
            elif remaining is not None and remaining <= self.reserve and reset is not None:
                pause = min(max(reset - self._wall(), 0.0), self.max_wait)
                if now + pause > self._blocked_until:
                    self.rate_limit_waits += 1
                    if now + pause > self._blocked_until + 1.0:
                        announce = (pause, f"RateLimit-Remaining is {remaining}")
                self._blocked_until = max(self._blocked_until, now + pause)
        if announce is not None:
            self._announce(*announce)

    @property
    def state(self) -> RateLimitState:
        with self._lock:
            return self._state


def endpoint_kind(method: str, path: str) -> str:
    """A coarse name for a request, for counting: ``GET pipelines``, ``GET trace``, ``HEAD files`` ..."""
    path = path.split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v4"]:
        parts = parts[2:]
    elif parts == ["api", "graphql"]:  # GraphQL's endpoint, beside the REST API
        parts = parts[1:]
    kind = "other"
    if parts[:1] == ["projects"]:
        rest = parts[2:]
        if not rest:
            kind = "project"
        elif rest[-1] == "trace":
            kind = "trace"
        elif rest[0] == "repository":
            kind = rest[1] if len(rest) > 1 else "repository"  # files, commits, ...
        elif rest[0] == "registry":
            kind = "registry"
        elif rest[0] == "pipelines":
            kind = "pipelines" if len(rest) == 1 else ("pipeline" if len(rest) == 2 else "pipeline_" + rest[2])
        else:
            kind = rest[0]
    elif parts[:1] == ["groups"]:
        kind = "group_projects" if parts[-1] == "projects" else "group"
    elif parts:
        kind = parts[0]
    return f"{method.upper()} {kind}"


class RequestStats:
    """Thread-safe request and byte counters, per endpoint kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_kind: Counter[str] = Counter()
        self.requests = 0
        self.bytes = 0
        self.retries = 0
        self.errors = 0

    def record(self, method: str, path: str, status: int, nbytes: int) -> None:
        kind = endpoint_kind(method, path)  # outside the lock the 32 request threads share
        with self._lock:
            self.requests += 1
            self.bytes += nbytes
            self.by_kind[kind] += 1
            if status >= 400:
                self.errors += 1

    def add_bytes(self, nbytes: int) -> None:
        with self._lock:
            self.bytes += nbytes

    def retried(self) -> None:
        with self._lock:
            self.retries += 1

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.requests, self.bytes


def error_for_status(
    status: int,
    what: str,
    *,
    missing: Missing = "endpoint",
    message: str | None = None,
    retry_after: float | None = None,
    token_sent: bool = True,
) -> RemoteError:
    """The cidash error for an HTTP error status. ``what`` names the request (``GET /projects/42/jobs``);
    ``token_sent`` is false when no token is configured, so a 401 says that rather than blaming a token."""
    # GitLab's body often just restates the status ({"message": "401 Unauthorized"}): said once, not twice
    restated = message is not None and message.strip().startswith(str(status))
    detail = f": {message}" if message and not restated else ""
    if status == 401 and not token_sent:
        return AuthError(
            f"no GitLab token is configured, and GitLab requires one (401 on {what}, sent without a token)",
            status=status,
            hint="set GITLAB_TOKEN or [gitlab] token_file, or pass --token-file FILE",
        )
    if status == 401:
        return AuthError(
            f"GitLab rejected the token (401) on {what}{detail}",
            status=status,
            hint="check the token is valid and has the read_api scope",
        )
    if status == 403:
        return PermissionDenied(
            f"permission denied (403) on {what}{detail}",
            status=status,
            hint="the token needs read_api and at least Reporter access to the project",
        )
    if status in (404, 405) and missing in ("project", "group"):
        return NotFound(f"{missing} not found (404) on {what}", status=status, hint="or the token cannot see it")
    if status == 404 and missing == "resource":
        return NotFound(f"not found (404) on {what}", status=status)
    if status in (404, 405):
        return Unsupported(
            f"this GitLab instance does not offer {what} ({status})",
            status=status,
            hint="the instance may be too old for this endpoint, or the feature is disabled",
        )
    if status == 429:
        return RateLimited(f"rate limited (429) on {what}", retry_after=retry_after, hint="lower [gitlab] max_rps")
    if status >= 500:
        return RemoteError(f"GitLab server error {status} on {what}{detail}", status=status, hint="try again later")
    return RemoteError(f"GitLab answered {status} on {what}{detail}", status=status)


_NETWORK_REASONS: tuple[tuple[str, str], ...] = (
    ("certificate verify failed", "certificate verify failed"),
    ("wrong_version_number", "the server does not speak TLS on this port"),
    ("wrong version number", "the server does not speak TLS on this port"),
    ("hostname mismatch", "certificate hostname mismatch"),
    ("connection refused", "connection refused"),
    ("name or service not known", "host not found"),
    ("nodename nor servname", "host not found"),
    ("temporary failure in name resolution", "host not found"),
    ("no address associated", "host not found"),
    ("network is unreachable", "network unreachable"),
    ("no route to host", "no route to host"),
    ("timed out", "timed out"),
    ("connection reset", "connection reset"),
    ("remote end closed", "connection closed by the server"),
)


def describe_network_error(text: str) -> str:
    """Boil a requests/httpx/urllib3 exception text down to a few words (and never a token)."""
    low = text.lower()
    for needle, reason in _NETWORK_REASONS:
        if needle in low:
            return reason
    return "network error"
