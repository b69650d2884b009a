"""`cidash doctor` against the simulated GitLab on 127.0.0.1: origins, token scopes and expiry, version, store."""

from __future__ import annotations

import json
import socket
from datetime import date, timedelta
from pathlib import Path

import pytest

from cidash.cli import main
from cidash.sim import SimulatedGitLab


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["doctor", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def env(small_sim: SimulatedGitLab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SimulatedGitLab:
    monkeypatch.setenv("GITLAB_URL", small_sim.url)
    monkeypatch.setenv("GITLAB_TOKEN", small_sim.token)
    monkeypatch.setenv("CIDASH_DB", str(tmp_path / "store.db"))
    return small_sim


def test_healthy_setup_says_where_everything_comes_from(
    env: SimulatedGitLab, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "--project", env.project_path)
    assert code == 0, out + err
    assert f"{env.url} (from GITLAB_URL)" in out
    assert "private token (from GITLAB_TOKEN)" in out
    assert "GitLab 18.6.0-ee" in out and "scopes      api" in out
    assert "expires on" in out and "requests left" in out
    assert f"{tmp_path / 'store.db'} (from CIDASH_DB) does not exist yet" in out
    assert "no problems found" in out and env.token not in out + err
    assert env.stats.count("GET /personal_access_tokens/self") == 1
    assert f"graphql     shows {env.project_path}: the sync asks for pipelines' details 30 a request" in out
    assert env.stats.count("POST /api/graphql") == 1


def test_graphql_that_cannot_serve_the_sync_is_said_not_a_problem(
    env: SimulatedGitLab, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sync then asks for each pipeline's details over REST: information, not a problem (exit 0)."""
    from cidash.sim import FaultPlan, FaultRule

    code, out, _ = run(capsys)  # no project to ask about
    assert code == 0 and "not checked without a project given by its path" in out
    env.set_faults(FaultPlan(rules=(FaultRule(endpoint="POST /api/graphql", status=404),)))
    try:
        code, out, _ = run(capsys, "--project", env.project_path)
    finally:
        env.set_faults(None)
    line = next(line for line in out.splitlines() if line.startswith("--    graphql"))
    assert code == 0 and "POST /api/graphql (404)" in line and "a REST request of its own" in line


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            (),
            "a sync starts at 16 requests in flight and takes up to 32 while the answers keep their pace "
            "(set [gitlab] concurrency to hold one number)",
        ),
        (("--config", "{tmp}/chosen/cidash.toml"), "a sync holds up to 24 requests in flight ([gitlab] concurrency)"),
    ],
)
def test_an_instance_that_publishes_no_rate_limit_is_said_with_what_the_sync_does(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: tuple[str, ...],
    said: str,
) -> None:
    """A self-managed GitLab with its throttles off sends no RateLimit-* headers: doctor says so, and how many
    requests a sync will then hold in flight (from the default's 16 up, or the concurrency chosen)."""
    from cidash.sim import Scenario

    (tmp_path / "chosen").mkdir()
    (tmp_path / "chosen" / "cidash.toml").write_text("[gitlab]\nconcurrency = 24\n")
    argv = tuple(a.format(tmp=tmp_path) for a in argv)
    with SimulatedGitLab(Scenario(days=2, pipelines_per_day=2, migration_day=1), rate_limit_advertised=None) as sim:
        monkeypatch.setenv("GITLAB_URL", sim.url)
        monkeypatch.setenv("GITLAB_TOKEN", sim.token)
        monkeypatch.setenv("CIDASH_DB", str(tmp_path / "store.db"))
        code, out, err = run(capsys, *argv)
    line = next(line for line in out.splitlines() if "rate-limit" in line)
    assert code == 0, out + err
    assert f"not reported by this instance: {said}" in line


def test_store_backend_schema_and_size(
    env: SimulatedGitLab, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from cidash.store import SCHEMA_VERSION, Store

    with Store.open(tmp_path / "store.db"):
        pass
    code, out, _ = run(capsys, "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["store"]["schema_version"] == SCHEMA_VERSION and doc["store"]["backend"] == "sqlite"
    assert doc["store"]["source"] == "CIDASH_DB" and doc["store"]["size_bytes"] > 0
    (tmp_path / "other.db").write_bytes(b"this is not sqlite at all" * 100)
    code, out, _ = run(capsys, "--db", str(tmp_path / "other.db"))
    assert code == 1 and "FAIL  store" in out and "(from --db)" in out and "fix:" in out


def test_store_of_another_gitlab_fails_with_its_fix(
    env: SimulatedGitLab, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from cidash.store import Store
    from cidash.sync.origin import claim_store_origin

    with Store.open(tmp_path / "store.db") as store:
        claim_store_origin(store, env.url)
    code, out, _ = run(capsys, "--format", "json")
    checks = {c["id"]: c for c in json.loads(out)["checks"]}
    assert code == 0 and checks["origin"]["status"] == "ok" and env.url in checks["origin"]["message"]
    with Store.open(tmp_path / "store.db") as store:
        claim_store_origin(store, "https://gitlab.elsewhere.example", accept=True)
    code, out, _ = run(capsys)
    assert code == 1 and "FAIL  origin" in out and "https://gitlab.elsewhere.example" in out
    assert "--accept-origin" in out and env.token not in out


def test_expiring_token_warns_and_strict_fails(env: SimulatedGitLab, capsys: pytest.CaptureFixture[str]) -> None:
    soon = date.today() + timedelta(days=3)
    env.personal_tokens[env.token]["expires_at"] = soon.isoformat()
    code, out, _ = run(capsys, "--project", env.project_path)
    assert code == 0 and f"WARN  expiry      the token expires on {soon} (in 3 days)" in out
    assert "fix: rotate it before then and update GITLAB_TOKEN" in out
    assert run(capsys, "--project", env.project_path, "--strict")[0] == 1


def test_expired_token_and_missing_scopes_fail_with_a_fix(
    env: SimulatedGitLab, capsys: pytest.CaptureFixture[str]
) -> None:
    env.personal_tokens[env.token].update(expires_at=(date.today() - timedelta(days=1)).isoformat())
    env.personal_tokens[env.token].update(scopes=["read_user"])
    code, out, _ = run(capsys, "--project", env.project_path, "--format", "json")
    doc = json.loads(out)
    failed = {c["id"]: c for c in doc["checks"] if c["status"] == "fail"}
    assert code == 1 and doc["ok"] is False and set(failed) == {"scopes", "expiry"}
    assert "read_api" in failed["scopes"]["fix"] and failed["expiry"]["fix"]
    assert doc["gitlab"]["token_scopes"] == ["read_user"] and env.token not in out


def test_read_only_token_says_what_it_cannot_do(env: SimulatedGitLab, capsys: pytest.CaptureFixture[str]) -> None:
    assert env.readonly_token
    import os

    os.environ["GITLAB_TOKEN"] = env.readonly_token  # restored by the fixture's monkeypatch
    code, out, _ = run(capsys, "--project", env.project_path)
    assert code == 0 and "read_api (rebuild and retry need api)" in out


def test_no_token_is_not_a_rejected_token(
    env: SimulatedGitLab, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITLAB_TOKEN")
    code, out, _ = run(capsys)
    assert code == 1 and "requires a token (401 to a request sent without one)" in out
    assert "rejected" not in out and "GITLAB_TOKEN" in out


def test_rejected_token(
    env: SimulatedGitLab, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-not-a-valid-token-000")
    code, out, err = run(capsys)
    assert code == 1 and "rejected the token (401)" in out and "update GITLAB_TOKEN" in out
    assert "glpat-not-a-valid-token-000" not in out + err


def test_unreachable_gitlab(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("GITLAB_URL", f"http://127.0.0.1:{port}")
    code, out, _ = run(capsys)
    assert code == 1 and "FAIL  gitlab" in out and "cannot reach GitLab" in out and "fix:" in out


def test_missing_url_and_bad_config_are_reported_not_raised(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[gitlab\n")
    code, out, err = run(capsys, "--config", str(bad))
    assert code == 1 and err == ""
    assert "FAIL  config" in out and "invalid TOML" in out
    assert "FAIL  connection  no GitLab URL configured" in out and "fix: pass --url" in out


def test_tls_off_and_python_gitlab_origin_shown(
    small_sim: SimulatedGitLab, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = Path.home() / ".python-gitlab.cfg"
    url = small_sim.url.replace("http://", "https://")
    cfg.write_text(f"[global]\ndefault = sim\nssl_verify = false\n[sim]\nurl = {url}\nprivate_token = tok-123456\n")
    code, out, _ = run(capsys, "--db", str(tmp_path / "s.db"))
    assert f"{url} (from python-gitlab [sim] in {cfg})" in out
    assert f"private token (from python-gitlab [sim] private_token in {cfg})" in out
    assert "WARN  tls         certificate verification is off (from python-gitlab [sim] ssl_verify" in out
    assert "tok-123456" not in out
    assert code == 1  # the simulator speaks plain HTTP on that port: GitLab is unreachable over https


def test_no_color_and_dumb_terminals_get_plain_text(
    env: SimulatedGitLab, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cidash.commands.common import color_enabled

    class Tty:
        def isatty(self) -> bool:
            return True

    assert color_enabled(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not color_enabled(Tty())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not color_enabled(Tty())
    code, out, _ = run(capsys, "--project", env.project_path)
    assert code == 0 and "\x1b[" not in out


@pytest.mark.parametrize(("variable", "value"), [("NO_COLOR", "1"), ("TERM", "dumb")])
def test_printed_output_on_a_terminal_is_coloured_unless_told_not_to(
    variable: str, value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    argv = ("--db", str(tmp_path / "none.db"))  # no URL: a problem, found without any request
    assert run(capsys, *argv)[1].count("\x1b[31mFAIL") == 1
    monkeypatch.setenv(variable, value)
    code, out, _ = run(capsys, *argv)
    assert code == 1 and "FAIL  connection" in out and "\x1b[" not in out
