"""The dashboard's pure helpers: charts, the log splitter, the pipeline filter, the Health cache."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from cidash.queries import count_pipelines, query_pipelines
from cidash.store import Store
from cidash.tui.charts import FLAT, TICKS, ColumnChart, phase_bar, resample, sparkline
from cidash.tui.data import (
    Health,
    HealthRow,
    PipelineFilter,
    fmt_cache_key,
    fmt_change,
    fmt_digest,
    fmt_value,
    health_cache_path,
    load_health,
    save_health,
)
from cidash.tui.logview import split_sections
from metrics_factories import PROJECT, T0, pipeline

values = st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)), max_size=80)


@given(values)
def test_sparkline_one_cell_per_value_and_extremes(vals: list[float | None]) -> None:
    line = sparkline(vals)
    assert len(line) == len(vals)
    for v, ch in zip(vals, line, strict=True):
        assert (ch == " ") == (v is None)
    known = [v for v in vals if v is not None]
    if known and max(known) - min(known) > 1e-9 * max(*known, 1.0):  # a real change (not float noise)
        assert line[vals.index(max(known))] == TICKS[-1]
        assert line[vals.index(min(known))] == TICKS[0]


@given(st.floats(min_value=0, max_value=1e6), st.lists(st.booleans(), min_size=1, max_size=40))
def test_sparkline_of_a_constant_series_is_a_rule_not_a_level(value: float, known: list[bool]) -> None:
    """A criterion that did not move over the window (0 stale caches every day, 2 key files) draws a rule, so
    it cannot be read as a bar at some level; missing days stay blank."""
    vals = [value if k else None for k in known]
    line = sparkline(vals)
    assert line == "".join(FLAT if k else " " for k in known)
    assert not set(line) & set(TICKS)


def test_sparkline_float_noise_is_still_flat_but_a_real_change_is_drawn() -> None:
    assert sparkline([27.059, 27.059 + 1e-12, 27.059]) == FLAT * 3
    assert sparkline([27.0, 27.5, 27.0]) == TICKS[0] + TICKS[-1] + TICKS[0]


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


def test_column_chart_scale_labels_the_max_and_draws_the_target_across() -> None:
    """807 MB -> 215 MB: the top label is the max, the big columns reach the top row, the small ones stop at the
    target line, which crosses every column (also the ones it runs through)."""
    height, width = 10, 7 + 20
    chart = ColumnChart([807.0] * 10 + [214.6] * 10, target=215.0)
    lines = [line.plain for line in chart.render(width, height)]
    assert lines[0].split()[0] == "807"
    assert lines[-1].split()[0] == "0"
    plot = [line[7:] for line in lines]
    assert plot[0][:10] == "█" * 10 and plot[0][10:].strip() == ""  # 807 fills the top row, 215 does not
    target_rows = [i for i, row in enumerate(plot) if set(row) == {"─"}]
    assert len(target_rows) == 1 and lines[target_rows[0]].split()[0] == "215"
    t = target_rows[0]
    assert t == height - 1 - int(215 / 807 * height * 8) // 8
    assert all(row[10:].strip() == "" for row in plot[:t])  # nothing of the small columns above the line
    assert all(row[10:] == "█" * 10 for row in plot[t + 1 :])  # and full below it
    # and the columns over the target are drawn in the "over" style, the others in the normal one
    top = chart.render(width, height)[-1]
    styles = {str(span.style) for span in top.spans}
    assert chart.over_style in styles and chart.style in styles


@given(st.integers(min_value=1, max_value=120), st.integers(min_value=1, max_value=200), st.data())
def test_marker_column_shows_the_marked_value(n: int, plot_w: int, data: st.DataObject) -> None:
    marker = data.draw(st.integers(min_value=0, max_value=n - 1))
    chart = ColumnChart([float(i) for i in range(n)], marker=marker)
    col = chart.marker_column(plot_w)
    assert col is not None and 0 <= col < plot_w
    lo = col * n // plot_w
    hi = max(lo + 1, (col + 1) * n // plot_w)
    assert lo <= marker < hi  # the column's bucket holds the marked value


def test_axis_line_puts_labels_under_their_columns() -> None:
    chart = ColumnChart([1.0] * 30, marker=15)
    line = chart.axis_line(7 + 80, "2026-10-29", "2026-11-27", "migration 2026-11-13").plain
    assert len(line) == 87
    assert line[7:].startswith("2026-10-29") and line.endswith("2026-11-27")
    col = chart.marker_column(80)
    assert col is not None and line[7 + col :].startswith("└ migration 2026-11-13")
    # near the right edge the label ends at the marker instead; the last label gives way
    chart = ColumnChart([1.0] * 30, marker=27)
    right = chart.axis_line(67, "2026-10-29", "2026-11-27", "migration 2026-11-13").plain
    col = chart.marker_column(60)
    assert col is not None and right[: 7 + col + 1].endswith("migration 2026-11-13 ┘")
    assert right[7:].startswith("2026-10-29") and "2026-11-27" not in right
    # too narrow for the words: the date alone
    narrow = ColumnChart([1.0] * 30, marker=15).axis_line(7 + 30, "a", "b", "migration 2026-11-13").plain
    assert "└ 2026-11-13" in narrow or "2026-11-13 ┘" in narrow
    # labels never touch: the first label gives way to a marker label starting right after it
    tight = ColumnChart([1.0] * 60, marker=10).axis_line(7 + 60, "2026-10-22", "2026-11-17", "migration 2026-11-07")
    assert "2026-10-22m" not in tight.plain and "2026-10-22└" not in tight.plain
    assert "migration 2026-11-07" in tight.plain


def test_formatting_units_points_and_keys() -> None:
    assert fmt_value(1.0, "files") == "1 file"
    assert fmt_value(2.0, "files") == "2 files"
    assert fmt_value(214.6, "MB") == "214.6 MB"
    # in a column of values measured units keep one decimal (528.0 s next to 586.2 s); counts and targets stay whole
    assert [fmt_value(v, "s", column=True) for v in (528.0, 586.2)] == ["528.0 s", "586.2 s"]
    assert (fmt_value(3.0, "files", column=True), fmt_value(215.0, "MB")) == ("3 files", "215 MB")
    assert fmt_change(0.0, "%") == "±0 pts"
    assert fmt_change(4.3, "%") == "+4.3 pts"  # percentage points, not percent
    assert fmt_change(-592.2, "MB") == "-592.2 MB"
    assert fmt_change(-1.0, "writers") == "-1 writer"
    assert fmt_change(0.04, "events") == "±0 events"
    assert fmt_change(None, "%") == "—"
    key = "0-7dda6dd4d24a098acb7956b958177ca6490e3805-protected"
    assert fmt_cache_key(key) == "0-7dda6dd4…-protected"
    assert fmt_cache_key("0-default-non_protected") == "0-default-non_protected"
    assert fmt_digest("sha256:" + "ab" * 32) == "ab" * 6
    assert fmt_digest(None) == "—"


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
    assert PipelineFilter.parse("") == PipelineFilter()


def test_pipeline_filter_selects_the_pipelines_it_names(tmp_path: Path) -> None:
    """Terms AND together; a bare word matches ref, status or source as a substring, or the id exactly; ``%`` and
    ``_`` are the characters themselves (checked on what a store returns, not on the SQL text)."""
    rows = [  # id, ref, status, source
        (1, "main", "failed", "web"),
        (2, "main", "failed", "push"),
        (3, "maintenance", "success", "web"),
        (4, "feature", "failed", "schedule"),
        (1234, "100%_x", "success", "push"),
        (5, "100ab_x", "success", "push"),
    ]
    with Store.open(tmp_path / "cidash.db") as store:
        store.upsert_project(PROJECT)
        store.upsert_pipelines(
            replace(pipeline(pid, T0 + timedelta(minutes=pid), ref=ref, status=status), source=source)
            for pid, ref, status, source in rows
        )

        def ids(text: str) -> list[int]:
            found = [r.pipeline.id for r in query_pipelines(store, PROJECT.id, PipelineFilter.parse(text))]
            assert count_pipelines(store, PROJECT.id, PipelineFilter.parse(text)) == len(found)
            return sorted(found)

        assert ids("") == [1, 2, 3, 4, 5, 1234]
        assert ids("ref:main status:failed web") == [1]
        assert ids("ref:main") == [1, 2, 3]  # a substring
        assert ids("source:sched") == [4]
        assert ids("1234") == [1234] and ids("#1234") == [1234] and ids("123") == []  # the id only whole
        assert ids("100%_x") == [1234]  # not 100ab_x: LIKE wildcards are literal
        assert ids("status:running") == []


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


def test_a_cached_health_is_current_only_for_the_sync_it_came_from(tmp_path: Path) -> None:
    synced = datetime(2026, 11, 27, 8, tzinfo=UTC)
    health = Health("g/p", datetime(2026, 11, 27, 9, tzinfo=UTC), True, "window", (), {}, synced)
    path = health_cache_path(tmp_path, tmp_path / "store.db", 42)
    save_health(path, health)
    cached = load_health(path)
    assert cached == health
    assert cached.current_for(synced) is True
    assert cached.current_for(synced + timedelta(minutes=1)) is False  # synced since: an older state
    assert cached.current_for(None) is None  # the store was never synced
    # a cache written before the sync was recorded: unknown, never "current"
    old = json.loads(path.read_text(encoding="utf-8"))
    del old["synced_at"]
    path.write_text(json.dumps(old), encoding="utf-8")
    before = load_health(path)
    assert before is not None and before.synced_at is None and before.current_for(synced) is None


def test_gc_paused_restores_the_collector() -> None:
    import gc

    from cidash.dataset import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    try:
        with gc_paused():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


def test_log_rows_are_dense_numbered_and_timestamped() -> None:
    from cidash.tui.logview import find, first_error, has_stamps, initially_folded, visible_rows

    ts = "2026-01-02T03:04:05.123456Z 00O "
    log = (
        f"{ts}Running with gitlab-runner 17.0.0\n"
        + "".join(
            f"{ts}section_start:{100 + i}:step_{i}[collapsed=true]\r\x1b[0KStep {i}\n{ts}line {i}\n"
            f"{ts}section_end:{101 + i}:step_{i}\r\x1b[0K\n"
            for i in range(10)
        )
        + f"{ts}section_start:200:step_script\r\x1b[0KExecuting\n{ts}$ make\n"
        + "2026-01-02T03:05:06Z 00E ERROR: Job failed: exit code 1\n"
        + f"{ts}section_end:230:step_script\r\x1b[0K\n"
    )
    sections = split_sections(log)
    assert has_stamps(sections)
    folded = initially_folded(sections)
    rows = visible_rows(sections, folded)
    # 1 unnamed line + 10 folded sections (one row each) + step_script header and its 2 lines: fits 36 rows
    assert len(rows) == 1 + 10 + 3
    script = next(i for i, s in enumerate(sections) if s.name == "step_script")
    assert sections[script].duration == 30
    assert sections[script].numbers == [33, 34] and sections[script].stamps == ["03:04:05", "03:05:06"]
    assert sections[1].header == "Step 0" and sections[1].header_number == 2
    assert first_error(sections) == (script, 1)
    assert find(sections, "LINE 3") == [(4, 0)]
    assert visible_rows(sections, set())[:3] == [(0, 0), (1, -1), (1, 0)]


def test_first_error_ignores_words_that_only_contain_error() -> None:
    from cidash.tui.logview import first_error

    assert first_error(split_sections("0 errors found\nno_error_here\nall fine\n")) is None
    assert first_error(split_sections("ok\n\x1b[31;1mFATAL: no space left\x1b[0m\n")) == (0, 1)
    assert first_error(split_sections("ok\nmain.go:3: error: undefined x\n")) == (0, 1)


def test_links_come_from_the_configured_origin_only() -> None:
    from cidash.tui.links import gitlab_origin, web_url

    assert web_url("https://gitlab.example.com/", "g/app", "job", 7) == "https://gitlab.example.com/g/app/-/jobs/7"
    assert web_url("http://127.0.0.1:8080/gl", "g/app", "pipeline", 3) == "http://127.0.0.1:8080/gl/g/app/-/pipelines/3"
    assert web_url("https://h/", "g/a b", "registry") == "https://h/g/a%20b/container_registry"
    assert web_url(None, "g/app") is None
    assert gitlab_origin("https://user:pw@h/") is None and gitlab_origin("ftp://h/") is None
    assert gitlab_origin("https://h/?x=1") is None and gitlab_origin("https://h/\x1b]52;c;x\x07") is None
    assert web_url("https://h", "g/\x1b[2Japp") is None
    assert web_url("https://h", "g/app", "job", -1) is None


def test_cosmetics_plural_units_and_key_templates() -> None:
    from cidash.tui.screens.base import key_display, plural, seconds_in

    assert plural(1, "pipeline") == "1 pipeline" and plural(2, "pipeline") == "2 pipelines"
    assert plural(0, "file") == "0 files"
    assert seconds_in(528, "s") == "528.0 s" and seconds_in(586.2, "s") == "586.2 s"
    assert seconds_in(45, "min") == "0.8 min" and seconds_in(None, "s") == "—"
    assert key_display("0-{files: .cache-key}") == "files: .cache-key"
    assert key_display("deps-main") == "deps-main"


def test_progress_line_one_project_then_a_group() -> None:
    """One project shows its phase; projects syncing at once show every project's share, not the last to report."""
    from cidash.sync import SyncProgress
    from cidash.tui.adapters import ProgressLine

    line = ProgressLine()
    assert line.update(SyncProgress("g/a", "logs", logs_done=3, logs_total=10)) == "sync logs 3/10"
    assert line.update(SyncProgress("g/b", "pipelines")) == "sync 0/2 projects · logs 3/10"
    assert line.update(SyncProgress("g/c", "logs", logs_done=1, logs_total=4)) == "sync 0/3 projects · logs 4/14"
    assert line.update(SyncProgress("g/a", "done", logs_done=10, logs_total=10)) == "sync 1/3 projects · logs 11/14"
    assert line.update(SyncProgress("g/b", "done")) == "sync 2/3 projects · logs 11/14"
    group = ProgressLine()  # a pool of 12 projects says how many it covers before all of them have started
    assert group.update(SyncProgress("g/a", "pipelines", projects=12)) == "sync 0/12 projects"


def test_a_job_that_never_ran_says_so_in_its_facts() -> None:
    """A manual job nobody played has no runner and no log: the facts panel says it never ran, not "runner ?"."""
    from datetime import UTC, datetime

    from cidash.models import Job
    from cidash.queries import JobRow
    from cidash.tui.screens.detail import _facts_text

    created = datetime(2026, 11, 20, tzinfo=UTC)
    manual = Job(42, 7, 3, "build-ci-image", "image", "manual", "main", "a" * 40, created)
    text = _facts_text(JobRow(manual, None)).plain
    assert "never started" in text and "no log: the job never ran" in text and "runner" not in text
    ran = Job(
        42,
        8,
        3,
        "test",
        "test",
        "success",
        "main",
        "a" * 40,
        created,
        created,
        created,
        1.0,
        2.0,
        None,
        runner="docker-1",
    )
    assert "runner docker-1 · queued 2.0 s" in _facts_text(JobRow(ran, None)).plain
