"""Where URL, token and settings come from: python-gitlab's and glab's files with their own rules, CIDASH_*.

Every file lives under tmp_path: the conftest points HOME/XDG there, the system python-gitlab file at
tmp_path/etc and glab's repository lookup at tmp_path/repository.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

import cidash.connection as connection
from cidash.config import Config, GitLabSettings, load_config, store_path_source, user_config_paths
from cidash.connection import glab_token, python_gitlab_config_files, resolve_connection, url_from_host
from cidash.errors import ConfigError


def cfg(**gitlab: object) -> Config:
    return Config(gitlab=GitLabSettings(**gitlab), sources=("cidash.toml",))  # type: ignore[arg-type]


def home() -> Path:
    return Path.home()  # the conftest's tmp HOME


def env_home(**extra: str) -> dict[str, str]:
    return {"HOME": str(home()), **extra}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- python-gitlab ---------------------------------------------------------------------------------------------


def test_system_file_then_user_file_and_the_user_wins() -> None:
    system = connection.SYSTEM_PYTHON_GITLAB_CFG
    write(system, "[global]\ndefault = corp\n\n[corp]\nurl = https://system.example\nprivate_token = sys-token-1\n")
    assert python_gitlab_config_files(env_home()) == [system, home() / ".python-gitlab.cfg"]
    c = resolve_connection(cfg(projects=("a/b",)), env=env_home())
    assert c.url == "https://system.example" and c.token is not None and c.token.reveal() == "sys-token-1"
    write(home() / ".python-gitlab.cfg", "[corp]\nurl = https://user.example\nprivate_token = user-token-2\n")
    c = resolve_connection(cfg(projects=("a/b",)), env=env_home())
    assert c.url == "https://user.example" and c.token is not None and c.token.reveal() == "user-token-2"
    assert c.sources["url"] == f"python-gitlab [corp] in {home() / '.python-gitlab.cfg'}"


def test_python_gitlab_cfg_replaces_the_default_files(tmp_path: Path) -> None:
    write(home() / ".python-gitlab.cfg", "[global]\ndefault = a\n[a]\nurl = https://home.example\n")
    own = write(tmp_path / "own.cfg", "[global]\ndefault = b\n[b]\nurl = https://own.example\n")
    env = env_home(PYTHON_GITLAB_CFG=str(own))
    assert python_gitlab_config_files(env) == [own]
    assert resolve_connection(cfg(projects=("a/b",)), env=env).url == "https://own.example"
    with pytest.raises(ConfigError, match=r"PYTHON_GITLAB_CFG names .*missing\.cfg"):
        resolve_connection(cfg(projects=("a/b",)), env=env_home(PYTHON_GITLAB_CFG=str(tmp_path / "missing.cfg")))


def test_global_default_is_used_only_when_nothing_else_gives_a_url() -> None:
    write(home() / ".python-gitlab.cfg", "[global]\ndefault = w\n[w]\nurl = https://pg.example\n")
    c = resolve_connection(cfg(url="https://toml.example", projects=("a/b",)), env=env_home())
    assert c.url == "https://toml.example" and c.sources["url"].startswith("[gitlab] url")
    # No [global] default: nothing is taken from the file.
    write(home() / ".python-gitlab.cfg", "[w]\nurl = https://pg.example\n")
    with pytest.raises(ConfigError, match="no GitLab URL"):
        resolve_connection(cfg(projects=("a/b",)), env=env_home())
    write(home() / ".python-gitlab.cfg", "[global]\ndefault = gone\n")
    with pytest.raises(ConfigError, match=r"default names \[gone\]"):
        resolve_connection(cfg(projects=("a/b",)), env=env_home())


def test_a_section_token_never_goes_to_another_server() -> None:
    write(
        home() / ".python-gitlab.cfg",
        "[global]\ndefault = w\n[w]\nurl = https://pg.example\nprivate_token = pg-secret-123\n",
    )
    c = resolve_connection(cfg(projects=("a/b",)), env=env_home(GITLAB_URL="https://other.example"))
    assert c.url == "https://other.example" and c.token is None
    c = resolve_connection(cfg(projects=("a/b",)), env=env_home(GITLAB_URL="https://pg.example:443/"))
    assert c.token is not None and c.token.reveal() == "pg-secret-123"
    with pytest.raises(ConfigError, match="only sent to its own server"):
        resolve_connection(
            cfg(projects=("a/b",)), python_gitlab_section="w", env=env_home(GITLAB_URL="https://other.example")
        )


def test_ssl_verify_global_then_section_and_a_ca_bundle(tmp_path: Path) -> None:
    bundle = write(tmp_path / "corp-ca.pem", "-----BEGIN CERTIFICATE-----\n")
    ini = home() / ".python-gitlab.cfg"
    write(ini, f"[global]\ndefault = w\nssl_verify = {bundle}\ntimeout = 9\n[w]\nurl = https://pg.example\n")
    c = resolve_connection(cfg(projects=("a/b",)), env=env_home())
    assert c.verify_tls == str(bundle) and c.timeout == 9.0 and "ssl_verify" in c.sources["tls"]
    write(ini, f"[global]\ndefault = w\nssl_verify = {bundle}\n[w]\nurl = https://pg.example\nssl_verify = off\n")
    assert resolve_connection(cfg(projects=("a/b",)), env=env_home()).verify_tls is False
    write(ini, "[global]\ndefault = w\n[w]\nurl = https://pg.example\nssl_verify = ~/nowhere.pem\n")
    with pytest.raises(ConfigError, match=r"CA bundle .*nowhere\.pem.*does not exist"):
        resolve_connection(cfg(projects=("a/b",)), env=env_home())


def test_one_token_kind_per_section_and_percent_signs_like_python_gitlab() -> None:
    ini = home() / ".python-gitlab.cfg"
    write(ini, "[global]\ndefault = w\n[w]\nurl = https://pg.example\nprivate_token = a\njob_token = b\n")
    with pytest.raises(ConfigError, match="only one of private_token, oauth_token or job_token"):
        resolve_connection(cfg(projects=("a/b",)), env=env_home())
    write(ini, "[global]\ndefault = w\n[w]\nurl = https://pg.example\noauth_token = 100%%-oauth\n")
    c = resolve_connection(cfg(projects=("a/b",)), env=env_home())
    assert c.token is not None and c.token.reveal() == "100%-oauth" and c.token_kind == "oauth"


def _helper(tmp_path: Path, body: str) -> Path:
    script = write(tmp_path / "bin" / "token-helper", "#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_helper_token_runs_without_a_shell_and_only_when_needed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script = _helper(tmp_path, f'touch {marker}\nprintf "%s\\n" "helper-token-$1"\n')
    write(
        home() / ".python-gitlab.cfg",
        f"[global]\ndefault = w\n[w]\nurl = https://pg.example\nprivate_token = helper: {script} $WHICH;touch\n",
    )
    # An earlier source has a token: the helper is not run.
    c = resolve_connection(cfg(projects=("a/b",)), env=env_home(GITLAB_TOKEN="env-token-1"))
    assert c.sources["token"] == "GITLAB_TOKEN" and not marker.exists()
    c = resolve_connection(cfg(projects=("a/b",)), env=env_home(WHICH="x"))
    assert marker.exists()
    # `$WHICH` expanded, `;touch` passed on as part of the word (no shell ever sees it).
    assert c.token is not None and c.token.reveal() == "helper-token-x;touch"
    assert "helper token-helper" in c.describe() and "helper-token" not in c.describe()


def test_a_failing_helper_is_one_line_without_its_output(tmp_path: Path) -> None:
    script = _helper(tmp_path, 'echo "leaked-secret-on-stdout"\necho "leaked-secret-on-stderr" >&2\nexit 3\n')
    write(
        home() / ".python-gitlab.cfg",
        f"[global]\ndefault = w\n[w]\nurl = https://pg.example\njob_token = helper:{script}\n",
    )
    with pytest.raises(ConfigError) as info:
        resolve_connection(cfg(projects=("a/b",)), env=env_home())
    message = info.value.one_line()
    assert "failed (exit status 3)" in message and "\n" not in message and "leaked" not in message
    write(
        home() / ".python-gitlab.cfg",
        "[global]\ndefault = w\n[w]\nurl = https://pg.example\njob_token = helper: /no/such/helper\n",
    )
    with pytest.raises(ConfigError, match="helper /no/such/helper not found"):
        resolve_connection(cfg(projects=("a/b",)), env=env_home())


def test_cli_reports_a_failing_helper_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cidash.cli import main

    script = _helper(tmp_path, "echo secret-output\nexit 1\n")
    write(
        home() / ".python-gitlab.cfg",
        f"[global]\ndefault = w\n[w]\nurl = https://pg.example\nprivate_token = helper:{script}\n",
    )
    code = main(["sync", "--project", "a/b", "--db", str(tmp_path / "s.db")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "helper token-helper failed" in err and "secret-output" not in err


# -- glab ------------------------------------------------------------------------------------------------------


def test_gitlab_host_after_gitlab_url() -> None:
    assert url_from_host("gitlab.example.com") == "https://gitlab.example.com"
    assert url_from_host("gitlab.example.com:8443") == "https://gitlab.example.com:8443"
    assert url_from_host("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    c = resolve_connection(cfg(projects=("a/b",)), env=env_home(GITLAB_HOST="gl.example"))
    assert c.url == "https://gl.example" and c.sources["url"] == "GITLAB_HOST"
    c = resolve_connection(cfg(projects=("a/b",)), env=env_home(GL_HOST="gl2.example"))
    assert c.url == "https://gl2.example" and c.sources["url"] == "GL_HOST"
    c = resolve_connection(cfg(projects=("a/b",)), env=env_home(GITLAB_URL="https://u.example", GITLAB_HOST="h"))
    assert c.url == "https://u.example"


GLAB_YAML = """\
git_protocol: ssh
host: gitlab.com
hosts:
    gitlab.com:
        token: glpat-dotcom-000
        api_protocol: https
    gl.example:
        token: glpat-glab-111
        api_host: gl.example
        user: someone
    keyring.example:
        token: ""
    oauth.example:
        token: oauth-222
        is_oauth2: "true"
    127.0.0.1:8080:
        token: local-333
"""


def test_glab_token_for_the_host_in_use_as_a_fallback() -> None:
    path = write(home() / ".config" / "glab-cli" / "config.yml", GLAB_YAML)
    c = resolve_connection(cfg(projects=("a/b",)), env=env_home(GITLAB_HOST="gl.example"))
    assert c.token is not None and c.token.reveal() == "glpat-glab-111" and c.token_kind == "private"
    assert c.sources["token"] == f"glab config {path} (host gl.example)"
    assert "glpat-glab-111" not in c.describe() and str(path) in c.describe()
    # An earlier source wins; another host gets nothing; a keyring token (not in the file) is not there.
    c = resolve_connection(cfg(projects=("a/b",)), env=env_home(GITLAB_HOST="gl.example", GITLAB_TOKEN="e-1"))
    assert c.sources["token"] == "GITLAB_TOKEN"
    assert resolve_connection(cfg(projects=("a/b",)), env=env_home(GITLAB_HOST="x.example")).token is None
    assert resolve_connection(cfg(projects=("a/b",)), env=env_home(GITLAB_HOST="keyring.example")).token is None
    oauth = glab_token("https://oauth.example", env_home())
    assert oauth is not None and oauth.kind == "oauth"
    local = glab_token("http://127.0.0.1:8080", env_home())
    assert local is not None and local.token == "local-333"
    assert glab_token("http://127.0.0.1:9999", env_home()) is None


def test_glab_config_dir_and_the_repository_config_wins(tmp_path: Path) -> None:
    write(tmp_path / "glabdir" / "config.yml", "hosts:\n  gl.example:\n    token: from-glab-config-dir\n")
    env = env_home(GLAB_CONFIG_DIR=str(tmp_path / "glabdir"))
    found = glab_token("https://gl.example", env)
    assert found is not None and found.token == "from-glab-config-dir"
    repo = connection.GLAB_REPOSITORY
    assert repo is not None
    (repo / "sub").mkdir(parents=True)
    write(repo / ".git" / "glab-cli" / "config.yml", "hosts:\n  gl.example:\n    token: from-repository\n")
    found = glab_token("https://gl.example", env, repository=repo / "sub")
    assert found is not None and found.token == "from-repository"
    write(repo / ".git" / "glab-cli" / "config.yml", "hosts: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        glab_token("https://gl.example", env, repository=repo)


# -- cidash's own ---------------------------------------------------------------------------------------------


def test_cidash_config_and_cidash_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = write(tmp_path / "elsewhere.toml", '[gitlab]\nurl = "https://from-env-config.example"\n')
    config = load_config(cwd=tmp_path, env={"CIDASH_CONFIG": str(own)})
    assert config.gitlab.url == "https://from-env-config.example" and config.sources[-1] == str(own)
    with pytest.raises(ConfigError, match=r"CIDASH_CONFIG file .*nope\.toml does not exist"):
        load_config(cwd=tmp_path, env={"CIDASH_CONFIG": str(tmp_path / "nope.toml")})
    # --config beats CIDASH_CONFIG.
    flag = write(tmp_path / "flag.toml", '[gitlab]\nurl = "https://flag.example"\n')
    assert load_config(flag, cwd=tmp_path, env={"CIDASH_CONFIG": str(own)}).gitlab.url == "https://flag.example"
    path, origin = store_path_source(Config(), {"CIDASH_DB": str(tmp_path / "x.db")})
    assert path == tmp_path / "x.db" and origin == "CIDASH_DB"
    assert store_path_source(Config(), {})[1] == "default"
    monkeypatch.setenv("CIDASH_DB", str(tmp_path / "env.db"))
    assert Config().store_path() == tmp_path / "env.db"


def test_cidash_db_reaches_the_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cidash.cli import main

    db = tmp_path / "env.db"
    monkeypatch.setenv("CIDASH_DB", str(db))
    assert main(["prune", "--before", "90d"]) == 0
    assert db.is_file() and "deleted nothing" in capsys.readouterr().out
    # --db still wins.
    other = tmp_path / "flag.db"
    assert main(["prune", "--before", "90d", "--db", str(other)]) == 0 and other.is_file()


def test_macos_reads_application_support_then_dot_config() -> None:
    env = {"HOME": "/Users/me"}
    assert user_config_paths(env, platform="darwin") == [
        Path("/Users/me/Library/Application Support/cidash/cidash.toml"),
        Path("/Users/me/.config/cidash/cidash.toml"),
    ]
    linux = user_config_paths(env_home(), platform="linux")
    assert linux == [home() / ".config" / "cidash" / "cidash.toml"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths")
def test_macos_dot_config_file_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cidash.config.sys.platform", "darwin")
    write(home() / ".config" / "cidash" / "cidash.toml", '[gitlab]\nurl = "https://mac.example"\n')
    assert load_config(cwd=tmp_path).gitlab.url == "https://mac.example"


def test_sync_verbose_says_where_url_and_token_came_from(
    small_sim: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cidash.cli import main
    from cidash.sim import SimulatedGitLab

    assert isinstance(small_sim, SimulatedGitLab)
    host = small_sim.url.removeprefix("http://")
    path = write(home() / ".config" / "glab-cli" / "config.yml", f"hosts:\n  {host}:\n    token: {small_sim.token}\n")
    monkeypatch.setenv("GITLAB_HOST", small_sim.url)
    argv = ["sync", "--verbose", "--project", small_sim.project_path, "--db", str(tmp_path / "s.db"), "--no-logs"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert f"url {small_sim.url} (from GITLAB_HOST)" in err
    assert f"private token (from glab config {path} (host {host}))" in err
    assert small_sim.token not in err
    # the in-flight ceiling, and the default's smaller one for a server that publishes no rate limit
    assert "up to 32 in flight (from 16 while GitLab sends no RateLimit headers) over up to 8 projects" in err
    assert main([*argv, "--concurrency", "24"]) == 0
    assert "up to 24 in flight over up to 8 projects" in capsys.readouterr().err
