"""The combined checksum (against the real sha256sum binary) and GitLab's digest join (the key rules themselves:
test_cachekey_facts.py)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cidash.cachekey import (
    check_file,
    checksum_lines,
    digest_of,
    escape_name,
    parse_checksum_lines,
    unescape_name,
    write_atomic,
)
from cidash.errors import InputError

SHA256SUM = shutil.which("sha256sum")
needs_sha256sum = pytest.mark.skipif(SHA256SUM is None, reason="sha256sum binary not installed")

NAMES = ["go.mod", "with space.txt", "back\\slash", "new\nline", "cr\rname", "both\\and\nnew", "sub/dir/ünï.toml"]


def _make(root: Path, names: list[str]) -> None:
    for i, name in enumerate(names):
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f"content {i}\n".encode() * (i + 1))


@needs_sha256sum
def test_checksum_lines_byte_identical_to_sha256sum(tmp_path: Path) -> None:
    _make(tmp_path, NAMES)
    real = subprocess.run([SHA256SUM or "sha256sum", *NAMES], cwd=tmp_path, capture_output=True, check=True).stdout
    ours = checksum_lines(NAMES, tmp_path).encode("utf-8", "surrogateescape")
    assert ours == real
    assert ours.count(b"\n") == len(NAMES)  # escaped newlines stay on one line each
    assert b"\\" + hashlib.sha256((tmp_path / "back\\slash").read_bytes()).hexdigest().encode() in ours


@needs_sha256sum
def test_order_is_the_order_given(tmp_path: Path) -> None:
    _make(tmp_path, ["b", "a"])
    real = subprocess.run([SHA256SUM or "sha256sum", "b", "a"], cwd=tmp_path, capture_output=True, check=True)
    assert checksum_lines(["b", "a"], tmp_path) == real.stdout.decode()


def test_missing_file_names_it(tmp_path: Path) -> None:
    _make(tmp_path, ["go.mod"])
    with pytest.raises(InputError, match=r"'go\.sum' does not exist"):
        checksum_lines(["go.mod", "go.sum"], tmp_path)
    (tmp_path / "adir").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        checksum_lines(["adir"], tmp_path)


@given(st.text(alphabet=st.sampled_from(["a", " ", "\\", "\n", "\r", "n", "r", "é"]), min_size=1, max_size=12))
def test_escape_round_trip(name: str) -> None:
    escaped, flagged = escape_name(name)
    assert "\n" not in escaped and "\r" not in escaped
    assert flagged == any(c in name for c in "\\\n\r")
    assert (unescape_name(escaped) if flagged else escaped) == name
    line = ("\\" if flagged else "") + "0" * 64 + "  " + escaped
    assert parse_checksum_lines(line + "\n") == {name: "0" * 64}


def test_check_file_reports_changed_added_removed(tmp_path: Path) -> None:
    _make(tmp_path, ["go.mod", "go.sum", "old.txt"])
    key = tmp_path / ".cache-key"
    key.write_text(checksum_lines(["go.mod", "go.sum", "old.txt"], tmp_path))
    assert check_file(key, ["go.mod", "go.sum", "old.txt"], tmp_path).ok
    (tmp_path / "go.sum").write_text("changed\n")
    (tmp_path / "new.txt").write_text("new\n")
    result = check_file(key, ["go.mod", "go.sum", "new.txt"], tmp_path)
    assert not result.ok
    assert [c.path for c in result.changed] == ["go.sum"]
    assert result.changed[0].new == hashlib.sha256(b"changed\n").hexdigest()
    assert result.added == ("new.txt",)
    assert result.removed == ("old.txt",)
    text = "\n".join(result.describe())
    assert "changed: go.sum" in text and "added:   new.txt" in text and "removed: old.txt" in text


def test_check_file_missing_or_reordered(tmp_path: Path) -> None:
    _make(tmp_path, ["a", "b"])
    missing = check_file(tmp_path / "nope", ["a"], tmp_path)
    assert not missing.ok and not missing.exists
    key = tmp_path / "k"
    key.write_text(checksum_lines(["b", "a"], tmp_path))
    reordered = check_file(key, ["a", "b"], tmp_path)
    assert not reordered.ok and not reordered.changed and reordered.describe()


def test_write_atomic(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    target = tmp_path / "w" / "k"
    assert write_atomic(target, "one\n") is True
    target.chmod(0o640)
    assert write_atomic(target, "one\n") is False
    assert write_atomic(target, "two\n") is True
    assert target.read_text() == "two\n"
    assert (target.stat().st_mode & 0o777) == 0o640
    assert sorted(os.listdir(tmp_path / "w")) == ["k"]  # no temp files left behind


# -- GitLab's rule, on known ids ------------------------------------------------------------------------------


def _sha1(s: str) -> str:
    return hashlib.sha1(s.encode()).hexdigest()


def test_digest_sorts_deduplicates_and_joins() -> None:
    assert digest_of(["bb", "aa", "bb"]) == _sha1("aa-bb")
    assert digest_of([]) == "default"
