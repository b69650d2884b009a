"""The transient "working..." line of check, compare and export on a terminal (commands.common.working)."""

from __future__ import annotations

import threading

import pytest

from cidash.commands.common import working


class FakeTerminal:
    """A stderr that says it is a terminal and records what is written to it."""

    def __init__(self, tty: bool = True) -> None:
        self.tty = tty
        self.writes: list[str] = []
        self.drawn = threading.Event()

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.writes.append(text)
        if "working" in text:
            self.drawn.set()
        return len(text)

    def flush(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _not_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")


def test_on_a_terminal_the_line_is_drawn_then_erased() -> None:
    term = FakeTerminal()
    with working("cidash export", term, after=0):  # type: ignore[arg-type]
        assert term.drawn.wait(30), "the line was never drawn"
    assert term.writes[0].startswith("\rcidash export: working... ") and term.writes[0].endswith(" s\x1b[K")
    assert term.writes[-1] == "\r\x1b[K"  # erased: the answer prints on a clean line


def test_the_line_is_erased_when_the_work_fails() -> None:
    term = FakeTerminal()
    with pytest.raises(KeyboardInterrupt), working("cidash check", term, after=0):  # type: ignore[arg-type]
        assert term.drawn.wait(30)
        raise KeyboardInterrupt
    assert term.writes[-1] == "\r\x1b[K"


def test_quick_work_draws_nothing() -> None:
    term = FakeTerminal()
    with working("cidash check", term, after=3600):  # type: ignore[arg-type]
        pass
    assert term.writes == []


@pytest.mark.parametrize(("tty", "env"), [(False, {}), (True, {"CI": "true"}), (True, {"TERM": "dumb"})])
def test_nothing_on_a_pipe_in_ci_or_on_a_dumb_terminal(
    monkeypatch: pytest.MonkeyPatch, tty: bool, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    term = FakeTerminal(tty)
    with working("cidash compare", term, after=0):  # type: ignore[arg-type]
        assert not term.drawn.wait(0.2)
    assert term.writes == []
