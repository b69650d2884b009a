"""`cidash completion`: the shell code works; bash completes commands, options and option values for real."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cidash.cli import main

BASH = shutil.which("bash")


def complete(line: str, tmp_path: Path) -> list[str]:
    """Run bash's completion for ``line`` (the cursor at its end) in a subprocess, return COMPREPLY."""
    assert BASH is not None
    words = line.split(" ")
    script = tmp_path / "complete.sh"
    script.write_text(
        'eval "$(cidash completion bash)"\n'
        f"COMP_LINE={_quote(line)}\n"
        "COMP_POINT=${#COMP_LINE}\n"
        f"COMP_WORDS=({' '.join(_quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_python_argcomplete cidash\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    bin_dir = str(Path(sys.executable).parent)  # where `cidash` is installed next to this Python
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run(
        [BASH, "--norc", "--noprofile", str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [w.strip() for w in proc.stdout.splitlines() if w.strip()]


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_completes_commands_options_and_values(tmp_path: Path) -> None:
    assert complete("cidash ch", tmp_path) == ["check"]
    assert set(complete("cidash do", tmp_path)) == {"doctor"}
    assert set(complete("cidash check --format j", tmp_path)) == {"json", "junit"}
    words = complete("cidash completion ", tmp_path)
    assert {w for w in words if not w.startswith("-")} == {"bash", "zsh", "fish"}
    assert "--strict" in complete("cidash doctor --", tmp_path)
    (tmp_path / "job-1234.log").write_text("log\n")
    assert complete("cidash trace job-", tmp_path) == ["job-1234.log"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_every_shell_gets_code_that_names_cidash(shell: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", shell]) == 0
    out = capsys.readouterr().out
    assert "cidash" in out and out.endswith("\n")
    if shell == "fish":
        assert out.startswith("complete") or "complete --command cidash" in out
    else:
        assert "_python_argcomplete" in out


@pytest.mark.skipif(BASH is None, reason="bash is not installed")
def test_bash_code_is_valid_bash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    script = tmp_path / "c.bash"
    script.write_text(capsys.readouterr().out)
    assert BASH is not None
    proc = subprocess.run([BASH, "-n", str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_unknown_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "tcsh-ish"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cidash completion: error: argument SHELL: invalid choice")
    assert err.rstrip().endswith("(see 'cidash completion --help')") and err.count("\n") == 1
