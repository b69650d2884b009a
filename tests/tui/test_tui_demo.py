"""The demo's git checkout: ``cidash demo`` gives the dashboard a checkout of the simulated project, so ``K``,
the local ``.cache-key`` panel and ``cidash key --gitlab`` work in the demo (issue 16)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from cidash.cli import main
from cidash.commands import demo as demo_command
from cidash.sim import Scenario
from cidash.sim.demo import demo_environment

SMALL = Scenario(days=4, pipelines_per_day=4, migration_day=3)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def test_demo_checkout_replays_the_default_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    with demo_environment(SMALL, checkout=True) as env:
        repo = env.checkout
        assert repo is not None and (repo / ".git").is_dir()
        project = env.sim.world.main
        history = env.sim.world.history(project, project.default_branch)
        count = subprocess.run(
            ["git", "rev-list", "--count", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        )
        assert int(count.stdout) == len(history)
        for path, data in history[0].files.items():
            assert (repo / path).read_bytes() == data
        title = subprocess.run(
            ["git", "log", "-1", "--format=%s"], cwd=repo, capture_output=True, text=True, check=True
        )
        assert title.stdout.strip() == history[0].title
        monkeypatch.chdir(repo)
        assert main(["key", "--check", ".cache-key"]) == 0
        assert main(["key", "--gitlab"]) == 0
        directory = env.directory
    assert not directory.exists()


def test_demo_without_checkout_makes_none() -> None:
    with demo_environment(SMALL) as env:
        assert env.checkout is None


def test_dashboard_demo_passes_its_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr("cidash.cli.main", lambda argv: seen.append(list(argv)) or 0)
    with demo_environment(SMALL, checkout=True) as env:
        assert demo_command.run_dashboard(env) == 0
        assert seen[-1][-2:] == ["--checkout", str(env.checkout)]
        env.checkout = None
        demo_command.run_dashboard(env)
        assert seen[-1][-1] == "--no-checkout"
