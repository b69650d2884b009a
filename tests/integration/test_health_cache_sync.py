"""`cidash sync` leaves the dashboard's cached Health behind, so the first `cidash` after it starts warm."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cidash.cli import main
from cidash.config import Config
from cidash.sim import Scenario, SimulatedGitLab
from cidash.store import Store
from cidash.tui.data import default_cache_dir, health_cache_path, load_dashboard, load_health


@pytest.fixture
def small_sim() -> Iterator[SimulatedGitLab]:
    with SimulatedGitLab(Scenario(days=2, pipelines_per_day=4, migration_day=2)) as server:
        yield server


def sync(sim: SimulatedGitLab, db: Path, *where: str) -> int:
    argv = ["sync", "--url", sim.url, *where, "--db", str(db), "--since", "all", "--max-rps", "0"]
    return main([*argv, "--progress", "none", "--verbose"])


def test_sync_leaves_the_dashboards_health_as_of_the_store(
    small_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITLAB_TOKEN", small_sim.token)
    monkeypatch.delenv("CI", raising=False)
    db = tmp_path / "store.db"
    assert sync(small_sim, db, "--project", small_sim.project_path) == 0
    assert f"computed the dashboard's Health of {small_sim.project_path} for its next start" in capsys.readouterr().err
    with Store.open(db) as store:
        project = store.projects()[0]
        path = health_cache_path(default_cache_dir(), store.path, project.id)
        cached = load_health(path)
        assert cached is not None
        first_sync = store.last_sync(project.id)
        assert cached.current_for(first_sync) is True
        # what the dashboard's own worker computes from the same store at the same time
        _, health = load_dashboard(store, Config(), project, cached.generated_at)
        assert cached.rows == health.rows and cached.verdict == health.verdict

    # A sync that brings nothing new keeps that Health, now as of this sync (not computed again).
    assert sync(small_sim, db, "--project", small_sim.project_path) == 0
    assert "computed the dashboard's Health" not in capsys.readouterr().err
    with Store.open(db) as store:
        again = load_health(path)
        assert again is not None and again.generated_at == cached.generated_at
        assert store.last_sync(project.id) != first_sync
        assert again.current_for(store.last_sync(project.id)) is True
        assert again.current_for(first_sync) is False  # a cache from before this sync would say so

    # A sync that brings a new pipeline computes it again.
    small_sim.world.create_pipeline(small_sim.world.main, "main", [], "test")
    assert sync(small_sim, db, "--project", small_sim.project_path) == 0
    assert "computed the dashboard's Health" in capsys.readouterr().err
    newer = load_health(path)
    assert newer is not None and newer.generated_at > cached.generated_at


def test_only_the_project_the_dashboard_opens_first_and_in_ci_none(
    small_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GITLAB_TOKEN", small_sim.token)
    monkeypatch.setenv("CI", "true")
    assert sync(small_sim, tmp_path / "ci.db", "--group", "platform") == 0
    assert "dashboard" not in capsys.readouterr().err
    assert not default_cache_dir().exists() or not list(default_cache_dir().glob("health-*.json"))

    monkeypatch.delenv("CI")
    db = tmp_path / "group.db"
    assert sync(small_sim, db, "--group", "platform") == 0
    err = capsys.readouterr().err
    with Store.open(db) as store:
        projects = store.projects()
        assert len(projects) > 1
        cached = [p.path for p in projects if load_health(health_cache_path(default_cache_dir(), store.path, p.id))]
    assert cached == [projects[0].path]  # the dashboard's first project; the others when it has shown them
    assert f"computed the dashboard's Health of {projects[0].path} for" in err


def test_a_sync_that_changes_nothing_does_not_load_the_core(
    small_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle refresh only re-marks the cached Health: the core's load (cidash.tui.data, the snapshot) is not even
    imported, so `cidash sync` in a loop costs what it did before the cache existed."""
    import subprocess
    import sys

    monkeypatch.setenv("GITLAB_TOKEN", small_sim.token)
    monkeypatch.delenv("CI", raising=False)
    db = tmp_path / "store.db"
    assert sync(small_sim, db, "--project", small_sim.project_path) == 0
    script = (
        "import sys\nfrom cidash.cli import main\n"
        f"code = main({['sync', '--url', small_sim.url, '--project', small_sim.project_path, '--db', str(db)]!r})\n"
        "print(code, 'cidash.tui.data' in sys.modules, 'cidash.snapshot' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.split()[-3:] == ["0", "False", "False"], done.stderr
    with Store.open(db) as store:
        cached = load_health(health_cache_path(default_cache_dir(), store.path, store.projects()[0].id))
        assert cached is not None and cached.current_for(store.last_sync(store.projects()[0].id)) is True
