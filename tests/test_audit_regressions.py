"""Regressions found by the end-to-end audit of the README and every command's --help."""

from __future__ import annotations

from pathlib import Path

import pytest

from cidash.cli import main
from cidash.compare import compare
from cidash.config import Config
from cidash.specs import parse_spec
from metrics_factories import migration_story


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
