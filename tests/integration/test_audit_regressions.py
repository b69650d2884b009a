"""Regressions found by the end-to-end audit of the README and every command's --help."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cidash.cli import main
from cidash.compare import compare
from cidash.config import Config
from cidash.specs import parse_spec
from metrics_factories import migration_story
from paths import REPO_ROOT


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_config_that_is_a_directory_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "check", "--config", str(tmp_path))
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert f"config file {tmp_path} is a directory" in err


@pytest.mark.parametrize("command", ["check", "export", "prune"])
def test_store_that_is_a_directory_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    extra = ["--before", "90d"] if command == "prune" else []
    code, _, err = _run(capsys, command, "--db", str(tmp_path), *extra)
    assert code == 2
    assert err.count("\n") == 1
    assert f"store {tmp_path} is a directory" in err
    assert "does not exist" not in err


def test_keep_raw_logs_is_refused_with_a_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The key used to be accepted and silently ignored: cidash never keeps raw logs.
    cfg = tmp_path / "cidash.toml"
    cfg.write_text("[sync]\nkeep_raw_logs = true\n")
    code, _, err = _run(capsys, "check", "--config", str(cfg), "--db", str(tmp_path / "none.db"))
    assert code == 2
    assert "[sync] keep_raw_logs is no longer supported" in err
    assert err.count("\n") == 1


def test_keep_raw_logs_is_not_a_setting() -> None:
    import dataclasses

    from cidash.config import SyncSettings

    assert "keep_raw_logs" not in {f.name for f in dataclasses.fields(SyncSettings)}


def test_compare_footnote_matches_the_verdict_rules() -> None:
    # The footnote said "Verdicts need n >= 10 on both sides", yet value rows judge the candidate alone: an empty
    # baseline still gives the image-size row a verdict. The footnote must say what the rows do.
    ds = migration_story().dataset()
    result = compare(ds, parse_spec("..2020-01-01"), parse_spec("2026-11-11.."), Config(), resamples=100)
    rows = {r.id: r for r in result.rows}
    assert rows["image_size"].n_baseline == 0 and rows["image_size"].verdict == "PASS"
    assert rows["startup"].verdict == "not enough data"
    assert "on both sides." not in result.methods()
    assert "on the candidate" in result.methods()


def test_prune_bad_date_names_its_own_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "prune", "--db", str(tmp_path / "x.db"), "--before", "nope")
    assert code == 2
    assert "--before 'nope'" in err
    assert "--since" not in err


def test_config_that_is_not_a_regular_file_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "check", "--config", "/dev/null")
    assert code == 2
    assert "config file /dev/null is not a regular file" in err


def test_headless_demo_stops_at_ctrl_c(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Ctrl-C during the demo's sync used to be swallowed: check and compare ran anyway and the demo exited 0.
    import cidash.cli
    from cidash.commands import demo as demo_command
    from cidash.sim import Scenario
    from cidash.sim.demo import demo_environment

    calls: list[str] = []

    def interrupted(argv: list[str]) -> int:
        calls.append(argv[0])
        return 130

    monkeypatch.setattr(cidash.cli, "main", interrupted)
    with demo_environment(Scenario(days=2, pipelines_per_day=2, migration_day=1)) as env:
        code = demo_command.run_headless(env)
    assert code == 130
    assert calls == ["sync"]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from cidash.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_shared_options_have_one_wording_across_commands() -> None:
    # --project differs on purpose: repeatable where cidash talks to GitLab, one project of the store elsewhere.
    seen: dict[str, set[str]] = {}
    for name, sub in _subparsers().items():
        for action in sub._actions:
            for flag in (
                "--db",
                "--config",
                "--url",
                "--token-file",
                "--group",
                "--python-gitlab-section",
            ):
                if flag in action.option_strings:
                    seen.setdefault(flag, set()).add(f"{action.metavar}: {action.help}")
        help_text = (sub.description or "") + (sub.epilog or "")  # exit codes and examples follow the options
        assert "Exit codes:" not in help_text, name  # one heading style: "exit codes:"
        assert "exit codes" in help_text, name
    assert seen["--config"] and seen["--db"]
    for flag, variants in seen.items():
        assert len(variants) == 1, (flag, variants)


def test_every_option_metavar_matches_its_description() -> None:
    # The descriptions say "--port P", "--seed S", ...: the generated option list must use the same names.
    for name, sub in _subparsers().items():
        text = sub.description or ""
        for action in sub._actions:
            for flag in action.option_strings:
                if action.metavar and f"{flag} " in text and flag.startswith("--"):
                    shown = [
                        line.split(flag + " ", 1)[1].split()[0] for line in text.splitlines() if f"  {flag} " in line
                    ]
                    for word in shown:
                        if word.isupper() or len(word) == 1:
                            assert word == action.metavar, (name, flag, word, action.metavar)


def _readme() -> str:
    return (REPO_ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")


def test_readme_config_reference_parses_and_names_every_key() -> None:
    import dataclasses
    import tomllib

    from cidash.config import Config, config_from_dict

    text = _readme()
    section = text
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    data = tomllib.loads(block)
    config_from_dict(data)  # raises on an unknown or mistyped key
    for field in dataclasses.fields(Config):
        section = getattr(Config(), field.name)
        if not dataclasses.is_dataclass(section):  # where the settings came from, not a section
            continue
        for key in dataclasses.fields(section):
            assert f"{key.name} =" in block, f"[{field.name}] {key.name} is not in the README's config reference"


def test_readme_quick_start_config_parses() -> None:
    import tomllib

    from cidash.config import config_from_dict

    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    quick = text[text.index("## Quick start") : text.index("## The manual")]
    block = quick.split("<<'TOML'\n", 1)[1].split("TOML\n", 1)[0]
    config = config_from_dict(tomllib.loads(block))
    assert config.gitlab.projects == ("platform/app",)
    assert config.gitlab.token_file is not None  # the token is kept in a file, never in the config


def test_every_command_the_readme_shows_exists_with_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    """The front door's commands (in ```sh blocks and `code` spans) are subcommands with the options shown."""
    import re

    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    spans = re.findall(r"```sh\n(.*?)```", text, re.DOTALL) + re.findall(r"`([^`\n]+)`", text)
    shown: dict[str, set[str]] = {}
    for span in spans:
        for m in re.finditer(r"(?:^|[\s(;])cidash ([a-z][a-z-]*)((?: --[a-z][a-z-]*)*)", span, re.MULTILINE):
            shown.setdefault(m.group(1), set()).update(m.group(2).split())
    assert {"demo", "sync", "check", "lint", "key", "trace"} <= set(shown), shown
    for command, options in sorted(shown.items()):
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        out = capsys.readouterr().out
        assert exit_.value.code == 0, command
        assert [o for o in sorted(options) if o not in out] == [], command


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [("--max-rps", "-1", "max_rps must be 0 (no ceiling) or more"), ("--concurrency", "0", "concurrency must be")],
)
def test_sync_rejects_nonsense_rates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    # Both used to be accepted silently (a negative ceiling meant none; 0 workers meant 1): no request is made.
    token = tmp_path / "token"
    token.write_text("glpat-0123456789abcdef\n")
    argv = ["sync", "--url", "http://127.0.0.1:9", "--project", "p/q", "--token-file", str(token), flag, value]
    code, out, err = _run(capsys, *argv, "--db", str(tmp_path / "s.db"))
    assert code == 2
    assert message in err
    assert "cannot reach" not in err and "glpat" not in err + out


def test_key_gitlab_ci_file_directory_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "key", "--gitlab", "--ci-file", str(tmp_path))
    assert code == 2
    assert f"--ci-file {tmp_path} is a directory" in err
    assert "git checkout" not in err


def test_missing_ci_file_hint_fits_every_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `cidash key --gitlab --ci-file missing.yml` used to suggest running `cidash lint`.
    code, _, err = _run(capsys, "lint", str(tmp_path / "missing.yml"))
    assert code == 2
    assert "does not exist" in err
    assert "cidash lint" not in err


def test_readers_say_a_foreign_sqlite_file_is_not_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `cidash check` used to say "old schema (version 0), run 'cidash sync'", and sync then refused the file.
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    code, _, err = _run(capsys, "check", "--db", str(other))
    assert code == 2
    assert "is an SQLite file but not a cidash store" in err
    empty = tmp_path / "empty.db"
    empty.touch()
    code, _, err = _run(capsys, "export", "--db", str(empty))
    assert code == 2
    assert f"store {empty} is empty" in err


def test_every_option_has_a_help_line() -> None:
    for name, sub in _subparsers().items():
        for action in sub._actions:
            if action.option_strings and action.help is None:
                raise AssertionError(f"cidash {name} {action.option_strings[0]} has no help text")


def test_criteria_candidate_without_baseline_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Used to be accepted and silently ignored: the criteria only use the SPECs when both are set.
    cfg = tmp_path / "cidash.toml"
    cfg.write_text('[criteria]\ncandidate = "..2026-11-11,ref:main"\n')
    code, _, err = _run(capsys, "check", "--config", str(cfg), "--db", str(tmp_path / "none.db"))
    assert code == 2
    assert "[criteria] candidate is set without baseline" in err
    cfg.write_text('[criteria]\nbaseline = "..2026-10-31"\ncandidate = "2026-11-01.."\n')
    code, _, err = _run(capsys, "check", "--config", str(cfg), "--db", str(tmp_path / "none.db"))
    assert code == 2 and "does not exist" in err  # the config is fine; the store is what is missing
