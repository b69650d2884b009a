"""The printed reports (``check`` and ``compare`` tables, Markdown, JUnit) say a value in the same words as the
dashboard's Health tab, and a piped table carries no padding."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cidash.config import Config
from cidash.criteria import evaluate
from cidash.formatting import fmt_result
from cidash.report import render_criteria
from metrics_factories import T0, migration_story

NOW = T0 + timedelta(days=20, hours=12)


@pytest.fixture(scope="module")
def report():  # type: ignore[no-untyped-def]
    return evaluate(migration_story().dataset(), Config(), NOW)


@pytest.mark.parametrize("fmt", ["table", "markdown", "junit"])
def test_values_read_as_on_the_health_tab(report, fmt: str) -> None:  # type: ignore[no-untyped-def]
    text = render_criteria(report, fmt, width=200)
    files = next(c for c in report.criteria if c.id == "cache_key_files")
    assert files.value == 1
    assert "1 file" in text and "1 files" not in text  # the walk-through found "1 files"
    for c in report.criteria:
        if c.value is not None:
            assert fmt_result(c.value, c.unit) in text, c.id


def test_a_piped_table_has_no_trailing_blanks(report) -> None:  # type: ignore[no-untyped-def]
    text = render_criteria(report, "table", width=120)
    lines = text.splitlines()
    assert lines[0].startswith("cidash check:")
    assert all(line == line.rstrip() for line in lines), [line for line in lines if line != line.rstrip()][:2]
    assert text.endswith("\n")


def test_a_column_of_measured_values_keeps_its_decimal() -> None:
    from cidash.report import _measured

    assert [_measured(v, "s") for v in (529.0, 608.2)] == ["529.0 s", "608.2 s"]  # not "529 s / 608.2 s"
    assert [_measured(v, "%") for v in (100.0, 95.7)] == ["100.0 %", "95.7 %"]
    assert _measured(None, "MB") == "–"


def test_a_p50_p90_pair_says_a_shared_unit_once() -> None:
    from cidash.formatting import fmt_seconds_pair

    assert fmt_seconds_pair(528.0, 606.0) == "8.8 / 10.1 min"  # 18 cells as "8.8 min / 10.1 min": cut at 17
    assert fmt_seconds_pair(26.9, 30.3) == "26.9 / 30.3 s"
    assert fmt_seconds_pair(58.0, 126.0) == "58.0 s / 2.1 min"  # different units: each keeps its own
    assert fmt_seconds_pair(None, None) == "— / —"
