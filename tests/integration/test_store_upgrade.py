"""A store written by an older cidash: the commands that only read it (check, compare, export) upgrade it once,
saying so, instead of refusing it until a sync; doctor warns; a file the user may not write is left alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import store_support
from cidash.cli import main
from cidash.sim import SimulatedGitLab
from cidash.store import SCHEMA_VERSION, Store
from cidash.sync import sync_project
from test_sync import NOW, make_client, options

NOW_TEXT = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def current(small_sim: SimulatedGitLab, tmp_path: Path) -> Path:
    path = tmp_path / "current.db"
    with make_client(small_sim) as client, Store.open(path) as store:
        sync_project(client, store, small_sim.project_path, options=options(), now=NOW)
    return path


def as_version_8(current: Path, path: Path) -> Path:
    """A copy of ``current`` as cidash at schema version 8 left it."""
    shutil.copy(current, path)
    return store_support.as_version_8(path)


def check_json(db: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object], str]:
    code = main(["check", "--json", "--now", NOW_TEXT, "--db", str(db)])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_check_upgrades_an_older_store_once_and_reads_it_as_the_current_one(
    current: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert SCHEMA_VERSION == 11  # the copy below is what version 8 left; a new migration needs a new copy
    old = as_version_8(current, tmp_path / "old.db")
    assert Store.older_schema(old) == 8 and Store.older_schema(current) is None
    code, report, err = check_json(old, capsys)
    assert code in (0, 1)
    assert f"upgrading the store {old} from schema version 8 to {SCHEMA_VERSION}" in err
    assert Store.older_schema(old) is None
    with Store.open(old, readonly=True) as store:
        assert store.schema_version == SCHEMA_VERSION
    want_code, want, _ = check_json(current, capsys)
    assert (code, report) == (want_code, want)
    again_code, again, err = check_json(old, capsys)
    assert (again_code, again) == (want_code, want) and "upgrading" not in err  # once


def test_compare_and_export_upgrade_it_too(current: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = as_version_8(current, tmp_path / "old.db")
    out = tmp_path / "export.json"
    assert main(["export", "--format", "json", "--now", NOW_TEXT, "--db", str(old), "--output", str(out)]) == 0
    assert "upgrading the store" in capsys.readouterr().err
    old = as_version_8(current, tmp_path / "old2.db")
    spec = f"..{NOW.date().isoformat()}"
    code = main(["compare", "--json", "--baseline", spec, "--candidate", spec, "--db", str(old)])
    assert code in (0, 1) and "upgrading the store" in capsys.readouterr().err
    assert Store.older_schema(old) is None


def test_a_store_the_user_may_not_write_is_left_alone_and_the_error_says_how_to_upgrade(
    current: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = as_version_8(current, tmp_path / "old.db")
    monkeypatch.setattr("os.access", lambda *a, **k: False)  # as root, chmod would not stop the write
    assert main(["check", "--now", NOW_TEXT, "--db", str(old)]) == 2
    err = capsys.readouterr().err
    assert "has an old schema (version 8)" in err and "as a user who can write the file" in err
    assert "upgrading" not in err and len(err.strip().splitlines()) == 1
    assert Store.older_schema(old) == 8


def test_doctor_warns_about_an_older_store_without_upgrading_it(
    current: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = as_version_8(current, tmp_path / "old.db")
    main(["doctor", "--db", str(old)])  # no GitLab configured: those lines fail, the store line is ours
    out = capsys.readouterr().out
    assert f"schema version 8, older than this cidash's {SCHEMA_VERSION}" in out
    assert "the next cidash command that opens it upgrades it" in out
    assert Store.older_schema(old) == 8
