"""Nothing from GitLab reaches a terminal or a report raw: every output of cidash over the simulator's hostile
strings mode (escapes, C1, bidi, markup, formulas, Markdown/HTML breakers, non-UTF-8 log bytes).

One store is synced per session from ``Scenario(hostile_strings=True)``; each CLI format is rendered from it in
process, and the dashboard is driven with ``App.run_test()`` (the project's harness, see ``test_tui.py``).
"""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import re
import shutil
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from textual.pilot import Pilot
from textual.widgets import DataTable
from textual.worker import WorkerState

from cidash.cli import main
from cidash.config import Config
from cidash.connection import Connection, Secret
from cidash.criteria import evaluate
from cidash.dataset import load_dataset
from cidash.export import ExportInput, to_csv
from cidash.models import Project
from cidash.remote import GitLabClient
from cidash.report import render_criteria
from cidash.sim import Scenario, SimulatedGitLab, hostile_strings
from cidash.store import Store
from cidash.sync import SyncOptions, sync_project
from cidash.tui.adapters import log_fetcher
from cidash.tui.app import CidashApp
from cidash.tui.screens.detail import JobLogScreen, PipelineScreen

SCENARIO = Scenario(days=6, pipelines_per_day=4, migration_day=3, with_docs_project=False, hostile_strings=True)
NOW = SCENARIO.end
NOW_ISO = NOW.isoformat()

#: A raw control character (C0 but tab/newline, DEL, C1), a bidi override/isolate or mark, an invisible format
#: character, a line/paragraph separator: none may be in any output.
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
SGR = re.compile(r"\x1b\[[0-9;]*m")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def assert_clean(text: str, what: str) -> None:
    m = RAW.search(text)
    assert m is None, f"{what}: raw {m.group()!r} at {m.start()}: {text[max(0, m.start() - 60) : m.start() + 20]!r}"


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(store, one job log as GitLab serves it) for the hostile scenario."""
    root = tmp_path_factory.mktemp("hostile")
    db = root / "store.db"
    with SimulatedGitLab(SCENARIO) as sim, Store.open(db) as store:
        conn = Connection(url=sim.url, token=Secret(sim.token), max_rps=0, concurrency=4, projects=(sim.project_path,))
        with GitLabClient(conn) as client:
            sync_project(
                client,
                store,
                sim.project_path,
                options=SyncOptions.from_config(Config(), since="all", now=NOW),
                now=NOW,
            )
        store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        lint = max(j.id for j in sim.world.main.jobs.values() if j.name == hostile_strings.JOB_NAMES["lint"])
        request = urllib.request.Request(
            f"{sim.url}/api/v4/projects/{sim.world.main.id}/jobs/{lint}/trace", headers={"PRIVATE-TOKEN": sim.token}
        )
        with urllib.request.urlopen(request) as answer:
            log = root / "job.log"
            log.write_bytes(answer.read())
    return db, log


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "internal error" not in err and "Traceback" not in err, err
    return code, out, err


def test_the_hostile_mode_really_is_hostile(hostile: tuple[Path, Path]) -> None:
    db, log = hostile
    data = log.read_bytes()
    assert b"\x1b]0;pwned\x07" in data and b"\xff\xfe" in data and "\u202e".encode() in data
    with Store.open(db, readonly=True) as store:
        project = store.projects()[0]
        jobs = {j.name for j in store.jobs(project_id=project.id)}
        refs = {p.ref for p in store.pipelines(project.id)}
    assert hostile_strings.JOB_NAMES["build"] in jobs and hostile_strings.JOB_NAMES["test 1/2"] in jobs
    assert any("\x1b]0;pwned" in ref for ref in refs)


@pytest.mark.parametrize("fmt", ["table", "json", "markdown", "junit"])
def test_check_output_is_clean(hostile: tuple[Path, Path], capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    db, _ = hostile
    code, out, err = run_cli(capsys, "check", "--format", fmt, "--db", str(db), "--now", NOW_ISO)
    assert code in (0, 1)
    assert_clean(out + err, f"check --format {fmt}")
    if fmt == "junit":
        ET.fromstring(out.encode())  # well-formed XML 1.0 (expat refuses what XML forbids)
    if fmt == "json":
        json.loads(out)
    if fmt == "markdown":
        assert_tables_keep_their_columns(out)


def test_check_table_in_colour_has_only_colour(hostile: tuple[Path, Path]) -> None:
    db, _ = hostile
    with Store.open(db, readonly=True) as store:
        ds = load_dataset(store, store.projects()[0])
    text = render_criteria(evaluate(ds, Config(), NOW), "table", color=True)
    assert SGR.search(text) is not None
    assert_clean(SGR.sub("", text), "check table (colour)")


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown", "openmetrics"])
def test_export_output_is_clean(hostile: tuple[Path, Path], capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    db, _ = hostile
    code, out, err = run_cli(capsys, "export", "--format", fmt, "--db", str(db), "--now", NOW_ISO, "--since", "all")
    assert code == 0
    assert_clean(out + err, f"export --format {fmt}")
    # the hostile names are there, visibly escaped (JSON keeps the value with its own \u escapes)
    assert ("\\u001b]0;pwned" if fmt == "json" else "\\x1b]0;pwned") in out
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(out)))
        assert len(rows) > 20 and all(len(r) == len(rows[0]) for r in rows)
        for row in rows:
            for cell in row:
                if cell.startswith(FORMULA_START):
                    float(cell)  # only a number may start with - or +
    if fmt == "markdown":
        assert_tables_keep_their_columns(out)
        assert "<script>" not in out
    if fmt == "openmetrics":
        families = list(text_string_to_metric_families(out))
        labels = [v for f in families for s in f.samples for v in s.labels.values()]
        assert any("pwned" in v for v in labels)
        for value in labels:
            assert_clean(value, "openmetrics label")


def test_export_csv_neutralises_formula_cells() -> None:
    """A cell that starts with a formula character gets a leading quote, wherever the text lands (here the project
    path, which leads every row); numbers stay numbers."""
    from metrics_factories import Builder, facts, pipeline, restore

    b = Builder()
    p = b.add_pipeline(pipeline(1, NOW, ref="main"))
    b.add_job(p, "@job", facts(12.0, cache=[restore("k")]))
    ds = dataclasses.replace(b.dataset(), project=Project(1, "=HYPERLINK(1)/-x", "https://gitlab.example/x"))
    inp = ExportInput(ds=ds, report=None, generated_at=NOW, since=None, build_job="+build", critical_files=())
    rows = list(csv.reader(io.StringIO(to_csv(inp))))
    assert len(rows) > 10 and all(r[0] == "'=HYPERLINK(1)/-x" for r in rows[1:])
    for cell in (c for r in rows for c in r):
        if cell.startswith(FORMULA_START):
            float(cell)


@pytest.mark.parametrize("fmt", ["table", "json", "markdown"])
def test_compare_output_is_clean(hostile: tuple[Path, Path], capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    db, _ = hostile
    code, out, err = run_cli(
        capsys,
        "compare",
        "--baseline",
        "#1000..#1010",
        "--candidate",
        "#1011..#1030",
        "--format",
        fmt,
        "--db",
        str(db),
        "--resamples",
        "100",
    )
    assert code in (0, 1)
    assert_clean(out + err, f"compare --format {fmt}")
    if fmt == "markdown":
        assert_tables_keep_their_columns(out)


@pytest.mark.parametrize("as_json", [False, True])
def test_trace_output_is_clean(hostile: tuple[Path, Path], capsys: pytest.CaptureFixture[str], as_json: bool) -> None:
    _, log = hostile
    code, out, err = run_cli(capsys, "trace", str(log), *(["--json"] if as_json else []))
    assert code == 0
    assert_clean(out + err, "trace")
    if as_json:
        facts = json.loads(out)
        assert any("pwned" in (c["key"] or "") for c in facts["cache"])
    else:
        assert "=1+1|`k`" in out and "\\x07" in out  # the hostile cache key, escaped


def test_sync_output_is_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    small = Scenario(days=2, pipelines_per_day=3, migration_day=2, with_docs_project=False, hostile_strings=True)
    with SimulatedGitLab(small) as sim:
        monkeypatch.setenv("GITLAB_TOKEN", sim.token)
        args = ["sync", "--url", sim.url, "--project", sim.project_path, "--db", str(tmp_path / "s.db")]
        code, out, err = run_cli(capsys, *args, "--since", "all", "--progress", "plain", "--verbose")
    assert code == 0
    assert_clean(out + err, "sync")


def assert_tables_keep_their_columns(markdown: str) -> None:
    """Every row of every Markdown table has as many cells as its header (GFM: ``\\|`` does not split)."""
    tables = 0
    width = None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            width = None
            continue
        cells = len(re.split(r"(?<!\\)\|", line.strip())) - 2
        if width is None:
            width = cells
            tables += 1
        assert cells == width, line
    assert tables >= 1


# ---------------------------------------------------------------------------------------------------------------
# The dashboard
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def hostile_store(hostile: tuple[Path, Path], tmp_path: Path) -> Iterator[Store]:
    copy = tmp_path / "store.db"
    shutil.copy(hostile[0], copy)
    with Store.open(copy) as store:
        yield store


async def settle(pilot: Pilot[None], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3 and time.monotonic() < deadline:
        busy = any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in pilot.app.workers)
        quiet = 0 if busy else quiet + 1
        await pilot.pause(0.02)


def screen_text(app: CidashApp) -> str:
    """What the terminal shows: the text of the rendered screen (Rich's SVG export, unescaped)."""
    svg = app.export_screenshot()
    assert_clean(svg, "the screen's SVG")
    parts = re.findall(r"<text[^>]*>(.*?)</text>", svg, re.S)
    return html.unescape("".join(parts)).replace("\xa0", " ")


async def test_dashboard_shows_hostile_strings_escaped(hostile_store: Store, tmp_path: Path) -> None:
    with SimulatedGitLab(SCENARIO) as sim:
        conn = Connection(url=sim.url, token=Secret(sim.token), max_rps=0, concurrency=4, projects=(sim.project_path,))
        app = CidashApp(
            hostile_store,
            Config(),
            clock=lambda: NOW,
            cache_dir=tmp_path / "cache",
            poll=False,
            log_fetcher=log_fetcher(lambda: GitLabClient(conn)),
        )
        seen: list[str] = []
        async with app.run_test(size=(160, 48)) as pilot:
            await settle(pilot)
            for key in "123456":
                await pilot.press(key)
                await settle(pilot)
                seen.append(screen_text(app))
            # the pipelines tab, on a pipeline of a hostile branch
            await pilot.press("2")
            await settle(pilot)
            table = app.screen.query_one("#pipelines-table", DataTable)
            refs = [str(getattr(table.get_row_at(i)[2], "plain", "")) for i in range(table.row_count)]
            hostile_rows = [i for i, ref in enumerate(refs) if "pwned" in ref or "u202e" in ref or "script" in ref]
            assert hostile_rows, refs
            table.focus()
            table.move_cursor(row=hostile_rows[0])
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, PipelineScreen)
            seen.append(screen_text(app))
            jobs = app.screen.query_one("#jobs-table", DataTable)
            names = [str(getattr(jobs.get_row_at(i)[1], "plain", "")) for i in range(jobs.row_count)]
            build = next(i for i, n in enumerate(names) if n.startswith("build\\x1b"))
            jobs.move_cursor(row=build)
            await pilot.pause()
            seen.append(screen_text(app))
            await pilot.press("enter")
            await settle(pilot)
            assert isinstance(app.screen, JobLogScreen)
            await pilot.press("plus")  # expand every section
            await settle(pilot)
            seen.append(screen_text(app))
            app.notify(f"job {hostile_strings.JOB_NAMES['build']} {hostile_strings.OSC_TITLE}", title="x\x1b[2J")
            await pilot.pause()
            seen.append(screen_text(app))
            assert sim.stats.count("/trace") >= 1
    shown = "\n".join(seen)
    assert_clean(shown, "the dashboard")
    assert "[bold]x[/]" in shown  # markup shown literally, not rendered
    assert "\\x1b]0;pwned\\x07" in shown  # the escape is visible
    assert "red is fine" in shown and "\\xff" not in shown.replace("\\\\xff", "")  # log text decoded, shown


# ---------------------------------------------------------------------------------------------------------------
# Secrets in pipeline variables
# ---------------------------------------------------------------------------------------------------------------


def test_rebuild_variables_are_redacted_in_output_and_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    small = Scenario(days=2, pipelines_per_day=3, migration_day=2, with_docs_project=False)
    db = tmp_path / "audit.db"
    with SimulatedGitLab(small) as sim:
        monkeypatch.setenv("GITLAB_TOKEN", sim.token)
        base = ["--url", sim.url, "--project", sim.project_path, "--db", str(db), "--var", "DEPLOY_KEY=hunter2"]
        code, out, err = run_cli(capsys, "rebuild", *base, "--yes", "--no-follow", "--force")
        assert code == 0 and sim.stats.mutating_requests == 1
        assert "hunter2" not in out + err and "DEPLOY_KEY=***" in out
        code, out, err = run_cli(capsys, "rebuild", *base, "--dry-run", "--force", "--show-values")
        assert code == 0 and "DEPLOY_KEY=hunter2" in out and '"value": "hunter2"' in out
        sent = [v for p in sim.world.main.pipelines.values() for v in p.variables]
    with Store.open(db, readonly=True) as store:
        rows = store.audit()
    assert len(rows) == 2
    for row in rows:
        assert "hunter2" not in repr(row)
    assert any(row.extra.get("variables", "").find("DEPLOY_KEY") >= 0 for row in rows)
    assert not sent or any(v.get("value") == "hunter2" for v in sent)  # GitLab itself got the value
