"""The dashboard's pure helpers: charts, the log splitter, the pipeline filter, the Health cache."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from cidash.tui.charts import TICKS, ColumnChart, phase_bar, resample, sparkline
from cidash.tui.data import Health, HealthRow, PipelineFilter, health_cache_path, load_health, save_health
from cidash.tui.logview import split_sections

values = st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)), max_size=80)


@given(values)
def test_sparkline_one_cell_per_value_and_extremes(vals: list[float | None]) -> None:
    line = sparkline(vals)
    assert len(line) == len(vals)
    for v, ch in zip(vals, line, strict=True):
        assert (ch == " ") == (v is None)
    known = [v for v in vals if v is not None]
    if known and max(known) > min(known):
        assert line[vals.index(max(known))] == TICKS[-1]
        assert line[vals.index(min(known))] == TICKS[0]


@given(values, st.integers(min_value=1, max_value=60))
def test_resample_fits_width_and_keeps_range(vals: list[float | None], width: int) -> None:
    out = resample(vals, width)
    assert len(out) == (width if vals else 0)
    known = [v for v in vals if v is not None]
    for v in out:
        if v is not None:
            assert min(known) - 1e-6 <= v <= max(known) + 1e-6


def test_column_chart_size_target_and_marker() -> None:
    chart = ColumnChart([800.0, 800.0, 210.0, 212.0], target=215.0, marker=2)
    lines = chart.render(27, 8)
    assert len(lines) == 8
    assert all(len(line.plain) == 27 for line in lines)
    text = "\n".join(line.plain for line in lines)
    assert "│" in text  # the marker above the low columns
    assert "─" not in lines[0].plain  # target is far below the top
    assert "215" in text


def test_phase_bar_is_proportional() -> None:
    bar = phase_bar({"prepare": 10.0, "script": 30.0, "upload": None}, 40, 40.0)
    assert len(bar.plain) == 40
    assert len(phase_bar({"prepare": 10.0}, 40, 40.0).plain) == 10
    assert phase_bar({}, 40, 0).plain == ""


def test_split_sections_folds_runner_sections() -> None:
    log = (
        "Running with gitlab-runner 19.1.0\n"
        "\x1b[0Ksection_start:1700000000:prepare_executor[collapsed=true]\r\x1b[0KPreparing the executor\n"
        "Using docker image sha256:abc\n"
        "\x1b[0Ksection_end:1700000004:prepare_executor\r\x1b[0K\n"
        "2026-11-02T10:00:00.000000Z 00O section_start:1700000004:step_script\r\x1b[0KExecuting step_script\n"
        "2026-11-02T10:00:01.000000Z 00O $ make test\n"
        "2026-11-02T10:00:02.000000Z 00O ok\n"
        "section_end:1700000010:step_script\r\x1b[0K\n"
        "Job succeeded\n"
    )
    sections = split_sections(log)
    assert [s.name for s in sections] == ["", "prepare_executor", "step_script", ""]
    prep, script = sections[1], sections[2]
    assert prep.collapsed and prep.duration == 4 and prep.header == "Preparing the executor"
    assert prep.lines == ["Using docker image sha256:abc"]
    assert script.lines == ["$ make test", "ok"] and script.duration == 6
    assert sections[3].lines == ["Job succeeded"]


def test_split_sections_unclosed_section_is_kept() -> None:
    sections = split_sections("section_start:1:step_script\r\x1b[0Kx\nline\n")
    assert sections[-1].name == "step_script" and sections[-1].end is None and sections[-1].lines == ["line"]


def test_pipeline_filter_terms_and_words() -> None:
    f = PipelineFilter.parse("ref:main status:failed web 1234")
    assert (f.ref, f.status, f.source, f.words) == ("main", "failed", None, ("web", "1234"))
    where, params = f.sql()
    assert where.count("LIKE") == 2 + 2 * 3
    assert "%main%" in params and "1234" in params
    assert PipelineFilter.parse("").sql() == ("", [])
    _, params = PipelineFilter.parse("100%_x").sql()
    assert params[0] == "%100\\%\\_x%"  # LIKE wildcards are literal


def test_health_cache_roundtrip(tmp_path: Path) -> None:
    row = HealthRow(
        "image_size", "CI image size", "pass", "≤ 215 MB", "214 MB", "807 MB", "-593 MB", "ok.", 1, (1.0, None)
    )
    health = Health("g/p", datetime(2026, 11, 27, tzinfo=UTC), True, "window", (row,), {"pass": 1})
    path = health_cache_path(tmp_path, tmp_path / "store.db", 42)
    save_health(path, health)
    assert load_health(path) == health
    path.write_text("{broken", encoding="utf-8")
    assert load_health(path) is None
