from __future__ import annotations

import subprocess
import sys

import pytest

from cidash import __version__
from cidash.cli import COMMANDS, main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"cidash {__version__}"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name, _module in COMMANDS:
        assert name in out


def test_unknown_command_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "frobnicate" in err


def test_unknown_option_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "some.log", "--no-such-flag"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--no-such-flag" in err


def test_console_script_runs_as_module() -> None:
    proc = subprocess.run([sys.executable, "-m", "cidash", "--version"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("cidash ")


def test_dashboard_without_a_terminal_is_a_clear_error(tmp_path: object) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cidash", "tui", "--offline"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "needs a terminal" in proc.stderr
    assert proc.stdout == ""


def test_version_imports_no_command_module() -> None:
    """`cidash --version` answers without building the commands' parsers (the server's HTTP stack, the
    dashboard's): what a script or a package manager asks first, in a few tens of ms."""
    code = (
        "import sys\nfrom cidash import cli\n"
        "try:\n    cli.main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('cidash.commands.'))) or '-')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = proc.stdout.strip().splitlines()
    assert lines == [f"cidash {__version__}", "-"]


def test_a_named_command_imports_only_its_own_module() -> None:
    """`cidash key ...` builds the parser of `key` alone: the other command modules (the server's HTTP stack, the
    dashboard's) are not imported at start-up."""
    code = (
        "import sys\nfrom cidash import cli\n"
        "try:\n    cli.main(['key', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('cidash.commands.'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = proc.stdout.strip().splitlines()[-1].split()
    assert "cidash.commands.key" in loaded
    assert not {f"cidash.commands.{name}" for name, _ in COMMANDS if name != "key"} & set(loaded)
