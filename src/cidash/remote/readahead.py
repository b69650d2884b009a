"""A listing read ahead on a helper thread: its pages are a chain of round trips, so the next ones are requested
while the caller still works on this one (the sync's pipelines and jobs listings, the jobs listing's pages)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

_T = TypeVar("_T")


class ReadAhead(Generic[_T]):
    """``items`` produced on a helper thread from the moment this is made, up to ``depth`` ahead of the consumer:
    a listing whose pages are a chain of round trips runs while the caller still does something else. Exceptions
    arrive in order; :meth:`close` (also when the consumer stops early) stops the producer at its next item."""

    def __init__(self, items: Iterator[_T], depth: int, name: str) -> None:
        self._box: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._produce, args=(items,), name=name, daemon=True)
        self._thread.start()

    def _produce(self, items: Iterator[_T]) -> None:
        try:
            for item in items:
                while not self._stop.is_set():
                    try:
                        self._box.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._box.put((False, None))
        except BaseException as exc:  # handed to the consumer
            self._box.put((False, exc))

    def __iter__(self) -> Iterator[_T]:
        try:
            while not self._done:
                ok, value = self._box.get()
                if not ok:
                    self._done = True
                    if isinstance(value, BaseException):
                        raise value
                    return
                yield value  # type: ignore[misc]
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()


def read_ahead(items: Iterator[_T], depth: int, name: str) -> Iterator[_T]:
    """``items`` through a :class:`ReadAhead` started now (see there)."""
    return iter(ReadAhead(items, depth, name))
