"""The serve scheduler: each project's incremental sync on its own adaptive, jittered timer.

- **Adaptive interval.** After a sync that found nothing new the project's interval doubles, up to
  ``max_interval``; after one that found something it drops back to ``interval``. An idle project therefore costs
  one request (the pipelines listing) per ``max_interval``. A failed sync backs off the same way.
- **Jitter.** Every next run is ``interval x uniform(1 - jitter, 1 + jitter)`` away, so projects added together
  do not hit GitLab together.
- **Triggers** (webhooks) make a project due ``debounce`` seconds from now (never later than it already was) and
  reset its interval; a burst of deliveries is one sync. A trigger during a sync queues exactly one more.
- **One sync per project.** A project is handed to at most one worker at a time; across processes the sync's own
  lease in the store (``sync_leases``) keeps the promise.
- **Stop.** :meth:`Scheduler.stop` hands out nothing more; the running syncs are asked to stop at their next
  progress point (between commits), so none is left half-written.

The clock (``clock``, monotonic seconds) and the random source are injected: tests drive it without sleeping.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cidash.errors import CidashError, ProjectBusy
from cidash.models import Project
from cidash.sync import SyncProgress, SyncReport


class SyncStopped(CidashError):
    """Raised into a running sync (through its progress callback) when serve stops."""


@dataclass
class ProjectState:
    target: str | int | Project  # what was configured / listed (path, id or a listed project)
    label: str  # path for logs and metrics until the project is resolved
    project: Project | None = None
    interval: float = 0.0
    next_due: float = 0.0
    running: bool = False
    again: bool = False  # triggered while running: one more sync after this one
    synced_once: bool = False  # a complete sync in this process
    syncs: int = 0
    errors: int = 0
    last_error: str | None = None


#: ``sync(state, progress) -> report``; raises :class:`CidashError` when the sync fails.
SyncFn = Callable[[ProjectState, Callable[[SyncProgress], None]], SyncReport]


def changed(report: SyncReport) -> bool:
    """Did the sync find anything new (anything that resets the adaptive interval)? Registry tags are not
    counted: a registry refresh lists every tag, new or not."""
    return bool(report.pipelines or report.jobs or report.logs or report.ci_configs)


class Scheduler:
    def __init__(
        self,
        sync: SyncFn,
        *,
        interval: float = 60.0,
        max_interval: float = 900.0,
        jitter: float = 0.1,
        debounce: float = 5.0,
        workers: int = 1,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_done: Callable[[ProjectState, SyncReport | None, CidashError | None], None] | None = None,
    ) -> None:
        self._sync = sync
        self.interval = interval
        self.max_interval = max(max_interval, interval)
        self.jitter = jitter
        self.debounce = debounce
        self.workers = max(1, workers)
        self.clock = clock
        self.rng = rng or random.Random()
        self.on_done = on_done
        self.states: list[ProjectState] = []
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._running = 0

    # -- projects ----------------------------------------------------------------------------------------------

    def add(self, target: str | int | Project, label: str | None = None) -> ProjectState:
        """Schedule a project (due now). Adding one that is known (same id or path) returns the known state."""
        with self._cond:
            for s in self.states:
                if _same(s, target):
                    return s
            project = target if isinstance(target, Project) else None
            state = ProjectState(target=target, label=label or _label(target), project=project, interval=self.interval)
            state.next_due = self.clock()
            self.states.append(state)
            self._cond.notify_all()
            return state

    def find(self, project_id: int | None, path: str | None) -> ProjectState | None:
        with self._cond:
            for s in self.states:
                if project_id is not None and s.project is not None and s.project.id == project_id:
                    return s
            for s in self.states:
                if project_id is not None and s.target == project_id:
                    return s
                if path is not None and (s.label == path or (s.project is not None and s.project.path == path)):
                    return s
            return None

    def trigger(self, state: ProjectState) -> str:
        """Sync ``state`` soon (debounced). Returns "queued", "already queued" or "after the running sync"."""
        with self._cond:
            state.interval = self.interval
            if state.running:
                state.again = True
                return "after the running sync"
            due = self.clock() + self.debounce
            if state.next_due <= due:
                return "already queued"
            state.next_due = due
            self._cond.notify_all()
            return "queued"

    def ready(self) -> bool:
        with self._cond:
            return bool(self.states) and all(s.synced_once for s in self.states)

    def snapshot(self) -> list[ProjectState]:
        with self._cond:
            return [ProjectState(**vars(s)) for s in self.states]

    # -- running -----------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="cidash-serve-sync")
        self._thread = threading.Thread(target=self._loop, name="cidash-serve-scheduler", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping.is_set()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop handing out syncs and ask the running ones to stop; True when all ended within ``timeout``."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._running and time.monotonic() < deadline:
                self._cond.wait(0.1)
            ended = self._running == 0
        if self._pool is not None:
            self._pool.shutdown(wait=ended, cancel_futures=True)
        return ended

    def run_due(self) -> int:
        """Start every due project that is not running (as many as there are free workers); returns how many.
        The scheduler thread calls this; tests may call it directly with an injected clock."""
        started = 0
        with self._cond:
            if self._stopping.is_set():
                return 0
            now = self.clock()
            due = sorted((s for s in self.states if not s.running and s.next_due <= now), key=lambda s: s.next_due)
            for state in due:
                if self._running >= self.workers:
                    break
                state.running = True
                self._running += 1
                started += 1
                assert self._pool is not None, "start() first"
                self._pool.submit(self._run_one, state)
        return started

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self.run_due()
            with self._cond:
                if self._stopping.is_set():
                    break
                waiting = [s.next_due for s in self.states if not s.running]
                delay = 1.0 if not waiting else min(waiting) - self.clock()
                if self._running >= self.workers:
                    delay = 1.0
                if delay > 0:
                    self._cond.wait(min(delay, 1.0))

    def _progress(self, update: SyncProgress) -> None:
        if self._stopping.is_set():
            raise SyncStopped("serve is stopping: the sync ends at its last commit")

    def _run_one(self, state: ProjectState) -> None:
        report: SyncReport | None = None
        error: CidashError | None = None
        try:
            report = self._sync(state, self._progress)
        except CidashError as exc:
            error = exc
        except Exception as exc:  # a bug must not kill the worker: reported as an error of this sync
            error = CidashError(f"{type(exc).__name__}: {exc}")
        finally:
            with self._cond:
                self._finish(state, report, error)
                self._running -= 1
                self._cond.notify_all()
        if self.on_done is not None and not isinstance(error, SyncStopped):
            self.on_done(state, report, error)

    def _finish(self, state: ProjectState, report: SyncReport | None, error: CidashError | None) -> None:
        state.running = False
        state.syncs += 1
        now = self.clock()
        if isinstance(error, ProjectBusy):
            # another process (sharing the store) is syncing it: that is its job now; look again after the
            # normal interval, without counting an error or backing off
            state.next_due = now + self.interval * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
            return
        if error is not None:
            state.errors += 1
            state.last_error = error.one_line()
            state.interval = min(max(state.interval * 2, self.interval), self.max_interval)
        else:
            assert report is not None
            state.synced_once = True
            state.last_error = None
            if report.project.id:
                state.project = report.project
                state.label = report.project.path
            state.interval = self.interval if changed(report) else min(state.interval * 2, self.max_interval)
        state.next_due = now + state.interval * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        if state.again:
            state.again = False
            state.next_due = min(state.next_due, now + self.debounce)


def _label(target: str | int | Project) -> str:
    return target.path if isinstance(target, Project) else str(target)


def _same(state: ProjectState, target: str | int | Project) -> bool:
    if isinstance(target, Project):
        return (state.project is not None and state.project.id == target.id) or state.label == target.path
    return state.target == target or state.label == str(target)
