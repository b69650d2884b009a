"""The request policy (:class:`cidash.remote.policy.RateLimiter`): the adaptive in-flight window, GitLab's
``RateLimit-*`` budget, ``Retry-After``, the per-endpoint budget and the ``max_rps`` ceiling.

Unit tests drive it with a fake clock (no sleeping); the sync tests run it against the simulated GitLab that sends
``RateLimit-*`` headers and answers 429 past its budget, or 429/503 by fault injection. No wall-clock asserts."""

from __future__ import annotations

import heapq
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cidash.config import Config
from cidash.connection import Connection, Secret
from cidash.models import RateLimitState
from cidash.remote import GitLabClient
from cidash.remote.policy import UNADVERTISED_CONCURRENCY, RateLimiter
from cidash.sim import FaultPlan, FaultRule, Scenario, SimulatedGitLab
from cidash.store import Store
from cidash.sync import SyncOptions, sync_project

NOW = datetime(2026, 12, 1, tzinfo=UTC)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(t: FakeTime, **kw: object) -> RateLimiter:
    return RateLimiter(kw.pop("max_rps", 0.0), clock=t.clock, wall=t.wall, sleep=t.sleep, **kw)  # type: ignore[arg-type]


HEADERS = {"RateLimit-Limit": "2000", "RateLimit-Remaining": "1900", "RateLimit-Reset": "1060"}


def round_trip(rl: RateLimiter, status: int, n: int | None = None, headers: dict[str, str] | None = None) -> None:
    """Send ``n`` (default: a full window) requests at once, then answer them all with ``status``."""
    tickets = [rl.enter() for _ in range(n if n is not None else rl.limit())]
    for ticket in tickets:
        rl.observe(headers or {}, status)
        rl.leave(ticket, status)


def test_window_grows_by_slow_start_then_is_capped_without_headers() -> None:
    rl = limiter(FakeTime(), max_concurrency=64, initial_concurrency=4)
    assert rl.limit() == 4
    round_trip(rl, 200)
    assert rl.limit() == 8  # doubled in one round of successes
    for _ in range(5):
        round_trip(rl, 200)
    # No RateLimit-* header seen: no more than the unadvertised start, however much the window grew (past it
    # only while timed answers keep their pace: test_without_rate_limit_headers_the_window_grows_...).
    assert rl.limit() == UNADVERTISED_CONCURRENCY
    round_trip(rl, 200, headers=HEADERS)
    assert rl.advertised
    for _ in range(3):
        round_trip(rl, 200, headers=HEADERS)
    assert rl.limit() == 64  # the server publishes its limit: the configured ceiling applies


@pytest.mark.parametrize(("chosen", "ceiling"), [(False, UNADVERTISED_CONCURRENCY), (True, 24)])
def test_a_chosen_concurrency_holds_while_the_server_publishes_no_limit(chosen: bool, ceiling: int) -> None:
    """The client's policy: left to its default, at most 16 in flight until GitLab sends RateLimit-* headers; a
    concurrency the user chose (``--concurrency``, ``[gitlab] concurrency``) is the ceiling from the start."""
    conn = Connection(url="https://gitlab.example", concurrency=24, concurrency_chosen=chosen)
    rl = GitLabClient(conn).limiter
    for _ in range(6):
        round_trip(rl, 200)
    assert not rl.advertised and rl.limit() == ceiling
    round_trip(rl, 200, headers=HEADERS)
    assert rl.limit() == 24  # a published limit: the ceiling is concurrency either way


def closed_loop(rl: RateLimiter, t: FakeTime, *phases: tuple[int, int], service: float = 0.03) -> list[int]:
    """A server answering, in each phase ``(answers, capacity)``, that many requests with ``capacity`` request
    threads (``service`` s an answer, first come first served), while the limiter keeps as many in flight as it
    allows, each sent again as soon as a slot is free; returns the in-flight limit after each answer."""
    free_at: list[float] = []  # when each server thread is free
    flying: list[tuple[float, int, object]] = []
    sent = 0
    limits: list[int] = []
    for answers, capacity in phases:
        free_at = sorted(free_at)[:capacity] + [t.now] * max(0, capacity - len(free_at))
        heapq.heapify(free_at)
        for _ in range(answers):
            while rl.in_flight < rl.limit():
                rl._held.n = 0  # one test thread plays every sender
                ticket = rl.enter("GET trace")
                done = max(t.now, heapq.heappop(free_at)) + service
                heapq.heappush(free_at, done)
                heapq.heappush(flying, (done, sent, ticket))
                sent += 1
            done, _, ticket = heapq.heappop(flying)
            t.now = max(t.now, done)
            ticket.answered = t.now  # type: ignore[attr-defined]  # what observe() stamps when the headers come
            rl.leave(ticket, 200)  # type: ignore[arg-type]
            limits.append(rl.limit())
    return limits


def test_without_rate_limit_headers_the_window_grows_while_answers_keep_their_pace() -> None:
    """No RateLimit-* headers: from 16 in flight, more while the server answers as fast (up to concurrency); a
    server that has only 16 threads queues what comes past them, its answers slow down, and the sync stays
    near 16 (a step or two past it: answers at most ~1.15x slower than at 16 before it stops growing)."""
    roomy = limiter(t := FakeTime(), max_concurrency=32)
    limits = closed_loop(roomy, t, (2000, 64))
    assert limits[0] <= UNADVERTISED_CONCURRENCY and limits[-1] == 32
    busy = limiter(t := FakeTime(), max_concurrency=32)
    limits = closed_loop(busy, t, (3000, 16))
    assert max(limits) <= 22 and limits[-1] >= UNADVERTISED_CONCURRENCY
    assert busy.peak_probe < 32 and not busy.advertised
    # a server that slows down later: the window comes back to 16 (never below it: 503 and 429 do that)
    slowing = limiter(t := FakeTime(), max_concurrency=32)
    limits = closed_loop(slowing, t, (2000, 64), (2000, 12))
    assert limits[1999] == 32 and min(limits[2000:]) >= UNADVERTISED_CONCURRENCY
    assert max(limits[-1000:]) <= UNADVERTISED_CONCURRENCY + 2  # now and then a step, taken back


def test_an_answer_is_timed_from_when_its_request_left_not_from_its_connection() -> None:
    """The pace is the server's: a request on a new connection is timed from after the handshake
    (``sending``), to its answer's headers (``observe``); one on a kept connection from when it took its slot."""
    rl = limiter(t := FakeTime(), max_concurrency=32)
    fresh = rl.enter("GET trace")
    t.now += 1.0  # TCP and TLS handshakes
    rl.sending()
    t.now += 0.03
    rl.observe({}, 200)
    rl.leave(fresh, 200)
    kept = rl.enter("GET trace")
    t.now += 0.05
    rl.observe({}, 200)
    t.now += 2.0  # reading a long body: not the server's answer time either
    rl.leave(kept, 200)
    assert rl._reference["GET trace"] == pytest.approx([0.03, 0.05])


def test_congestion_halves_once_per_round_trip_and_grows_back() -> None:
    rl = limiter(FakeTime(), max_concurrency=32, initial_concurrency=32)
    rl.advertised = True
    before = rl.limit()
    tickets = [rl.enter() for _ in range(before)]
    for ticket in tickets:  # a whole window of 429s: one cut, not 32
        rl.leave(ticket, 429)
    assert rl.cuts == 1 and rl.limit() == before // 2
    round_trip(rl, 503)  # requests sent after the cut: the next cut
    assert rl.cuts == 2 and rl.limit() == before // 4
    low = rl.limit()
    round_trip(rl, 200)
    round_trip(rl, 200)
    assert rl.limit() == low + 1  # additive increase after a cut: about +1 per round, not x2
    for _ in range(40):
        round_trip(rl, 200)
    assert rl.limit() == 32 and rl.low_window == low


def test_failures_without_answer_do_not_grow_the_window_and_window_never_below_one() -> None:
    rl = limiter(FakeTime(), initial_concurrency=2)
    round_trip(rl, 500)  # a 500 is not congestion, and not a success either
    assert rl.limit() == 2
    ticket = rl.enter()
    rl.leave(ticket, None)
    rl.leave(ticket, 200)  # leaving twice is a no-op
    assert rl.limit() == 2
    for _ in range(10):
        round_trip(rl, 429)
    assert rl.limit() == 1


def test_enter_blocks_at_the_window_until_a_slot_is_left() -> None:
    rl = limiter(FakeTime(), initial_concurrency=1, max_concurrency=1)
    first = rl.enter()
    entered = threading.Event()

    def second() -> None:
        ticket = rl.enter()
        entered.set()
        rl.leave(ticket, 200)

    thread = threading.Thread(target=second)
    thread.start()
    assert not entered.wait(0.2)  # held back while the only slot is taken
    rl.leave(first, 200)
    assert entered.wait(5)
    thread.join()
    assert rl.peak_in_flight == 1


def test_a_free_slot_goes_to_a_waiting_request_before_a_waiting_log_download() -> None:
    """A log download (BULK_KINDS) that waits for a slot lets any other waiting request go first, however long it
    waited: a listing's next page is never stuck behind a window of downloads. The window is never exceeded."""
    rl = limiter(FakeTime(), initial_concurrency=1, max_concurrency=1)
    held = rl.enter()
    order: list[str] = []
    waiting: list[threading.Thread] = []

    def send(kind: str) -> None:
        ticket = rl.enter(kind)
        order.append(kind)
        rl.leave(ticket, 200)

    for kind in ("GET trace", "GET trace", "GET jobs"):  # the page asks last
        thread = threading.Thread(target=send, args=(kind,))
        thread.start()
        waiting.append(thread)
    pause = threading.Event()
    for _ in range(100):  # until the page's request waits for the slot (the downloads wait too, or will)
        if rl._waiting:
            break
        pause.wait(0.05)
    assert rl._waiting == 1 and rl.in_flight == 1 and order == []
    rl.leave(held, 200)
    for thread in waiting:
        thread.join(5)
    assert order[0] == "GET jobs" and sorted(order) == ["GET jobs", "GET trace", "GET trace"]
    assert rl.peak_in_flight == 1 and rl.in_flight == 0


def test_max_rps_stays_a_hard_ceiling_whatever_the_server_says() -> None:
    t = FakeTime()
    rl = limiter(t, max_rps=10.0, max_concurrency=64)
    for _ in range(21):
        with rl.slot() as status:
            rl.observe(HEADERS, 200)
            status.append(200)
    assert t.now - 1000.0 == pytest.approx(2.0)  # 21 requests at 10/s: 2 s of pacing


def test_budget_runs_out_then_waits_for_reset() -> None:
    t = FakeTime()
    rl = limiter(t, reserve=3)
    rl.observe({"RateLimit-Limit": "10", "RateLimit-Remaining": "8", "RateLimit-Reset": "1030"}, 200)
    for _ in range(5):
        rl.acquire()
    assert t.slept == []
    rl.acquire()  # budget at the reserve: wait for the window's reset
    assert t.now == pytest.approx(1030.0)


def test_a_pause_for_the_rate_limit_is_announced_once() -> None:
    """The CLI says when it waits for GitLab's rate limit (a quiet minute looks like a hang): once per pause, with
    its length and the reason, and not for a pause already announced."""
    t = FakeTime()
    rl = limiter(t, reserve=3)
    said: list[tuple[float, str]] = []
    rl.on_pause = lambda seconds, why: said.append((seconds, why))
    rl.observe({"RateLimit-Limit": "10", "RateLimit-Remaining": "8", "RateLimit-Reset": "1030"}, 200)
    for _ in range(6):
        rl.acquire()
    assert said == [(30.0, "RateLimit-Remaining is spent")]
    rl.observe({"RateLimit-Limit": "10", "RateLimit-Remaining": "2", "RateLimit-Reset": "1060"}, 200)
    rl.observe({"RateLimit-Limit": "10", "RateLimit-Remaining": "1", "RateLimit-Reset": "1060"}, 200)
    assert said[1:] == [(30.0, "RateLimit-Remaining is 2")]  # the next window's pause, said once
    rl.observe({"Retry-After": "0"}, 429)  # shorter than a second: not worth a line
    assert len(said) == 2


@pytest.mark.parametrize("value", ["inf", "-inf", "1e400", "nan", "", "12abc"])
def test_ratelimit_headers_that_are_no_integer_are_ignored(value: str) -> None:
    """Untrusted input: a RateLimit value with no integer in it is as if it was not sent (it used to raise
    OverflowError out of the request for "inf")."""
    rl = limiter(FakeTime())
    rl.observe({"RateLimit-Limit": value, "RateLimit-Remaining": value, "RateLimit-Reset": value}, 200)
    assert rl.state == RateLimitState() and not rl.advertised
    rl.observe({"RateLimit-Limit": "2000", "RateLimit-Remaining": value}, 200)
    assert rl.state.limit == 2000 and rl.state.remaining is None


def test_429_waits_retry_after_for_every_sender() -> None:
    t = FakeTime()
    rl = limiter(t)
    rl.observe({"Retry-After": "7"}, 429)
    rl.acquire()
    assert t.now == pytest.approx(1007.0)
    rl.acquire()
    assert t.now == pytest.approx(1007.0)  # the pause is over


def test_project_jobs_listing_keeps_gitlab_coms_600_per_minute() -> None:
    t = FakeTime()
    rl = limiter(t)
    for _ in range(600):
        rl.acquire("GET jobs")
    rl.acquire("GET trace")  # other endpoints are not held back
    assert t.slept == []
    rl.acquire("GET jobs")
    assert t.now == pytest.approx(1060.0)


# -- against the simulated GitLab ------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db") as s:
        yield s


def _options(concurrency: int) -> SyncOptions:
    base = SyncOptions.from_config(Config(), since="all", now=NOW)
    return SyncOptions(**{**base.__dict__, "concurrency": concurrency})


def test_sync_under_an_enforced_limit_collects_no_429_storm(store: Store) -> None:
    """The server allows 60 requests per 1-second window and answers 429 past it: the sync paces itself on
    ``RateLimit-Remaining``/``Reset`` and finishes complete, with (almost) no 429."""
    scenario = Scenario(days=3, pipelines_per_day=4, migration_day=2, with_docs_project=False)
    with SimulatedGitLab(scenario, rate_limit=60, rate_limit_window=1.0) as sim:
        conn = Connection(url=sim.url, token=Secret(sim.token), concurrency=8)
        with GitLabClient(conn) as client:
            report = sync_project(client, store, sim.project_path, options=_options(8), now=NOW)
        assert report.requests > 120  # more than two windows' worth: the budget really ran out
        assert report.pipelines == sim.truth.pipelines
        assert not report.deferred
        assert sim.stats.by_status.get(429, 0) <= 1, sim.stats.by_status
        assert client.limiter.advertised and client.limiter.rate_limit_waits > 0


@pytest.mark.parametrize("status", [429, 503])
def test_window_shrinks_on_congestion_and_grows_back(store: Store, status: int) -> None:
    """A server without RateLimit headers answers ``status`` to a burst of log downloads: the window is cut,
    every log still arrives (retried), and the window grows back while the rest of the sync succeeds."""
    rule = FaultRule(endpoint="*/trace", status=status, retry_after=0, skip=20, first=6)
    scenario = Scenario(days=3, pipelines_per_day=4, migration_day=2, with_docs_project=False)
    with SimulatedGitLab(scenario, faults=FaultPlan(rules=(rule,)), rate_limit_advertised=None) as sim:
        conn = Connection(url=sim.url, token=Secret(sim.token), concurrency=16)
        rl = RateLimiter(0.0, max_concurrency=16, initial_concurrency=16)
        with GitLabClient(conn, limiter=rl) as client:
            report = sync_project(client, store, sim.project_path, options=_options(16), now=NOW)
        assert sim.stats.by_status.get(status, 0) == 6
        assert report.logs_failed == 0 and report.retries >= 6
        assert rl.cuts >= 1
        assert rl.low_window <= 8  # halved at least once from 16
        assert rl.limit() > rl.low_window  # and grew back after


@pytest.mark.parametrize("chosen", [False, True])
def test_sync_against_a_server_without_rate_limit_headers(store: Store, chosen: bool) -> None:
    """A self-managed GitLab with its throttles off sends no RateLimit-* header: a sync at the default starts
    from 16 in flight (and takes more only while answers keep their pace); with ``concurrency`` chosen it may use
    all of it from the start. Either way the sync is complete."""
    scenario = Scenario(days=3, pipelines_per_day=4, migration_day=2, with_docs_project=False)
    with SimulatedGitLab(scenario, rate_limit_advertised=None, latency_ms=5) as sim:
        conn = Connection(url=sim.url, token=Secret(sim.token), concurrency=24, concurrency_chosen=chosen)
        with GitLabClient(conn) as client:
            report = sync_project(client, store, sim.project_path, options=_options(24), now=NOW)
        rl = client.limiter
        assert report.pipelines == sim.truth.pipelines and report.logs_failed == 0
        assert report.requests > 60  # enough answers for slow start to pass 16
        assert not rl.advertised
        assert rl.peak_in_flight <= 24
        if chosen:
            assert rl.limit() == 24
        else:
            assert UNADVERTISED_CONCURRENCY <= rl.limit() <= 24


def test_a_thread_holding_a_slot_is_not_held_back_by_its_own_redirect() -> None:
    rl = limiter(FakeTime(), initial_concurrency=1, max_concurrency=1)
    outer = rl.enter()
    inner = rl.enter()  # same thread (requests follows a redirect from inside send): no deadlock
    rl.leave(inner, 200)
    rl.leave(outer, 200)
    assert rl.peak_in_flight == 2 and rl.limit() == 1
