"""`cidash simulate` and `cidash demo` (headless), and the shared demo environment."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest

from cidash.cli import main
from cidash.commands import demo as demo_command
from cidash.sim import Scenario
from cidash.sim.demo import demo_environment

SMALL = Scenario(days=4, pipelines_per_day=4, migration_day=3)


def test_simulate_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cidash", "simulate", "--port", "0", "--pipelines", "20", "--days", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)", first)
        assert match, first
        url = match.group(1)
        banner = "".join(proc.stdout.readline() for _ in range(8))
        assert "demo-token" in banner and "curl" in banner
        r = httpx.get(url + "/api/v4/projects/platform%2Fapp/pipelines", headers={"PRIVATE-TOKEN": "demo-token"})
        assert r.status_code == 200 and int(r.headers["x-total"]) >= 20
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _banner_of(argv: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cidash", "simulate", "--port", "0", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("Request counts"):
        line = proc.stdout.readline()
        assert line, "".join(lines)
        lines.append(line)
    return proc, "".join(lines)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_simulate_suggests_a_sync_that_works_when_pasted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The banner's `cidash sync` line names the project and a window that stays under the 2,000 requests a
    minute the simulator advertises: pasted as it is, it syncs without waiting for a rate-limit reset."""
    import shlex

    proc, banner = _banner_of([])
    try:
        sync_line = next(line for line in banner.splitlines() if " cidash sync " in line)
        words = shlex.split(sync_line)
        env = dict(w.split("=", 1) for w in words[: words.index("cidash")])
        args = words[words.index("cidash") + 1 :]
        assert args[:3] == ["sync", "--project", "platform/app"] and "--since" in args
        assert any(" cidash tui --project platform/app" in line for line in banner.splitlines())
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        assert main([*args, "--db", str(tmp_path / "s.db"), "--json"]) == 0
        captured = capsys.readouterr()
        assert "waiting" not in captured.err, captured.err
        stats = httpx.get(env["GITLAB_URL"] + "/__sim/stats").json()
        assert 0 < stats["total_requests"] < 2000
    finally:
        _stop(proc)


def test_simulate_group_banner_names_the_group() -> None:
    proc, banner = _banner_of(["--group-projects", "2"])
    try:
        assert "GITLAB_TOKEN=demo-token cidash sync --group platform" in banner
        assert "cidash sync --project" not in banner
    finally:
        _stop(proc)


def test_simulate_without_ratelimit_headers_is_a_self_managed_gitlab_with_its_throttles_off(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--no-ratelimit-headers: no answer carries RateLimit-*, and the banner says what a sync then does."""
    proc, banner = _banner_of(["--pipelines", "5", "--days", "2", "--no-ratelimit-headers", "--capacity", "4"])
    try:
        url = next(w for w in banner.split() if w.startswith("http://127.0.0.1:"))
        answer = httpx.get(url + "/api/v4/projects/platform%2Fapp", headers={"PRIVATE-TOKEN": "demo-token"})
        assert answer.status_code == 200
        assert not [name for name in answer.headers if name.lower().startswith("ratelimit")]
        assert "No RateLimit-* headers" in banner and "2,000 a minute" not in banner
        stats = httpx.get(url + "/__sim/stats").json()  # the control endpoint never waits for a request thread
        assert stats["total_requests"] == 1
    finally:
        _stop(proc)
    assert main(["simulate", "--no-ratelimit-headers", "--rate-limit", "10"]) == 2
    assert "contradict each other" in capsys.readouterr().err


def test_simulate_bad_port_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


def test_demo_environment_writes_config_and_cleans_up() -> None:
    with demo_environment(SMALL) as env:
        config = tomllib.loads(env.config_path.read_text())
        assert config["gitlab"]["url"] == env.sim.url
        assert config["gitlab"]["projects"] == ["platform/app"]
        assert env.token_file.read_text().strip() == env.sim.token
        assert config["store"]["path"] == str(env.store_path)
        assert env.argv("check")[:3] == ["check", "--config", str(env.config_path)]
        assert httpx.get(env.sim.url + "/api/v4/version", headers={"PRIVATE-TOKEN": env.sim.token}).status_code == 200
        directory = env.directory
    assert not directory.exists()


def test_live_demo_environment_ends_today() -> None:
    with demo_environment(SMALL, live=True, time_scale=0.0) as env:
        now = env.now
        assert env.scenario.end.date() > now.date() >= env.scenario.start.date()
        with httpx.Client(base_url=env.sim.url + "/api/v4", headers={"PRIVATE-TOKEN": env.sim.token}) as client:
            pipelines = client.get("/projects/42/pipelines", params={"per_page": 100}).json()
        assert pipelines and all(p["created_at"] <= now.strftime("%Y-%m-%dT%H:%M:%S.999Z") for p in pipelines)


def test_headless_demo_runs_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with demo_environment(SMALL) as env:
        code = demo_command.run_headless(env)
    out = capsys.readouterr().out
    assert code == 0
    assert "cidash demo: simulated GitLab at http://127.0.0.1:" in out
    for command in ("sync", "check", "compare"):
        if demo_command.available(command):
            assert f"$ cidash {command} --config <demo config>" in out
        else:
            assert f"skipped: 'cidash {command}'" in out


def test_headless_demo_skips_missing_commands(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(demo_command, "available", lambda command: False)
    with demo_environment(SMALL) as env:
        assert demo_command.run_headless(env) == 0
    out = capsys.readouterr().out
    assert out.count("is not available yet") == 3


def test_available_detects_stubs() -> None:
    assert demo_command.available("simulate")
    assert not demo_command.available("no_such_command")


def test_dashboard_mode_opens_the_tui_against_the_live_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    import cidash.cli

    calls: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        calls.append(argv)
        config = tomllib.loads(Path(argv[2]).read_text())
        r = httpx.get(config["gitlab"]["url"] + "/api/v4/version", headers={"PRIVATE-TOKEN": "demo-token"})
        assert r.status_code == 200
        return 0

    monkeypatch.setattr(cidash.cli, "main", fake_main)
    args = cidash.cli.build_parser().parse_args(["demo", "--dashboard", "--seed", "3"])
    assert demo_command.run(args) == 0
    assert calls and calls[0][:2] == ["tui", "--config"]


def test_plain_demo_without_a_terminal_prints_the_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    import cidash.commands.common
    from cidash.cli import build_parser

    modes: list[str] = []
    monkeypatch.setattr(cidash.commands.common, "has_terminal", lambda: False)
    monkeypatch.setattr(demo_command, "DEFAULT_MODE", "dashboard")
    monkeypatch.setattr(demo_command, "run_headless", lambda env: modes.append("headless") or 0)
    monkeypatch.setattr(demo_command, "run_dashboard", lambda env: modes.append("dashboard") or 0)
    args = build_parser().parse_args(["demo", "--seed", "3"])
    assert demo_command.run(args) == 0
    assert modes == ["headless"]
