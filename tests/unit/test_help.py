"""`--help`: one options section (argparse's), exit codes and examples after it; usage errors in one line."""

from __future__ import annotations

import re

import pytest

from cidash.cli import COMMANDS, main, split_description

NAMES = [name for name, _ in COMMANDS]


def help_text(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_one_options_section_and_every_option_listed_once(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(name, capsys)
    assert text.count("\noptions:\n") == 1, text
    before, _, after = text.partition("\noptions:\n")
    # No hand-written option list in the description: an indented line starting with a flag.
    hand_written = [line for line in before.splitlines()[1:] if re.match(r"^\s+(-\w, )?--[a-z][\w-]+ {2,}", line)]
    assert not hand_written, hand_written
    flags = re.findall(r"^  (?:-\w, )?(--[a-z][\w-]*)", after, flags=re.M)
    assert len(flags) == len(set(flags)), flags
    assert "--help" in flags


@pytest.mark.parametrize("name", NAMES)
def test_exit_codes_come_after_the_options(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text(name, capsys)
    assert "exit codes" in text
    assert text.index("\noptions:\n") < text.index("exit codes")
    assert len(text.splitlines()) <= 75, f"{name} --help is {len(text.splitlines())} lines"


@pytest.mark.parametrize("name", [*NAMES, None])
def test_help_writes_no_control_character_to_the_terminal(name: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    """A ``\\r`` or an escape in a help text would move the cursor over what it printed (the trace command's
    once held a carriage return, written where its text meant the two characters)."""
    if name is None:
        with pytest.raises(SystemExit):
            main(["--help"])
        text = capsys.readouterr().out
    else:
        text = help_text(name, capsys)
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text), repr(re.findall(r".{0,30}[\x00-\x09\x0b-\x1f\x7f]", text))


def test_choices_read_like_the_docs(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_text("check", capsys)
    assert "--format table|json|markdown|junit" in text and "{table" not in text


def test_split_description_keeps_paragraphs_and_moves_exit_codes_and_examples() -> None:
    before, after = split_description(
        "Does things.\n\nexit codes: 0 ok;\n2 bad usage.\n\nNotes:\n  kept\n\nexamples:\n  cidash x\n"
    )
    assert before == "Does things.\n\nNotes:\n  kept\n"
    assert after == "exit codes: 0 ok;\n2 bad usage.\n\nexamples:\n  cidash x"


def test_parser_usage_error_names_the_command_and_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--format", "yaml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cidash check: error: argument --format: invalid choice: 'yaml'")
    assert err.endswith("(see 'cidash check --help')\n") and err.count("\n") == 1


def test_command_usage_error_names_the_command_and_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--criterion", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cidash check: error: unknown criterion 'nope'")
    assert err.endswith("(see 'cidash check --help')\n") and err.count("\n") == 1
    assert main(["trace", "x.log", "--json", "--format", "text"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cidash trace: error: --json and --format text contradict each other")


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chekc"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cidash: error: argument COMMAND: invalid choice: 'chekc'")
    assert err.endswith("(see 'cidash --help')\n")


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for name in NAMES:
        assert re.search(rf"^\s+{name}\s", text, flags=re.M), name
