"""The sync's two-queue worker pool (:mod:`cidash.sync.pool`): ordinary tasks before bulk ones, futures, shutdown."""

from __future__ import annotations

import threading
from concurrent.futures import CancelledError, ThreadPoolExecutor

import pytest

from cidash.sync.pool import PriorityPool, submit_bulk, workers_for


def test_ordinary_tasks_run_before_bulk_ones_queued_earlier() -> None:
    pool = PriorityPool(1)
    gate = threading.Event()
    order: list[str] = []
    blocker = pool.submit(gate.wait, 5)  # the one worker is busy: everything below queues
    bulk = [pool.submit_bulk(order.append, f"log {i}") for i in range(3)]
    urgent = [pool.submit(order.append, f"detail {i}") for i in range(2)]
    gate.set()
    for future in [blocker, *bulk, *urgent]:
        future.result(timeout=5)
    assert order == ["detail 0", "detail 1", "log 0", "log 1", "log 2"]
    pool.shutdown()


def test_results_exceptions_and_thread_count() -> None:
    pool = PriorityPool(3)
    futures = [pool.submit(lambda x: x * x, i) for i in range(20)] + [pool.submit_bulk(int, "7")]
    assert [f.result(timeout=5) for f in futures] == [i * i for i in range(20)] + [7]
    failing = pool.submit(int, "not a number")
    with pytest.raises(ValueError):
        failing.result(timeout=5)
    assert len(pool._threads) <= 3
    pool.shutdown()
    assert all(not t.is_alive() for t in pool._threads)
    with pytest.raises(RuntimeError):
        pool.submit(int, "1")


def test_shutdown_with_cancel_skips_what_is_queued_and_waits_for_what_runs() -> None:
    pool = PriorityPool(1)
    gate, started = threading.Event(), threading.Event()

    def hold() -> bool:
        started.set()
        return gate.wait(5)

    running = pool.submit(hold)
    # The worker must have taken the task before shutdown: a task still queued is cancelled, as it should be.
    assert started.wait(5)
    queued = [pool.submit_bulk(int, "1"), pool.submit(int, "2")]
    threading.Timer(0.1, gate.set).start()
    pool.shutdown(wait=True, cancel_futures=True)
    assert running.result(timeout=0) is True
    for future in queued:
        with pytest.raises(CancelledError):
            future.result(timeout=0)


def test_submit_bulk_falls_back_to_submit_and_workers_exceed_the_window() -> None:
    with ThreadPoolExecutor(1) as plain:
        assert submit_bulk(plain, int, "3").result(timeout=5) == 3
    assert workers_for(32) == 36 and workers_for(1) == 3
