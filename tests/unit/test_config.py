from __future__ import annotations

from pathlib import Path

import pytest

from cidash.config import DEFAULT_CRITICAL_FILES, load_config, user_config_path
from cidash.errors import ConfigError


def test_defaults_when_no_file(tmp_path: Path) -> None:
    cfg = load_config(cwd=tmp_path)
    assert cfg.cache_key.files == DEFAULT_CRITICAL_FILES
    assert cfg.criteria.image_size_mb == 215.0
    assert cfg.sources == ()
    assert str(cfg.store_path()).startswith(str(Path.home()))


def test_project_file_overrides_user_file_key_by_key(tmp_path: Path) -> None:
    user = user_config_path()
    user.parent.mkdir(parents=True)
    user.write_text('[gitlab]\nurl = "https://user.example"\nprojects = ["a/b"]\n')
    (tmp_path / "cidash.toml").write_text('[gitlab]\nurl = "https://local.example"\n[criteria]\nmin_n = 3\n')
    cfg = load_config(cwd=tmp_path)
    assert cfg.gitlab.url == "https://local.example"
    assert cfg.gitlab.projects == ("a/b",)
    assert cfg.criteria.min_n == 3
    assert len(cfg.sources) == 2


def test_pyproject_tool_section(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.cidash.cache_key]\nfiles = ["a", "b"]\n')
    assert load_config(cwd=tmp_path).cache_key.files == ("a", "b")


def test_rebuild_variables_table(tmp_path: Path) -> None:
    (tmp_path / "cidash.toml").write_text('[actions]\nrebuild_variables = { FORCE = "1", X = "y" }\n')
    assert load_config(cwd=tmp_path).actions.rebuild_variables == (("FORCE", "1"), ("X", "y"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[gitlab]\nurll = 'x'\n", "unknown key 'urll'"),
        ("[nope]\na = 1\n", "unknown section [nope]"),
        ("[criteria]\nmin_n = 'ten'\n", "must be an integer"),
        ("[gitlab]\ntoken = 'secret-value'\n", "not read from config files"),
        ("[gitlab\n", "invalid TOML"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "cidash.toml").write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(cwd=tmp_path)
    assert needle in str(exc.value)
    assert "secret-value" not in str(exc.value)


def test_explicit_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", cwd=tmp_path)


def test_a_checkouts_store_url_gets_nothing_the_user_did_not_name(tmp_path: Path) -> None:
    """A pushed cidash.toml must not make a sync write what it reads from the user's GitLab to another database."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    evil = "postgresql://cidash:pw@collector.example/loot"
    (checkout / "cidash.toml").write_text(f'[store]\nurl = "{evil}"\n')
    config = load_config(cwd=checkout)
    with pytest.raises(ConfigError) as info:
        config.store_target(env={})
    text = info.value.one_line()
    assert "collector.example" in text and "cidash.toml" in text and "pw" not in text
    assert config.store_target(env={"CIDASH_DB": "/tmp/mine.db"}) == "/tmp/mine.db"
    assert config.store_target(env={"CI": "true"}) == evil  # a CI job runs the checkout's code anyway
    user = user_config_path()
    user.parent.mkdir(parents=True)
    user.write_text(f'[store]\nurl = "{evil}"\n')  # the user's own file names it: theirs
    assert load_config(cwd=checkout).store_target(env={}) == evil


def test_the_settings_a_file_sets_are_known_apart_from_defaults(tmp_path: Path) -> None:
    """A setting written in a file, even to its default value, is told apart from one left to its default (the
    in-flight ceiling means more when chosen: tests/unit/test_connection.py)."""
    assert load_config(cwd=tmp_path).keys_set == frozenset()
    (tmp_path / "cidash.toml").write_text("[gitlab]\nconcurrency = 32\n[criteria]\nmin_n = 3\n")
    cfg = load_config(cwd=tmp_path)
    assert cfg.gitlab.concurrency == 32  # the default's value, but set
    assert cfg.keys_set == {"gitlab.concurrency", "criteria.min_n"}
