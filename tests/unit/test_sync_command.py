"""`cidash sync`'s own helpers: the background import of the dashboard's Health computation."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cidash.commands import sync as sync_command
from cidash.config import Config, SyncSettings, load_config
from cidash.errors import ConfigError
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


def test_dashboard_follows_unless_ci_or_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    on, off = Config(), Config(sync=SyncSettings(warm_dashboard=False))
    monkeypatch.setenv("CI", "true")
    assert not sync_command._dashboard_follows(on)
    monkeypatch.setenv("CI", "")
    assert sync_command._dashboard_follows(on)
    assert not sync_command._dashboard_follows(off)


def test_warm_dashboard_is_read_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "cidash.toml"
    path.write_text("[sync]\nwarm_dashboard = false\n")
    assert load_config(path).sync.warm_dashboard is False
    path.write_text('[sync]\nwarm_dashboard = "no"\n')
    with pytest.raises(ConfigError, match="warm_dashboard"):
        load_config(path)


def test_the_health_import_loads_what_the_healths_computation_would_import_at_the_end() -> None:
    """The background import covers the Health's load and criteria and the CI file's reader (YAML), which the load
    imports only when it reads the CI config: each would otherwise be imported after the sync's last answer."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cidash.commands.sync import _import_health\n"
        "before = {m for m in ('cidash.tui.data', 'cidash.ciconfig', 'yaml') if m in sys.modules}\n"
        "_import_health()\n"
        "print(sorted(before), all(m in sys.modules for m in ('cidash.tui.data', 'cidash.ciconfig', 'yaml')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "True"]
