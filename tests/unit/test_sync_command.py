"""`cidash sync`'s own helpers: the background import of the dashboard's Health computation."""

from __future__ import annotations

import threading

import pytest

from cidash.commands import sync as sync_command
from cidash.sync import SyncProgress


def _recorder(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    imported: list[str] = []
    monkeypatch.setattr(sync_command, "_import_health", lambda: imported.append(threading.current_thread().name))
    return imported


def test_health_import_starts_once_a_sync_changes_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    imported = _recorder(monkeypatch)
    shown: list[SyncProgress] = []
    prewarm = sync_command._HealthImport(shown.append, enabled=True)
    listing = SyncProgress(project="a/b", phase="pipelines", pipelines=3)  # still listing: not yet
    logs = SyncProgress(project="a/b", phase="logs", pipelines=3, jobs=20, logs_total=18)
    prewarm.update(listing)
    prewarm.join()
    assert imported == []
    prewarm.update(logs)
    prewarm.update(logs)
    prewarm.join()
    assert imported == ["cidash-health-import"]  # once, on its own thread
    assert shown == [listing, logs, logs]  # the display sees every update


@pytest.mark.parametrize(
    ("progress", "enabled"),
    [
        (SyncProgress(project="a/b", phase="logs"), True),  # an idle refresh: nothing new counted
        (SyncProgress(project="a/b", phase="done"), True),
        (SyncProgress(project="a/b", phase="logs", pipelines=1, logs_total=4), False),  # CI: no dashboard follows
    ],
)
def test_no_health_import_for_an_idle_refresh_or_in_ci(
    monkeypatch: pytest.MonkeyPatch, progress: SyncProgress, enabled: bool
) -> None:
    imported = _recorder(monkeypatch)
    prewarm = sync_command._HealthImport(lambda p: None, enabled=enabled)
    prewarm.update(progress)
    prewarm.join()
    assert imported == []


def test_dashboard_follows_unless_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert not sync_command._dashboard_follows()
    monkeypatch.setenv("CI", "")
    assert sync_command._dashboard_follows()
