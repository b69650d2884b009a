"""The dashboard with Pilot and SVG snapshots, over a store synced once per session from the simulated GitLab.

The clock is frozen at the scenario's end and the terminal size fixed, so the snapshots are deterministic.
Tests that refresh or act start their own simulator on the same seeded scenario (same ids) over a copy of the
synced store, and check the simulator's request accounting.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input
from textual.worker import WorkerState

from cidash.config import Config, config_from_dict
from cidash.connection import Connection, Secret
from cidash.criteria import REGISTRY, evaluate
from cidash.dataset import load_dataset
from cidash.remote import GitLabClient
from cidash.sim import FaultPlan, FaultRule, Scenario, SimulatedGitLab
from cidash.store import Store
from cidash.sync import SyncOptions, sync_project
from cidash.tui.adapters import CoreActions, UnavailableActions, log_fetcher, sync_refresher
from cidash.tui.app import CidashApp
from cidash.tui.commands import COMMANDS
from cidash.tui.screens.detail import JobLogScreen, PipelineScreen
from cidash.tui.screens.modals import AuthScreen, ConfirmScreen, EvidenceScreen, HelpScreen, ProjectScreen
from cidash.tui.screens.pipelines import PipelinesView

SCENARIO = Scenario(days=8, pipelines_per_day=4, migration_day=5, with_docs_project=False)
NOW: datetime = SCENARIO.end
SIZE = (120, 36)


def client_factory(sim: SimulatedGitLab, token: str | None = None) -> Callable[[], GitLabClient]:
    conn = Connection(
        url=sim.url, token=Secret(token or sim.token), max_rps=0, concurrency=4, projects=(sim.project_path,)
    )
    return lambda: GitLabClient(conn)


@pytest.fixture(scope="session")
def synced_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scenario synced once into a store file (closed, so copies are complete)."""
    path = tmp_path_factory.mktemp("tui-store") / "store.db"
    with SimulatedGitLab(SCENARIO) as sim, Store.open(path) as store:
        with client_factory(sim)() as client:
            sync_project(
                client,
                store,
                sim.project_path,
                options=SyncOptions.from_config(Config(), since="all", now=NOW),
                now=NOW,
            )
        store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def store(synced_db: Path, tmp_path: Path) -> Iterator[Store]:
    copy = tmp_path / "store.db"
    shutil.copy(synced_db, copy)
    with Store.open(copy) as s:
        yield s


@pytest.fixture
def live_sim() -> Iterator[SimulatedGitLab]:
    with SimulatedGitLab(SCENARIO) as sim:
        yield sim


def make_app(store: Store, tmp_path: Path, **kw: Any) -> CidashApp:
    kw.setdefault("config", Config())
    return CidashApp(store, clock=lambda: NOW, cache_dir=tmp_path / "cache", poll=False, **kw)


async def settle(pilot: Pilot[None], timeout: float = 30.0) -> None:
    """Wait until no worker is pending or running (and the messages they posted were handled)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3 and time.monotonic() < deadline:
        busy = any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in pilot.app.workers)
        quiet = 0 if busy else quiet + 1
        await pilot.pause(0.02)


def table_rows(app: CidashApp, selector: str) -> list[list[str]]:
    table = app.screen.query_one(selector, DataTable)
    return [[str(getattr(c, "plain", c)) for c in table.get_row_at(i)] for i in range(table.row_count)]


# ---------------------------------------------------------------------------------------------------------------
# Navigation and data
# ---------------------------------------------------------------------------------------------------------------


async def test_health_shows_what_the_criteria_engine_says(store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        project = store.projects()[0]
        report = evaluate(load_dataset(store, project), Config(), NOW)
        rows = table_rows(app, "#health-table")
        assert [r[0] for r in rows] == [REGISTRY[c.id].short_title for c in report.criteria]
        labels = {"pass": "PASS", "fail": "FAIL", "no_data": "NO DATA"}
        assert [r[1] for r in rows] == [labels[c.status] for c in report.criteria]
        assert app.health is not None and app.health.ok == report.ok()
        # Enter opens the evidence of the highlighted criterion
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, EvidenceScreen)
        assert app.screen.evidence.sentence == report.criteria[0].evidence
        await pilot.press("escape")
        assert not isinstance(app.screen, EvidenceScreen)


async def test_tabs_help_and_palette_come_from_one_registry(store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key, tab in zip("234561", ("pipelines", "startup", "caches", "images", "compare", "health"), strict=True):
            await pilot.press(key)
            await pilot.pause()
            assert app.query_one("#tabs").active == tab  # type: ignore[attr-defined]
        bound = {b.key for b in app.BINDINGS if hasattr(b, "key")}  # type: ignore[union-attr]
        assert {c.key for c in COMMANDS} <= bound
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.press("ctrl+t")
        assert app.theme == "textual-light"


async def test_pipeline_filter_and_drill_down(store: Store, tmp_path: Path, live_sim: SimulatedGitLab) -> None:
    project = store.projects()[0]
    app = make_app(store, tmp_path, log_fetcher=log_fetcher(client_factory(live_sim)))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        view = app.query_one(PipelinesView)
        assert view.total == len(store.pipelines(project.id))
        await pilot.press("slash")
        assert app.focused is app.query_one("#pipeline-filter", Input)
        await pilot.press(*"ref:main")
        await settle(pilot)
        on_main = store.pipelines(project.id, ref="main")
        assert view.total == len(on_main)
        assert {r[2] for r in table_rows(app, "#pipelines-table")} == {"main"}
        assert view.last_filter_ms is not None
        await pilot.press("enter")  # applies and returns to the table
        await pilot.press("enter")  # opens the newest pipeline on main
        await settle(pilot)
        assert isinstance(app.screen, PipelineScreen)
        assert app.screen.pipeline_id == on_main[-1].id
        jobs = store.jobs(pipeline_id=on_main[-1].id)
        assert len(table_rows(app, "#jobs-table")) == len(jobs)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, JobLogScreen)
        assert live_sim.stats.count("/trace") >= 1
        title = str(app.screen.query_one("#log-title").render())
        assert "from GitLab" in title
        await pilot.press("escape", "escape")
        assert not isinstance(app.screen, (PipelineScreen, JobLogScreen))


# ---------------------------------------------------------------------------------------------------------------
# Refresh and failures
# ---------------------------------------------------------------------------------------------------------------


async def test_refresh_syncs_from_the_simulator(store: Store, tmp_path: Path, live_sim: SimulatedGitLab) -> None:
    factory = client_factory(live_sim)
    app = make_app(store, tmp_path, refresher=sync_refresher(factory, store, Config(), lambda: NOW))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.refresh_count == 1  # the refresh on start
        before = live_sim.stats.total_requests
        snapshot = app.snapshot
        await pilot.press("r")
        await settle(pilot)
        assert app.refresh_count == 2
        assert app.snapshot is snapshot  # nothing new in GitLab: nothing recomputed
        assert live_sim.stats.total_requests > before
        assert app.failure is None and app.header.stale is None
        assert app.last_refresh == NOW


async def test_failed_refresh_keeps_data_and_says_stale(
    store: Store, tmp_path: Path, live_sim: SimulatedGitLab
) -> None:
    factory = client_factory(live_sim)
    app = make_app(store, tmp_path, refresher=sync_refresher(factory, store, Config(), lambda: NOW))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        rows = table_rows(app, "#health-table")
        live_sim.set_faults(FaultPlan((FaultRule(endpoint="*pipelines*", status=500),)))
        await pilot.press("r")
        await settle(pilot)
        assert app.failure is not None
        assert app.header.stale
        assert "stale: last refresh failed" in str(app.header.render())
        assert table_rows(app, "#health-table") == rows  # the last good data stays
        assert any(n.title == app.failure.title and n.severity == "error" for n in app._notifications)


async def test_a_project_not_in_the_store_is_said_never_replaced(
    store: Store, tmp_path: Path, live_sim: SimulatedGitLab
) -> None:
    """`cidash --project platform/ap` (a typo) opened and synced another project without a word; now it says the
    project is not in the store, syncs only the one asked for, and shows GitLab's not-found like `cidash sync`."""
    conn = Connection(url=live_sim.url, token=Secret(live_sim.token), max_rps=0, projects=("platform/ap",))
    factory = lambda: GitLabClient(conn)  # noqa: E731
    (stored,) = store.projects()
    synced_before = store.last_sync(stored.id)
    app = make_app(
        store, tmp_path, project="platform/ap", refresher=sync_refresher(factory, store, Config(), lambda: NOW)
    )
    said: list[tuple[str, str, str]] = []
    notify = app.notify

    def record(message: str, **kw: Any) -> None:  # notifications expire (under load, before the asserts)
        said.append((message, kw.get("title", ""), kw.get("severity", "information")))
        notify(message, **kw)

    app.notify = record  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.project is None and app.snapshot is None and app.health is None
        assert app.header.project == "platform/ap"
        assert "platform/ap is not in the store" in str(app.screen.query_one("#verdict").render())
        assert any(t == "Project not found" and sev == "warning" and "platform/ap" in m for m, t, sev in said)
        assert app.failure is not None and "platform/ap" in app.failure.one_line()  # GitLab's answer, as sync says
    assert store.last_sync(stored.id) == synced_before  # the other project was not synced in its place


async def test_wrong_token_at_start_shows_what_to_set(store: Store, tmp_path: Path, live_sim: SimulatedGitLab) -> None:
    factory = client_factory(live_sim, token="not-the-token")
    app = make_app(store, tmp_path, refresher=sync_refresher(factory, store, Config(), lambda: NOW))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, AuthScreen)
        text = str(app.screen.query_one("Static").render())
        assert "GITLAB_TOKEN" in text and "not-the-token" not in text
        await pilot.press("c")  # the store has data: continue with it
        assert not isinstance(app.screen, AuthScreen)


# ---------------------------------------------------------------------------------------------------------------
# Actions
# ---------------------------------------------------------------------------------------------------------------


async def test_rebuild_cancel_sends_nothing_confirm_creates(
    store: Store, tmp_path: Path, live_sim: SimulatedGitLab
) -> None:
    factory = client_factory(live_sim)
    actions = CoreActions(factory, store, Config(), clock=lambda: NOW, follow_timeout=0.5)
    app = make_app(store, tmp_path, actions=actions)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "POST /api/v4/projects/" in app.screen.plan.dry_run
        await pilot.press("escape")
        await settle(pilot)
        assert live_sim.stats.mutating_requests == 0
        declined = store.audit()
        assert declined and declined[-1].result == "declined: cancelled in the dashboard"
        pipelines_before = len(live_sim.world.main.pipelines)
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(pilot)
        assert live_sim.stats.mutating_requests == 1
        main = live_sim.world.main
        played = [j for j in main.jobs.values() if j.played]
        assert len(main.pipelines) > pipelines_before or played
        assert store.audit()[-1].result.startswith("ok")


async def test_read_only_disables_actions_with_the_reason(store: Store, tmp_path: Path) -> None:
    config = config_from_dict({"actions": {"read_only": True}})
    from cidash.tui.adapters import core_actions

    actions = core_actions(lambda: None, store, config)
    assert isinstance(actions, UnavailableActions)
    app = make_app(store, tmp_path, config=config, actions=actions)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("b")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert "read-only" in str(app.header.render())
        assert any("read-only" in n.message for n in app._notifications)


# ---------------------------------------------------------------------------------------------------------------
# Snapshots (pytest-textual-snapshot): every tab at 120x36, Health at 80x24
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tab", ["1", "2", "3", "4", "5", "6"])
def test_snapshot_tabs(snap_compare: Any, store: Store, tmp_path: Path, tab: str) -> None:
    app = make_app(store, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press(tab)
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_health_80x24(snap_compare: Any, store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path)
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)


@pytest.mark.parametrize("tab", ["3", "5"])
def test_snapshot_narrow_tabs_stack(snap_compare: Any, store: Store, tmp_path: Path, tab: str) -> None:
    """Start-up and Images at 80x24: their two halves stack (the App's -narrow class) and the tab scrolls."""
    app = make_app(store, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press(tab)
        await settle(pilot)
        assert app.has_class("-narrow")

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


async def test_health_columns_follow_the_width(store: Store, tmp_path: Path) -> None:
    """Sparklines get the room the other columns leave (one cell per day at most); under 100 columns the
    baseline column gives way; the snapshot stays cheap to describe (Textual logs worker arguments)."""
    app = make_app(store, tmp_path)
    async with app.run_test(size=(160, 36)) as pilot:
        await settle(pilot)
        table = app.query_one("#health-table", DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert "Baseline" in labels
        spark = table.columns[table.coordinate_to_cell_key((0, len(labels) - 1)).column_key]
        assert spark.width == 30
        assert app.snapshot is not None and len(repr(app.snapshot)) < 200
        await pilot.resize_terminal(90, 30)
        await settle(pilot)
        labels = [str(c.label) for c in table.columns.values()]
        assert "Baseline" not in labels and app.has_class("-narrow")
        spark = table.columns[table.coordinate_to_cell_key((0, len(labels) - 1)).column_key]
        assert 8 <= spark.width < 30


def test_snapshot_pipeline_detail(snap_compare: Any, store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def test_export_writes_criteria_and_comparison(store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path)
    target = tmp_path / "report.md"
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        await pilot.press("e")
        await pilot.pause()
        box = app.screen.query_one("#export-path", Input)
        box.value = str(target)
        await pilot.press("enter")
        await settle(pilot)
    text = target.read_text(encoding="utf-8")
    assert "startup_improvement" in text or "start-up" in text
    assert "### cidash compare: platform/app" in text
    assert ",ref:main" in text  # the migration preset compares the criteria ref


async def test_project_switch_lists_the_store(store: Store, tmp_path: Path) -> None:
    from cidash.models import Project

    store.upsert_project(Project(99, "platform/docs", "https://gitlab.example.com/platform/docs", "main"))
    app = make_app(store, tmp_path, project="platform/app")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.header.project == "platform/app"
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, ProjectScreen)
        assert app.screen.projects == ["platform/app", "platform/docs"]
        await pilot.press("down", "enter")
        await settle(pilot)
        assert app.project is not None and app.project.path == "platform/docs"
        assert app.header.project == "platform/docs"
        assert app.health is not None and all(r.status == "no_data" for r in app.health.rows)


async def test_keys_plan_shows_the_diff_and_writes_only_on_confirm(
    store: Store, tmp_path: Path, live_sim: SimulatedGitLab
) -> None:
    from cidash.cachekey import checksum_lines
    from cidash.config import DEFAULT_CRITICAL_FILES

    checkout = tmp_path / "checkout"
    for name in DEFAULT_CRITICAL_FILES:
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).write_text(f"content of {name}\n", encoding="utf-8")
    stale = "0" * 64 + "  go.mod\n"
    (checkout / ".cache-key").write_text(stale, encoding="utf-8")
    actions = CoreActions(client_factory(live_sim), store, Config(), clock=lambda: NOW, checkout=checkout)
    app = make_app(store, tmp_path, actions=actions)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("k")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        plan = app.screen.plan
        assert any("go.mod" in line for line in plan.diff)
        assert any(line.startswith("GitLab on main") for line in plan.lines)
        await pilot.press("escape")
        await settle(pilot)
        assert (checkout / ".cache-key").read_text(encoding="utf-8") == stale
        await pilot.press("k")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
    assert (checkout / ".cache-key").read_text(encoding="utf-8") == checksum_lines(
        list(DEFAULT_CRITICAL_FILES), checkout
    )
    assert live_sim.stats.mutating_requests == 0


async def test_polling_rearms_after_each_refresh_and_skips_while_hidden(store: Store, tmp_path: Path) -> None:
    from cidash.tui.adapters import RefreshResult

    calls: list[str | None] = []

    def refresher(project: Any, progress: Callable[[str], None]) -> RefreshResult:
        progress("sync pipelines")
        calls.append(project.path if project else None)
        return RefreshResult("ok")

    config = config_from_dict({"tui": {"refresh_seconds": 0.2}})
    app = CidashApp(store, config, clock=lambda: NOW, cache_dir=tmp_path / "cache", refresher=refresher)
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 20
        while len(calls) < 3 and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert len(calls) >= 3  # start + re-armed polls
        assert set(calls) == {"platform/app"}
        app.hidden = True
        await settle(pilot)
        seen = len(calls)
        await pilot.pause(0.6)
        assert len(calls) == seen  # nothing while the terminal is hidden
        await pilot.press("s")  # paused on demand
        app.hidden = False
        await pilot.pause(0.6)
        assert len(calls) == seen
        assert "polling paused" in str(app.header.render())


async def test_pipelines_load_more_pages_while_scrolling(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cidash.tui.screens.pipelines as pipelines_module

    monkeypatch.setattr(pipelines_module, "PAGE", 10)
    total = len(store.pipelines(store.projects()[0].id))
    app = make_app(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        view = app.query_one(PipelinesView)
        assert view.loaded < total and view.total == total  # pages of 10, more on demand
        for _ in range(total):
            await pilot.press("down")
        await settle(pilot)
        assert view.loaded == total
        ids = [int(r[0].lstrip("#")) for r in table_rows(app, "#pipelines-table")]
        assert ids == sorted(ids, reverse=True) and len(set(ids)) == total


async def test_retry_from_a_pipeline_retries_the_highlighted_job(
    store: Store, tmp_path: Path, live_sim: SimulatedGitLab
) -> None:
    project = store.projects()[0]
    target = store.jobs(project.id, status="success", include_retried=False)[-1]  # GitLab retries any finished job
    actions = CoreActions(client_factory(live_sim), store, Config(), clock=lambda: NOW, follow_timeout=0.5)
    app = make_app(store, tmp_path, actions=actions)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_pipeline(target.pipeline_id)
        await settle(pilot)
        assert isinstance(app.screen, PipelineScreen)
        jobs = [r.job.id for r in app.screen.rows]
        app.screen.query_one("#jobs-table", DataTable).move_cursor(row=jobs.index(target.id))
        await pilot.press("t")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.plan.dry_run == f"POST /api/v4/projects/{project.id}/jobs/{target.id}/retry"
        await pilot.press("escape")
        await settle(pilot)
        assert live_sim.stats.mutating_requests == 0
        await pilot.press("t")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
    assert live_sim.stats.mutating_requests == 1
    assert live_sim.world.main.jobs[target.id].retried


async def test_retry_on_health_targets_the_latest_failed_build(
    store: Store, tmp_path: Path, live_sim: SimulatedGitLab
) -> None:
    project = store.projects()[0]
    failed = store.jobs(project.id, name="build-ci-image", status="failed", include_retried=False)
    actions = CoreActions(client_factory(live_sim), store, Config(), clock=lambda: NOW, follow_timeout=0.5)
    app = make_app(store, tmp_path, actions=actions)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        if failed:
            assert isinstance(app.screen, ConfirmScreen)
            assert app.screen.plan.dry_run.endswith(f"/jobs/{failed[-1].id}/retry")
        else:  # every failed build was already retried: refused in words, nothing sent
            assert not isinstance(app.screen, ConfirmScreen)
            assert any(n.title == "Refused" and "build-ci-image" in n.message for n in app._notifications)
    assert live_sim.stats.mutating_requests == 0


def test_snapshot_light_theme_startup(snap_compare: Any, store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("ctrl+t", "3")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def test_results_arriving_under_a_pushed_screen(store: Store, tmp_path: Path) -> None:
    from cidash.tui.adapters import RefreshResult

    def refresher(project: Any, progress: Callable[[str], None]) -> RefreshResult:
        return RefreshResult("ok")

    app = make_app(store, tmp_path, refresher=refresher)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pipeline = store.pipelines(store.projects()[0].id)[-1]
        app.open_pipeline(pipeline.id)
        await settle(pilot)
        await pilot.press("r")  # the refresh finishes and the tabs update while the pipeline is on top
        await settle(pilot)
        assert isinstance(app.screen, PipelineScreen)
        assert app.refresh_count == 2 and app.failure is None
        await pilot.press("3")  # a tab key goes back to the tabs
        await pilot.pause()
        assert not isinstance(app.screen, PipelineScreen)
        assert app.tabs.active == "startup"


@pytest.mark.parametrize("keys", [("enter",), ("question_mark",)], ids=["evidence", "help"])
def test_snapshot_modals(snap_compare: Any, store: Store, tmp_path: Path, keys: tuple[str, ...]) -> None:
    app = make_app(store, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press(*keys)
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
