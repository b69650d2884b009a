"""The serve scheduler with a fake sync and a hand-driven clock: adaptive interval, jitter, debounce, one sync
per project, stopping a running sync at its next progress point."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import replace

import pytest

from cidash.errors import CidashError, ConnectError, ProjectBusy
from cidash.models import Project, RateLimitState
from cidash.serve.scheduler import ProjectState, Scheduler, SyncStopped
from cidash.sync import SyncProgress, SyncReport
from serve_support import wait_for

IDLE = SyncReport(
    project=Project(id=42, path="platform/app", web_url=""),
    first_sync=False,
    duration=0.0,
    pipelines=0,
    jobs=0,
    logs=0,
    logs_skipped=0,
    logs_unavailable=0,
    logs_failed=0,
    checksums=0,
    ci_configs=0,
    image_tags=0,
    resource_groups=0,
    requests=1,
    bytes=0,
    retries=0,
    requests_by_kind={},
    rate_limit=RateLimitState(),
    rate_limit_wait=0.0,
)
BUSY = replace(IDLE, pipelines=3, jobs=20)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(results: list[SyncReport | CidashError], **kw: object) -> tuple[Scheduler, Clock, list[str]]:
    clock = Clock()
    calls: list[str] = []

    def sync(state: ProjectState, progress: Callable[[SyncProgress], None]) -> SyncReport:
        calls.append(state.label)
        result = results.pop(0) if results else IDLE
        if isinstance(result, CidashError):
            raise result
        return result

    opts: dict[str, object] = {"interval": 60, "max_interval": 900, "jitter": 0.0, "debounce": 5, "clock": clock}
    opts.update(kw)
    sched = Scheduler(sync, **opts)  # type: ignore[arg-type]
    return sched, clock, calls


def run_once(sched: Scheduler) -> int:
    """Start what is due and wait for it to finish (the worker pool runs it)."""
    started = sched.run_due()
    wait_for(lambda: not any(s.running for s in sched.states), 10, "the fake syncs")
    return started


@pytest.fixture(autouse=True)
def _pool(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only the worker pool: the tests call run_due() themselves, no scheduler thread.
    from concurrent.futures import ThreadPoolExecutor

    def start(self: Scheduler) -> None:
        self._pool = ThreadPoolExecutor(max_workers=self.workers)

    monkeypatch.setattr(Scheduler, "start", start)


def test_idle_project_backs_off_and_change_resets() -> None:
    sched, clock, calls = make([BUSY, IDLE, IDLE, IDLE, IDLE, IDLE, BUSY])
    sched.start()
    state = sched.add("platform/app")
    intervals = []
    for _ in range(7):
        clock.t = state.next_due
        assert run_once(sched) == 1
        intervals.append(state.interval)
    assert intervals == [60, 120, 240, 480, 900, 900, 60]
    assert state.synced_once and state.label == "platform/app" and state.project is not None
    assert len(calls) == 7
    sched.stop(1)


def test_nothing_runs_before_it_is_due_and_errors_back_off() -> None:
    sched, clock, _calls = make([ConnectError("GitLab went away"), IDLE])
    sched.start()
    state = sched.add("a/b")
    assert run_once(sched) == 1
    assert state.errors == 1 and not state.synced_once and state.last_error and state.interval == 120
    clock.t = state.next_due - 1
    assert sched.run_due() == 0
    clock.t = state.next_due
    assert run_once(sched) == 1 and state.synced_once
    sched.stop(1)


def test_a_project_another_process_is_syncing_is_skipped_without_an_error_or_back_off() -> None:
    sched, clock, _calls = make([ProjectBusy("platform/app is being synced by another process"), IDLE])
    sched.start()
    state = sched.add("platform/app")
    assert run_once(sched) == 1
    assert state.errors == 0 and state.last_error is None and state.interval == 60
    assert state.next_due == clock.t + 60  # looked at again after the normal interval
    clock.t = state.next_due
    assert run_once(sched) == 1 and state.synced_once
    sched.stop(1)


def test_jitter_spreads_the_next_run_within_bounds() -> None:
    sched, clock, _ = make([], jitter=0.2, rng=random.Random(1))
    sched.start()
    state = sched.add("a/b")
    seen = set()
    for _ in range(30):
        clock.t = state.next_due
        before = clock.t
        run_once(sched)
        delay = state.next_due - before
        assert state.interval * 0.8 <= delay <= state.interval * 1.2
        seen.add(round(delay / state.interval, 3))
    assert len(seen) > 10
    sched.stop(1)


def test_trigger_debounces_and_resets_the_interval() -> None:
    sched, clock, calls = make([])
    sched.start()
    state = sched.add("a/b")
    run_once(sched)
    state.interval = 900
    state.next_due = clock.t + 900
    assert sched.trigger(state) == "queued"
    assert state.next_due == clock.t + 5 and state.interval == 60
    clock.t += 2
    assert sched.trigger(state) == "already queued"
    assert state.next_due == clock.t + 3
    clock.t += 3
    assert run_once(sched) == 1
    assert len(calls) == 2


def test_never_two_syncs_of_one_project_and_a_trigger_during_a_sync_queues_one_more() -> None:
    clock = Clock()
    gate = threading.Event()
    running = []
    overlaps = []

    def sync(state: ProjectState, progress: Callable[[SyncProgress], None]) -> SyncReport:
        if state.label in running:
            overlaps.append(state.label)
        running.append(state.label)
        gate.wait(10)
        running.remove(state.label)
        return IDLE

    sched = Scheduler(sync, interval=60, jitter=0, debounce=5, workers=4, clock=clock)
    sched.start()
    state = sched.add("a/b")
    assert sched.run_due() == 1
    clock.t += 100  # long overdue: still not started twice
    assert sched.run_due() == 0
    assert sched.trigger(state) == "after the running sync"
    gate.set()
    wait_for(lambda: not state.running, 10, "the sync")
    assert state.next_due == clock.t + 5 and not state.again
    clock.t += 5
    assert run_once(sched) == 1
    assert overlaps == [] and state.syncs == 2
    sched.stop(1)


def test_stop_ends_a_running_sync_at_its_next_progress_point() -> None:
    entered = threading.Event()
    ended: list[BaseException] = []

    def sync(state: ProjectState, progress: Callable[[SyncProgress], None]) -> SyncReport:
        entered.set()
        try:
            while True:
                progress(SyncProgress(project=state.label, phase="logs"))
                threading.Event().wait(0.01)
        except SyncStopped as exc:
            ended.append(exc)
            raise

    sched = Scheduler(sync, interval=60, jitter=0)
    sched.start()
    sched.add("a/b")
    sched.run_due()
    assert entered.wait(10)
    assert sched.stop(10) is True
    assert len(ended) == 1 and "stopping" in ended[0].one_line()
    assert sched.run_due() == 0


def test_find_by_id_and_path() -> None:
    sched, _, _ = make([])
    a = sched.add("platform/app")
    b = sched.add(Project(id=43, path="platform/docs", web_url=""))
    assert sched.add("platform/app") is a
    assert sched.find(43, None) is b and sched.find(None, "platform/app") is a and sched.find(7, "x/y") is None
    a.project = Project(id=42, path="platform/app", web_url="")
    assert sched.find(42, None) is a
    assert not sched.ready()
