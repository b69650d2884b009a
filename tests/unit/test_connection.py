"""Connection resolution: flags, environment, CI variables, config, python-gitlab sections; tokens kept secret."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from cidash.config import Config, GitLabSettings
from cidash.connection import Connection, Secret, resolve_connection
from cidash.errors import CidashError, ConfigError


def cfg(**gitlab: object) -> Config:
    return Config(gitlab=GitLabSettings(**gitlab), sources=("cidash.toml",))  # type: ignore[arg-type]


def test_flags_beat_env_beat_config(tmp_path: Path) -> None:
    token_file = tmp_path / "tok"
    token_file.write_text("\n  glpat-fromfile-0123456789  \n")
    env = {"GITLAB_URL": "https://env.example", "GITLAB_TOKEN": "glpat-fromenv-0123456789"}
    c = resolve_connection(cfg(url="https://cfg.example", projects=("a/b",)), env=env)
    assert c.url == "https://env.example" and c.token == Secret("glpat-fromenv-0123456789")
    assert c.projects == ("a/b",) and c.sources["url"] == "GITLAB_URL"
    c = resolve_connection(
        cfg(url="https://cfg.example"),
        url="https://flag.example/",
        projects=["x/y"],
        token_file=str(token_file),
        env=env,
    )
    assert c.url == "https://flag.example" and c.token is not None
    assert c.token.reveal() == "glpat-fromfile-0123456789" and c.projects == ("x/y",)
    assert c.auth_headers() == {"PRIVATE-TOKEN": "glpat-fromfile-0123456789"}


def test_ci_job_token_only_inside_ci() -> None:
    env = {"CI_SERVER_URL": "https://ci.example", "CI_JOB_TOKEN": "jobtok-123456", "CI_PROJECT_PATH": "g/p"}
    with pytest.raises(ConfigError, match="no GitLab URL"):
        resolve_connection(cfg(), env=env)
    c = resolve_connection(cfg(), env={**env, "CI": "true"})
    assert c.url == "https://ci.example" and c.token_kind == "job" and c.projects == ("g/p",)
    assert c.auth_headers() == {"JOB-TOKEN": "jobtok-123456"}


def test_python_gitlab_section(tmp_path: Path) -> None:
    ini = tmp_path / "pg.cfg"
    ini.write_text(
        "[global]\ndefault = work\n\n[work]\nurl = https://pg.example\nprivate_token = glpat-pg-0123456789\n"
        "ssl_verify = false\ntimeout = 7\n\n[ci]\nurl = https://pg2.example\njob_token = jt-0123456789\n"
    )
    env = {"PYTHON_GITLAB_CFG": str(ini)}
    c = resolve_connection(cfg(python_gitlab_section="work", projects=("a/b",)), env=env)
    assert c.url == "https://pg.example" and c.verify_tls is False and c.timeout == 7.0
    assert c.token is not None and c.token.reveal() == "glpat-pg-0123456789"
    assert c.sources["token"] == "python-gitlab [work]"
    c = resolve_connection(cfg(projects=("a/b",)), python_gitlab_section="ci", env=env)
    assert c.token_kind == "job"
    with pytest.raises(ConfigError, match="no section"):
        resolve_connection(cfg(projects=("a/b",)), python_gitlab_section="nope", env=env)


def test_errors_are_clear(tmp_path: Path) -> None:
    env = {"GITLAB_URL": "https://x.example"}
    with pytest.raises(ConfigError, match="no project"):
        resolve_connection(cfg(), env=env)
    assert resolve_connection(cfg(), env=env, require_project=False).projects == ()
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_connection(cfg(projects=("a",)), token_file=str(tmp_path / "missing"), env=env)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        resolve_connection(cfg(projects=("a",)), token_file=str(tmp_path / "empty"), env=env)
    with pytest.raises(ConfigError, match="http"):
        resolve_connection(cfg(projects=("a",)), url="gitlab.example.com", env=env)


def test_token_never_shows() -> None:
    token = "glpat-supersecret-0123456789"
    c = resolve_connection(cfg(projects=("a/b",)), env={"GITLAB_URL": "https://x.example", "GITLAB_TOKEN": token})
    for text in (repr(c), str(c), c.describe(), repr(c.token), str(c.token), f"{c.token}"):
        assert token not in text
    with pytest.raises(TypeError):
        pickle.dumps(c.token)
    # Registered: any error message that happens to contain it is redacted.
    assert token not in CidashError(f"failed with header {token}").one_line()


def test_connection_group_only() -> None:
    c = resolve_connection(cfg(), group="platform", env={"GITLAB_URL": "https://x.example"})
    assert c.group == "platform" and c.projects == () and isinstance(c, Connection)


@pytest.mark.parametrize(
    "url",
    [
        "https://me:hunter2-secret@gitlab.example.com",
        "https://hunter2-secret@gitlab.example.com/gitlab/",
        "http://me:hunter2-secret@127.0.0.1:99999",  # refused for the password before the port is looked at
        "https://me:hunter2-secret@[::1",
        "ftp://me:hunter2-secret@gitlab.example.com",
        "me:hunter2-secret@gitlab.example.com",
    ],
)
@pytest.mark.parametrize("where", ["--url", "GITLAB_URL", "[gitlab] url", "python-gitlab"])
def test_a_url_with_a_password_is_refused_without_showing_it(url: str, where: str, tmp_path: Path) -> None:
    env: dict[str, str] = {"GITLAB_TOKEN": "glpat-0123456789abcdef"}
    config = cfg(projects=("a/b",))
    flag: str | None = None
    if where == "--url":
        flag = url
    elif where == "GITLAB_URL":
        env["GITLAB_URL"] = url
    elif where == "[gitlab] url":
        config = cfg(projects=("a/b",), url=url)
    else:
        ini = tmp_path / "pg.cfg"
        ini.write_text(f"[global]\ndefault = work\n\n[work]\nurl = {url}\n")
        env["PYTHON_GITLAB_CFG"] = str(ini)
    with pytest.raises(ConfigError) as info:
        resolve_connection(config, url=flag, env=env)
    text = info.value.one_line()
    assert "hunter2" not in text
    assert "gitlab.example.com" in text or "127.0.0.1" in text or "[::1" in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@h.example/x@y?z=@#@", "https://h.example/x@y?z=@#@"),
        ("https://h.example/@group", "https://h.example/@group"),
        ("https://a@b@h.example:8443", "https://h.example:8443"),
        ("u:p@h.example", "h.example"),
        ("https://h.example", "https://h.example"),
    ],
)
def test_url_without_userinfo_leaves_out_only_what_precedes_the_host(url: str, shown: str) -> None:
    from cidash.config import url_without_userinfo

    assert url_without_userinfo(url) == shown


@pytest.mark.parametrize(
    "token",
    [
        "glpat-topsecretpart\r\nX-Injected: 1",
        "glpat-topsecretpart\u200b",  # a zero-width space, pasted with the token
        "glpat-top\u20acsecretpart",
        "glpat-topsecret part",
        "glpat-topsecret\tpart",
        "glpat-topsecret\x7fpart",
        "glpat-topsecret\x00part",
    ],
)
@pytest.mark.parametrize("where", ["GITLAB_TOKEN", "CI_JOB_TOKEN", "--token-file"])
def test_a_token_no_header_can_carry_is_refused_without_showing_it(token: str, where: str, tmp_path: Path) -> None:
    env = {"GITLAB_URL": "https://gitlab.example.com"}
    token_file: str | None = None
    if where == "--token-file":
        path = tmp_path / "token"
        path.write_text(token.replace("\r\n", "\t"), encoding="utf-8")  # a file's first line: no line break
        token_file = str(path)
    elif where == "CI_JOB_TOKEN":
        env.update(CI="true", CI_JOB_TOKEN=token)
    else:
        env["GITLAB_TOKEN"] = token
    with pytest.raises(ConfigError) as info:
        resolve_connection(cfg(projects=("a/b",)), token_file=token_file, env=env)
    text = info.value.one_line()
    assert "secret" not in text and "glpat" not in text
    assert "character" in text


def test_a_token_of_visible_ascii_is_taken_as_it_is() -> None:
    token = "glpat-AZaz09_-.~!+/=abc"
    c = resolve_connection(cfg(projects=("a/b",)), env={"GITLAB_URL": "https://g.example", "GITLAB_TOKEN": token})
    assert c.token is not None and c.token.reveal() == token


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"glpat-abc_DEF\n", "glpat-abc_DEF"),
        (b"\xef\xbb\xbfglpat-abc_DEF\r\n", "glpat-abc_DEF"),  # UTF-8 with a byte-order mark (Notepad)
        ("glpat-abc_DEF\r\n".encode("utf-16"), "glpat-abc_DEF"),  # PowerShell 5's `echo $t > file`
        ("\ufeffglpat-abc_DEF\n".encode("utf-16-be"), "glpat-abc_DEF"),
        (b"\n  \nglpat-abc_DEF\n", "glpat-abc_DEF"),
    ],
)
def test_token_file_encodings_a_user_meets(data: bytes, expected: str, tmp_path: Path) -> None:
    from cidash.connection import read_token_file

    path = tmp_path / "token"
    path.write_bytes(data)
    assert read_token_file(path) == expected


@pytest.mark.parametrize("data", [b"\xffglpat-abc\n", b"glpat-\xc3(abc\n", b"\x80\x81"])
def test_a_token_file_that_is_not_text_is_one_line(data: bytes, tmp_path: Path) -> None:
    from cidash.connection import read_token_file

    path = tmp_path / "token"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        read_token_file(path)


def _checkout(tmp_path: Path, project_toml: str, user_toml: str | None = None) -> Config:
    """A working directory whose ``cidash.toml`` anyone who can push wrote, and the user's own file if given."""
    from cidash.config import load_config, user_config_path

    if user_toml is not None:
        user = user_config_path()
        user.parent.mkdir(parents=True, exist_ok=True)
        user.write_text(user_toml)
    checkout = tmp_path / "checkout"
    checkout.mkdir(parents=True)
    (checkout / "cidash.toml").write_text(project_toml)
    return load_config(cwd=checkout)


EVIL = '[gitlab]\nurl = "https://collector.example"\nprojects = ["a/b"]\n'


def test_a_checkouts_url_gets_no_token_the_user_did_not_give_it(tmp_path: Path) -> None:
    config = _checkout(tmp_path, EVIL)
    with pytest.raises(ConfigError) as info:
        resolve_connection(config, env={"GITLAB_TOKEN": "glpat-users-own-0123"})
    text = info.value.one_line()
    assert "cidash.toml" in text and "https://collector.example" in text and "GITLAB_TOKEN" in text
    assert "glpat" not in text
    token_file = tmp_path / "secret-line"
    token_file.write_text("glpat-users-own-0123\n")
    with pytest.raises(ConfigError):
        resolve_connection(config, token_file=str(token_file), env={})
    project_chosen_file = _checkout(tmp_path / "b", EVIL + f'token_file = "{token_file}"\n')
    with pytest.raises(ConfigError):  # a file the checkout chose, sent to a server the checkout chose
        resolve_connection(project_chosen_file, env={})


def test_a_checkouts_url_is_used_once_the_user_names_it(tmp_path: Path) -> None:
    env = {"GITLAB_TOKEN": "glpat-users-own-0123"}
    config = _checkout(tmp_path, EVIL, user_toml='[gitlab]\nurl = "https://collector.example:443/"\n')
    assert resolve_connection(config, env=env).url == "https://collector.example"
    config = _checkout(tmp_path / "b", EVIL)
    assert resolve_connection(config, env={**env, "GITLAB_URL": "https://collector.example"}).token is not None
    assert resolve_connection(config, url="https://collector.example", env=env).token is not None
    assert resolve_connection(config, env={}).token is None  # no token: nothing to protect
    assert resolve_connection(config, env={"CI": "true", "CI_JOB_TOKEN": "jt-0123456789"}).token_kind == "job"


def test_a_checkout_cannot_move_the_users_gitlab_elsewhere(tmp_path: Path) -> None:
    config = _checkout(tmp_path, EVIL, user_toml='[gitlab]\nurl = "https://gitlab.mine.example"\n')
    with pytest.raises(ConfigError, match=r"collector\.example"):
        resolve_connection(config, env={"GITLAB_TOKEN": "glpat-users-own-0123"})


def test_a_chosen_concurrency_is_known_from_the_default() -> None:
    """``--concurrency`` or ``[gitlab] concurrency`` in a file is the user's choice; the built-in 32 is not (the
    rate policy then keeps to 16 in flight while GitLab publishes no limit: tests/integration/test_rate_policy.py)."""
    env = {"GITLAB_URL": "https://gitlab.example", "GITLAB_TOKEN": "glpat-0123456789abcdef"}
    default = resolve_connection(cfg(projects=("a/b",)), env=env)
    assert (default.concurrency, default.concurrency_chosen, default.sources["concurrency"]) == (32, False, "default")
    flag = resolve_connection(cfg(projects=("a/b",)), concurrency=24, env=env)
    assert (flag.concurrency, flag.concurrency_chosen, flag.sources["concurrency"]) == (24, True, "--concurrency")
    in_file = Config(
        gitlab=GitLabSettings(projects=("a/b",), concurrency=32), keys_set=frozenset({"gitlab.concurrency"})
    )
    chosen = resolve_connection(in_file, env=env)
    assert (chosen.concurrency, chosen.concurrency_chosen, chosen.sources["concurrency"]) == (
        32,
        True,
        "[gitlab] concurrency",
    )
