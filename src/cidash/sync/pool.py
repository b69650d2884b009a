"""The sync's worker pool: a thread pool with two queues, so that bulk downloads never hold up what a step waits for.

A first sync queues thousands of log downloads (:func:`submit_bulk`) as soon as the jobs listing names them, while
the pipelines step still needs its details and the side steps their checksums. A FIFO pool would serve those behind
every log queued before them, and the steps that wait for them (storing the pipelines, then the jobs, the
checksums) would end after the last log: the sync's longest chain would be its length. Here a worker takes an
ordinary task (:meth:`PriorityPool.submit`) before any bulk one, so bulk downloads fill only the slots nothing else
wants, and the in-flight window stays full from the first page to the last log.

The same split holds for requests sent outside the pool (a listing's next page, on its own thread): the rate
limiter lets them go before a waiting log download (:data:`cidash.remote.policy.BULK_KINDS`).
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")

_Task = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class PriorityPool(Executor):
    """Up to ``max_workers`` threads (started as tasks come); ordinary tasks before bulk ones, each kind in order.

    Every task put in a queue is followed by one token in :attr:`_wake`; a worker takes a token, then the first
    ordinary task, else the first bulk one. Tokens never outnumber the tasks queued before them, so a worker that
    took one always finds a task, until :meth:`shutdown` adds one token per worker that finds none: it ends."""

    def __init__(self, max_workers: int, thread_name_prefix: str = "cidash-sync") -> None:
        self._max_workers = max(1, max_workers)
        self._prefix = thread_name_prefix
        self._urgent: collections.deque[_Task] = collections.deque()
        self._bulk: collections.deque[_Task] = collections.deque()
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        #: Workers waiting for a token minus tokens not yet taken: a new task starts a thread only when none is free.
        self._idle = 0
        self._shutdown = False

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        return self._put(self._urgent, fn, args, kwargs)

    def submit_bulk(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        """Like :meth:`submit`, served only when no ordinary task waits."""
        return self._put(self._bulk, fn, args, kwargs)

    def _put(
        self, line: collections.deque[_Task], fn: Callable[..., _T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[_T]:
        future: Future[_T] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new tasks after shutdown")
            line.append((future, fn, args, kwargs))
            if self._idle <= 0 and len(self._threads) < self._max_workers:
                thread = threading.Thread(target=self._work, name=f"{self._prefix}_{len(self._threads)}", daemon=True)
                # Started under the lock: shutdown() (on another thread) then joins only threads that were started.
                thread.start()
                self._threads.append(thread)
            else:
                self._idle -= 1  # the token below is for an idle worker, or for the next one to finish
        self._wake.put(None)
        return future

    def _work(self) -> None:
        wake, urgent, bulk = self._wake, self._urgent, self._bulk
        while True:
            wake.get()
            try:
                future, fn, args, kwargs = urgent.popleft()
            except IndexError:
                try:
                    future, fn, args, kwargs = bulk.popleft()
                except IndexError:
                    return  # a shutdown token
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                del future, fn, args, kwargs
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
        if cancel_futures:
            for line in (self._urgent, self._bulk):
                for future, *_ in list(line):
                    future.cancel()  # a worker that takes it skips it
        for _ in threads:
            self._wake.put(None)
        if wait:
            for thread in threads:
                thread.join()


def workers_for(concurrency: int) -> int:
    """Worker threads for a window of ``concurrency`` requests in flight: a few more than the window, so that while
    some workers parse what they received (a log is parsed after its slot is given back, see
    :data:`cidash.remote.http.SINK_AFTER_SLOT`) others keep every slot busy."""
    concurrency = max(1, concurrency)
    return concurrency + max(2, concurrency // 8)


def submit_bulk(pool: Executor, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
    """``pool.submit_bulk(...)`` where the pool has two queues, else an ordinary ``submit``."""
    bulk = getattr(pool, "submit_bulk", None)
    if bulk is None:
        return pool.submit(fn, *args, **kwargs)
    future: Future[_T] = bulk(fn, *args, **kwargs)
    return future
