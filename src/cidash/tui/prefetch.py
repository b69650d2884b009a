"""A cold start's first Health, computed in a second process while the dashboard imports and starts Textual.

With no cached Health, the first screen waits for :func:`cidash.tui.data.first_health` (``cidash check``'s own
load and evaluation, ~0.4 s of CPU at 10,000 pipelines) on top of Textual's import and first layout (~0.5 s). Both
are CPU-bound Python: in one process they take turns under the GIL (a thread gains nothing, bench/README.md
"TUI"), in two they run side by side on a second core. So ``cidash`` forks a helper before it imports Textual: the
helper opens the store read-only on its own connection, computes the first Health and hands it back through a
pipe (pickled: a process of the same program, never anything GitLab sent as code), then exits; the dashboard's
loading worker reads it instead of computing it, and falls back to computing it itself when the helper gave
nothing (it failed, or was killed). Wall-clock time to the first populated screen drops by about the helper's
work; CPU time does not (the same work, in another process: bench/tui.py counts both processes).

Only on a cold start (no cached Health for the project the dashboard opens), where ``os.fork`` exists and is
safe and a second CPU is there: not on macOS (system frameworks that may not survive a fork without exec), not
with one usable CPU, not once a thread runs (the child would inherit its locks held), not when
``CIDASH_FIRST_HEALTH_PROCESS=0`` is set.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import select
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cidash.tui.healthcache import Health, dashboard_project, health_cache_path

if TYPE_CHECKING:
    from cidash.config import Config
    from cidash.models import Project
    from cidash.store import Store

#: Set to ``0`` to compute a cold start's first Health in the dashboard's own process (its loading worker).
ENV_SWITCH = "CIDASH_FIRST_HEALTH_PROCESS"


def chosen_project(projects: Sequence[Project], wanted: str | None, config: Config) -> Project | None:
    """The project the dashboard opens (:meth:`cidash.tui.app.CidashApp.select_project`'s rule): the one named
    by path or id, else :func:`~cidash.tui.healthcache.dashboard_project`; None when the named one is not there."""
    if wanted:
        return next((p for p in projects if wanted in (p.path, str(p.id))), None)
    return dashboard_project(projects, config)


def fork_usable() -> bool:
    """True where a helper can run beside the dashboard and a fork without exec is safe: POSIX but macOS, more
    than one CPU this process may run on (on one, the helper would only take turns with it), a single thread,
    not switched off."""
    return (
        hasattr(os, "fork")
        and sys.platform != "darwin"
        and _usable_cpus() > 1
        and threading.active_count() == 1
        and os.environ.get(ENV_SWITCH, "1") != "0"
    )


def _usable_cpus() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        try:
            return len(affinity(0))
        except OSError:
            pass
    return os.cpu_count() or 1


@dataclass(eq=False)
class FirstHealthProcess:
    """A helper process computing the first Health of ``project_id`` as of ``now`` (:func:`start_first_health`).

    :meth:`result` waits for it (from the dashboard's loading worker); :meth:`close` ends it unread (the
    dashboard quit first, or did not need it). Either reaps the process, so its CPU time is the parent's
    ``RUSAGE_CHILDREN`` from then on."""

    project_id: int
    now: datetime
    pid: int
    fd: int
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _open: bool = True

    def result(self, cancelled: Callable[[], bool] = lambda: False, poll: float = 0.05) -> Health | None:
        """The helper's Health; None when it gave none (the caller computes it), or once ``cancelled()``."""
        chunks: list[bytes] = []
        while True:
            with self._lock:
                if not self._open:
                    return None
                ready, _, _ = select.select([self.fd], [], [], 0)
                if ready:
                    chunk = os.read(self.fd, 1 << 16)
                    if not chunk:
                        break  # the helper closed its end: all it wrote is read
                    chunks.append(chunk)
                    continue
            if cancelled():
                self.close()
                return None
            try:
                select.select([self.fd], [], [], poll)  # waits outside the lock (and the GIL)
            except (OSError, ValueError):
                continue  # closed meanwhile (close() from another thread): said at the top of the loop
        self._finish(kill=False)
        try:
            health = pickle.loads(b"".join(chunks))  # our own forked helper's output
        except Exception:  # nothing (the helper failed) or cut short: computed here instead
            return None
        return health if isinstance(health, Health) else None

    def close(self) -> None:
        """End the helper if it still runs, and reap it (idempotent)."""
        self._finish(kill=True)

    def _finish(self, *, kill: bool) -> None:
        with self._lock:
            if not self._open:
                return
            self._open = False
            if kill:
                with contextlib.suppress(OSError):  # already gone
                    os.kill(self.pid, signal.SIGKILL)
            os.close(self.fd)
            with contextlib.suppress(ChildProcessError):  # reaped elsewhere
                os.waitpid(self.pid, 0)


def start_first_health(
    store: Store, config: Config, *, wanted: str | None, cache_dir: Path, now: datetime
) -> FirstHealthProcess | None:
    """Start computing the first Health of the project the dashboard will open, in a forked helper, when the
    dashboard has none cached for it (a cold start) and forking is usable (:func:`fork_usable`); else None.

    Call it before importing Textual (and before any thread starts): the point is that the helper's work and
    Textual's start run at the same time."""
    if not fork_usable():
        return None
    project = chosen_project(store.projects(), wanted, config)
    if project is None or health_cache_path(cache_dir, store.path, project.id).exists():
        return None  # nothing to show, or a warm start (the cached Health is shown at once)
    identity = store.identity
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid == 0:  # the helper: never returns
        os.close(read_end)
        _helper(write_end, identity, config, project, now)
    os.close(write_end)
    return FirstHealthProcess(project.id, now, pid, read_end)


def _helper(fd: int, identity: str, config: Config, project: Project, now: datetime) -> None:
    """The forked helper's whole life: compute, write, leave (``os._exit``: none of the parent's cleanup, buffers
    or open connections are touched)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # ctrl+c belongs to the dashboard, which ends this helper
        quiet = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):  # the terminal is the dashboard's: nothing from here may reach it
            os.dup2(quiet, std)
        gc.disable()  # a short life that makes no reference cycles worth collecting (imports, then the load)
        payload = b""
        try:
            from cidash.store import Store
            from cidash.tui.data import first_health

            with Store.open(identity, readonly=True) as store:  # its own connection, never the parent's
                payload = pickle.dumps(first_health(store, config, project, now), pickle.HIGHEST_PROTOCOL)
        except BaseException:  # the dashboard computes it itself and reports what fails there
            payload = b""
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:  # the parent gone: nothing to tell anyone
        pass
    finally:
        os._exit(0)
