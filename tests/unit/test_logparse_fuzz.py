"""Issue 12: the parser never raises on any byte sequence; a value it cannot use is unknown.

A mutation fuzz (3,000 cases from a fixed seed, the engine of bench/fuzz_logparse.py, whose long run does 100,000+)
and a hypothesis test of the per-line timestamp: every combination of digits, real date or not.
"""

from __future__ import annotations

import calendar
import importlib.util
import sys
from types import ModuleType

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cidash.logparse import parse_bytes
from cidash.models import Section
from logparse_support import parse_without_lane
from paths import REPO_ROOT

BENCH = REPO_ROOT / "bench" / "fuzz_logparse.py"


def _engine() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_logparse", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_logparse"] = module
    spec.loader.exec_module(module)
    return module


fuzz = _engine()


@pytest.mark.parametrize("seed", range(6))
def test_mutated_logs_never_raise_and_stay_consistent(seed: int) -> None:
    failures = [(i, problem) for i, data, sizes in fuzz.cases(seed, 500) if (problem := fuzz.check(data, sizes))]
    assert failures == []


def test_mutated_logs_read_the_same_without_the_fast_lane() -> None:
    # TraceParser._lane is an optimisation only: with it closed, every mutated log must give the same facts
    differ = [i for i, data, _ in fuzz.cases(7, 1500) if parse_without_lane(data) != parse_bytes(data)]
    assert differ == []


def test_the_fuzz_can_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    # a test of the test: the checker reports facts that differ and an exception
    one = parse_bytes(b"section_start:1:a\r\n")
    other = parse_bytes(b"section_start:2:a\r\n")
    assert "chunking changed the facts" in fuzz._inconsistency(one, other)

    def boom(data: bytes) -> None:
        raise ValueError("month must be in 1..12")

    monkeypatch.setattr(fuzz, "parse_bytes", boom)
    assert "month must be in 1..12" in fuzz.check(b"x", [1])


def test_mutations_change_the_logs() -> None:
    seeds = set(fuzz.seed_logs())
    changed = sum(data not in seeds for _, data, _ in fuzz.cases(99, 200))
    assert changed > 190


@example(year=2016, month=12, day=31, hour=23, minute=59, second=60, frac="")  # a leap second
@example(year=2016, month=12, day=31, hour=23, minute=59, second=61, frac=".5")
@settings(max_examples=300)
@given(
    year=st.integers(0, 9999),
    month=st.integers(0, 99),
    day=st.integers(0, 99),
    hour=st.integers(0, 99),
    minute=st.integers(0, 99),
    second=st.integers(0, 99),
    frac=st.sampled_from(["", ".5", ".000001", ".999999999"]),
)
def test_any_timestamp_digits(year: int, month: int, day: int, hour: int, minute: int, second: int, frac: str) -> None:
    stamp = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}{frac}Z 00O "
    log = f"{stamp}section_start:1700000000:a\r\x1b[0K\nsection_end:1700000009:a\r\x1b[0K\n".encode()
    facts = parse_bytes(log)  # the marker at its line's head: read by the fast lane, each minute once
    assert parse_without_lane(log) == facts  # the per-line path reads the timestamp on its own
    real = (
        year >= 1970
        and 1 <= month <= 12
        and 1 <= day <= calendar.monthrange(year, month)[1]
        and hour <= 23
        and minute <= 59
        and second <= 60
    )
    if real:
        expected = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) + float(frac or 0)
    else:
        expected = 1700000000.0  # unknown: the marker's own unix seconds
    assert facts.sections == (Section("a", expected, 1700000009.0, 1700000009.0 - expected),)
