"""One sync per project at a time: the lease a sync holds on its project in the store (``sync_leases``)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cidash.errors import (
    CidashError,
    ProjectBusy,
)
from cidash.models import Project
from cidash.store import Store, SyncLease
from cidash.sync.context import (
    SyncProgress,
    _Ctx,
    _warn,
)

#: A sync's lease on its project lasts this long past its last renewal (a killed sync frees it by then at most).
LEASE_TTL = timedelta(seconds=90)
LEASE_RENEW_SECONDS = 20.0
_LEASE_POLL_SECONDS = 0.5
_HOST = socket.gethostname()


class _Lease:
    """This sync's hold on its project (``sync_leases``): acquired before the first request, renewed on a timer
    thread, released at the end."""

    def __init__(self, store: Store, project: Project) -> None:
        self.store = store
        self.project = project
        self.owner = os.urandom(16).hex()  # 128 random bits, as a uuid4 (without importing uuid: ~4 ms a start)
        self.ctx: _Ctx | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, progress: Callable[[SyncProgress], None] | None, *, wait: bool = True) -> float:
        """Take the lease, waiting while another live sync holds it (``wait=False``: raise ProjectBusy instead,
        before the sync's first request for the project's data); returns the seconds waited."""
        started = time.monotonic()
        told = False
        while True:
            holder = self.store.acquire_sync_lease(
                self.project.id,
                self.owner,
                pid=os.getpid(),
                host=_HOST,
                now=datetime.now(UTC),
                ttl=LEASE_TTL,
                is_dead=_holder_is_dead,
            )
            if holder is None:
                break
            if not wait:
                raise ProjectBusy(
                    f"{self.project.path} is being synced by another process ({_describe_holder(holder)}); skipped"
                )
            if progress is not None:
                # at every poll, not once: a caller that stops its syncs through the callback (a group sync on
                # Ctrl-C, serve on SIGTERM) stops a waiting one too
                progress(SyncProgress(project=self.project.path, phase="waiting", message=_describe_holder(holder)))
            told = True
            time.sleep(_LEASE_POLL_SECONDS)
        self._thread = threading.Thread(target=self._renew, name="cidash-sync-lease", daemon=True)
        self._thread.start()
        return time.monotonic() - started if told else 0.0

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_RENEW_SECONDS):
            try:
                held = self.store.renew_sync_lease(self.project.id, self.owner, now=datetime.now(UTC), ttl=LEASE_TTL)
            except CidashError:
                continue  # a busy store: try again at the next tick (the lease outlives a few missed renewals)
            if not held and self.ctx is not None:
                _warn(self.ctx, "this sync's lease on the project expired; another sync may be running too")
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(CidashError):
            self.store.release_sync_lease(self.project.id, self.owner)


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) is no probe on Windows (it would stop the process): rely on the expiry
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or cannot tell: assume alive, the lease expires anyway
    return True


def _holder_is_dead(lease: SyncLease) -> bool:
    """A lease held by a process of this host that no longer exists (a sync killed with -9) is free at once."""
    return lease.host == _HOST and lease.pid != os.getpid() and not _pid_alive(lease.pid)


def _describe_holder(lease: SyncLease) -> str:
    return (
        f"another sync (pid {lease.pid} on {lease.host}, since {lease.acquired_at:%H:%M:%S} UTC) is syncing this "
        "project; waiting for it to finish"
    )
