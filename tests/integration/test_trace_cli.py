"""`cidash trace FILE [--json]` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cidash.cli import main
from paths import DATA

LOGS = DATA / "logs"


CONFORMANCE = LOGS / "conformance"
FIELDS = ["schema_version", "runner_version", "executor", "truncated", "sections", "startup_seconds", "image"]
FIELDS += ["cache", "restores"]


def expected(name: str) -> dict[str, Any]:
    """The golden facts written by hand from what the log says (never produced by running the parser)."""
    data: dict[str, Any] = json.loads((CONFORMANCE / f"{name}.json").read_text())
    return {"schema_version": 1, **data}


def approx_sections(doc: dict[str, Any]) -> dict[str, Any]:
    """Section times are seconds with microseconds from the runner's timestamps: compared to 1e-6."""
    sections = [
        {k: v if k == "name" or v is None else pytest.approx(v, abs=1e-6) for k, v in s.items()}
        for s in doc["sections"]
    ]
    startup = doc["startup_seconds"]
    return {**doc, "sections": sections, "startup_seconds": startup if startup is None else pytest.approx(startup)}


@pytest.mark.parametrize("name", sorted(p.stem for p in CONFORMANCE.glob("*.log")))
def test_json_output_is_the_hand_written_facts(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`trace FILE --json` prints, key for key and in this order, what a reader of the log writes down."""
    assert main(["trace", str(CONFORMANCE / f"{name}.log"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == FIELDS
    assert out == approx_sections(expected(name))


def test_json_for_a_truncated_log(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", str(LOGS / "running.log"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["truncated"] is True
    assert out["sections"][-1] == {"name": "restore_cache", "start": 1750000032.0, "end": None, "duration": None}
    assert out["cache"] == [{"op": "restore", "key": "0-cargo-protected", "outcome": "unknown", "fallback": False}]
    assert out["restores"] == [
        {"key": "0-cargo-protected", "outcome": "unknown", "keys": ["0-cargo-protected"], "via_fallback_key": None}
    ]
    assert out["startup_seconds"] is None


def test_human_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", str(LOGS / "runner-13-ansi.log")]) == 0
    out = capsys.readouterr().out
    assert "gitlab-runner 13.12.0, docker executor" in out
    assert "node:14-alpine (found locally, sha256:9a8b7c6d5e4f)" in out
    assert "start-up: 9 seconds" in out
    assert "  script     32 seconds" in out
    assert "restore  miss       0-node-modules-protected" in out
    assert "archive  empty      1-eslint-protected (no files to cache)" in out
    assert "truncated" not in out


def test_human_summary_of_a_truncated_log(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", str(LOGS / "truncated-limit.log")]) == 0
    out = capsys.readouterr().out
    assert "truncated: the log was cut off or is still running (open: step_script)" in out
    assert "restore  miss       go-mod-protected" in out


def test_sub_second_durations_in_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", str(LOGS / "runner-19-timestamps.log")]) == 0
    out = capsys.readouterr().out
    assert "start-up: 14.9 seconds" in out
    assert "(pulled, sha256:d1ce5eed9876)" in out
    assert "restore  hit        0-default-2-protected (fallback)" in out
    assert "archive  failed     0-3f2a9c41e0d2b7a8-2-protected (too big)" in out


def test_stdin_dash() -> None:
    data = (CONFORMANCE / "kubernetes-17.log").read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "cidash", "trace", "-", "--json"], input=data, capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == approx_sections(expected("kubernetes-17"))


def test_missing_file_is_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", str(tmp_path / "nope.log")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "nope.log" in err and "no such file" in err


def test_directory_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", str(tmp_path)]) == 2
    assert "directory" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_read_error_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    # /proc/self/mem opens fine but reading offset 0 fails with EIO (works even as root).
    assert main(["trace", "/proc/self/mem"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cidash: error: cannot read /proc/self/mem") and "\n" not in err


def test_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.log"
    path.write_bytes(b"")
    assert main(["trace", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sections"] == [] and out["cache"] == [] and out["image"] is None and out["truncated"] is False


def test_help_documents_options_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["trace", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--json" in out and "exit codes" in out and '"-" reads standard input' in out


def test_summary_of_a_fallback_restore_and_the_runners_executor(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", str(LOGS / "conformance" / "runner-16-autoscaler.log")]) == 0
    out = capsys.readouterr().out
    assert "gitlab-runner 16.11.1, docker-autoscaler executor" in out
    assert "restore  hit        go-mod-main-non_protected (fallback)" in out
    assert "= restore of go-mod-feature-x-non_protected: hit via fallback key go-mod-main-non_protected" in out
    assert 'archive  empty      "" (empty key)' in out


def test_saved_copy_on_stdin_parses_like_the_original() -> None:
    original = (LOGS / "conformance" / "runner-13-docker-machine.log").read_bytes()
    runs = [
        subprocess.run(
            [sys.executable, "-m", "cidash", "trace", "-", "--json"], input=data, capture_output=True, check=True
        )
        for data in (original, original.replace(b"\r", b"\n"))
    ]
    first, second = (json.loads(r.stdout) for r in runs)
    assert first == second
    assert first["executor"] == "docker+machine"
    assert [s["name"] for s in first["sections"]][:2] == ["prepare_executor", "prepare_script"]


def test_a_log_of_garbage_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "garbage.log"
    path.write_bytes(b"2026-13-45T99:99:99.9Z 00O section_start:1:x\r\x1b[0K\n\xff\x00\x1b[")
    assert main(["trace", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sections"] == [{"name": "x", "start": 1.0, "end": None, "duration": None}]
