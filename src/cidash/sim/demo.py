"""The demo environment shared by ``cidash demo`` (headless and dashboard): a running simulator, a throwaway
store and the settings cidash needs to talk to it.

Usage::

    with demo_environment() as env:
        env.sim          # the running SimulatedGitLab
        env.config_path  # a cidash.toml: [gitlab] url/token_file/projects, [store] path, [sync] since
        env.store_path   # the throwaway SQLite store (inside env.directory, deleted on exit)
        env.env          # {"GITLAB_URL": ..., "GITLAB_TOKEN": ...} for subprocesses
        env.now          # the simulator's clock, for `check --now`
        env.checkout     # a git checkout of the project's default branch (None without git)
        env.argv("check", "--format", "json")  # ["check", "--config", <path>, "--format", "json"]

``live=True`` anchors the story to today: the 30 days end today, the clock starts at the real current time
and runs at ``time_scale`` (pipelines planned for later today appear as their time comes), for the dashboard.
The default (``live=False``) is the fixed, reproducible scenario (2026-10-28 .. 2026-11-27).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cidash.sim.scenario import Scenario
from cidash.sim.server import SimulatedGitLab


@dataclass
class DemoEnvironment:
    sim: SimulatedGitLab
    directory: Path
    store_path: Path
    config_path: Path
    token_file: Path
    env: dict[str, str]
    checkout: Path | None = None

    @property
    def now(self) -> datetime:
        return self.sim.now()

    @property
    def scenario(self) -> Scenario:
        return self.sim.scenario

    def argv(self, command: str, *extra: str) -> list[str]:
        """Arguments for ``cidash.cli.main`` running ``command`` against the demo."""
        return [command, "--config", str(self.config_path), *extra]


def _git_name(text: str) -> str:
    """A name fast-import accepts in ``committer NAME <EMAIL>``: no angle brackets, no control characters."""
    return "".join(ch for ch in text if ch.isprintable() and ch not in "<>\n") or "cidash demo"


def make_checkout(sim: SimulatedGitLab, directory: Path) -> Path | None:
    """A git repository at ``directory`` holding the simulated project's default-branch history as of the
    simulator's clock: one commit per simulated commit (same files, time, title and author; git computes its own
    SHAs), the branch checked out. So ``K`` (key recompute), the dashboard's local ``.cache-key`` panel and
    ``cidash key --gitlab`` have a checkout to read in the demo. None when git is not installed."""
    import subprocess

    git = shutil.which("git")
    if git is None:
        return None
    project = sim.world.main
    branch = project.default_branch
    commits = list(reversed(sim.world.history(project, branch)))
    env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "PATH": os.environ.get("PATH", "")}
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run([git, "init", "-q", str(directory)], check=True, env=env)
    stream = bytearray()
    for mark, c in enumerate(commits, start=1):
        message = (c.title or "commit").encode("utf-8", "replace") + b"\n"
        who = f"{_git_name(c.author_name)} <{_git_name(c.author_email)}> {int(c.at)} +0000"
        stream += f"commit refs/heads/{branch}\nmark :{mark}\nauthor {who}\ncommitter {who}\n".encode()
        stream += b"data %d\n%s" % (len(message), message)
        if mark > 1:
            stream += f"from :{mark - 1}\n".encode()
        stream += b"deleteall\n"
        for path, data in sorted(c.files.items()):
            stream += f"M 100644 inline {path}\n".encode() + b"data %d\n" % len(data) + data + b"\n"
    subprocess.run([git, "fast-import", "--quiet"], input=bytes(stream), cwd=directory, check=True, env=env)
    subprocess.run([git, "symbolic-ref", "HEAD", f"refs/heads/{branch}"], cwd=directory, check=True, env=env)
    subprocess.run([git, "reset", "-q", "--hard"], cwd=directory, check=True, env=env)
    return directory


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextmanager
def demo_environment(
    scenario: Scenario | None = None,
    *,
    live: bool = False,
    time_scale: float = 1.0,
    latency_ms: float = 0.0,
    keep: bool = False,
    directory: Path | None = None,
    checkout: bool = False,
) -> Iterator[DemoEnvironment]:
    """Start the simulator and prepare a throwaway store and config (and with ``checkout`` a git checkout of the
    simulated project, :func:`make_checkout`); clean up on exit (unless ``keep``)."""
    scenario = scenario or Scenario()
    clock_start: datetime | None = None
    if live:
        now = datetime.now(UTC)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        scenario = replace(scenario, start=midnight - timedelta(days=scenario.days - 1))
        clock_start = now
    workdir = Path(tempfile.mkdtemp(prefix="cidash-demo-")) if directory is None else directory
    workdir.mkdir(parents=True, exist_ok=True)
    sim = SimulatedGitLab(
        scenario,
        time_scale=time_scale if live else 0.0,
        latency_ms=latency_ms,
        clock_start=clock_start,
        rate_limit_advertised=10_000,  # per minute: a first sync (~5,000 requests) never waits for the window
    )
    try:
        sim.start()
        token_file = workdir / "token"
        token_file.write_text(sim.token + "\n", encoding="utf-8")
        token_file.chmod(0o600)
        store_path = workdir / "cidash.db"
        since = (scenario.start - timedelta(days=1)).date().isoformat()
        config_path = workdir / "cidash.toml"
        config_path.write_text(
            "# cidash demo: the simulated GitLab (throwaway)\n"
            "[gitlab]\n"
            f"url = {_toml_string(sim.url)}\n"
            f"token_file = {_toml_string(str(token_file))}\n"
            f"projects = [{_toml_string(sim.project_path)}]\n"
            "max_rps = 500.0\n"
            "\n[store]\n"
            f"path = {_toml_string(str(store_path))}\n"
            "\n[sync]\n"
            f"since = {_toml_string(since)}\n",
            encoding="utf-8",
        )
        repo = make_checkout(sim, workdir / "checkout") if checkout else None
        yield DemoEnvironment(
            sim=sim,
            directory=workdir,
            store_path=store_path,
            config_path=config_path,
            token_file=token_file,
            env={"GITLAB_URL": sim.url, "GITLAB_TOKEN": sim.token},
            checkout=repo,
        )
    finally:
        sim.stop()
        if not keep and directory is None:
            shutil.rmtree(workdir, ignore_errors=True)
