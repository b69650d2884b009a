"""The dashboard with Pilot and SVG snapshots, over a store synced once per session from the simulated GitLab.

The clock is frozen at the scenario's end and the terminal size fixed, so the snapshots are deterministic.
Tests that refresh or act start their own simulator on the same seeded scenario (same ids) over a copy of the
synced store, and check the simulator's request accounting.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static
from textual.widgets._footer import FooterKey
from textual.worker import WorkerState

from cidash.config import Config, config_from_dict
from cidash.connection import Connection, Secret
from cidash.criteria import REGISTRY, evaluate
from cidash.dataset import load_dataset
from cidash.remote import GitLabClient
from cidash.remote import projects as remote_projects
from cidash.sim import FaultPlan, FaultRule, Scenario, SimulatedGitLab
from cidash.store import Store
from cidash.sync import SyncOptions, sync_project
from cidash.tui import prefetch
from cidash.tui.adapters import CoreActions, UnavailableActions, log_fetcher, sync_refresher
from cidash.tui.app import CidashApp
from cidash.tui.commands import COMMANDS
from cidash.tui.data import health_cache_path, load_dashboard, load_health, save_health
from cidash.tui.prefetch import FirstHealthProcess
from cidash.tui.screens.detail import JobLogScreen, PipelineScreen
from cidash.tui.screens.modals import AuthScreen, ConfirmScreen, EvidenceScreen, HelpScreen, ProjectScreen
from cidash.tui.screens.pipelines import PipelinesView
from cidash.tui.widgets.footer import KeyFooter

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
        unbind_origin(store)
        store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def unbind_origin(store: Store) -> None:
    """Forget the URL the template store was synced from: each test's own simulator serves the same seeded ids at
    another port (the same instance, moved), and a store with no recorded URL takes the one it is next synced from
    (cidash.sync.origin)."""
    from cidash.sync.origin import ORIGIN_KIND, ORIGIN_PROJECT

    with store.transaction():
        store.connection.execute(
            "DELETE FROM sync_state WHERE project_id = ? AND kind = ?", (ORIGIN_PROJECT, ORIGIN_KIND)
        )


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


async def first_health_shown(app: CidashApp, pilot: Pilot[None], *, tries: int) -> Any:
    """The first Health the Health tab shows (None when none came within ``tries`` pauses of 20 ms)."""
    for _ in range(tries):
        await pilot.pause(0.02)
        if app.health_view.health is not None:
            break
    return app.health_view.health


async def settle(pilot: Pilot[None], timeout: float = 30.0) -> None:
    """Wait until no worker is pending or running (and the messages they posted were handled)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3 and time.monotonic() < deadline:
        busy = any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in pilot.app.workers)
        quiet = 0 if busy else quiet + 1
        await pilot.pause(0.02)


@dataclass(frozen=True)
class Notice:
    title: str
    message: str
    severity: str


def record_notices(app: CidashApp) -> list[Notice]:
    """Every toast the app raises through Textual's public ``notify`` (then shown as usual)."""
    seen: list[Notice] = []
    shown = app.notify

    def notify(message: str, *, title: str = "", severity: Any = "information", **kw: Any) -> None:
        seen.append(Notice(title, message, str(severity)))
        shown(message, title=title, severity=severity, **kw)

    app.notify = notify  # type: ignore[method-assign]
    return seen


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


async def test_hidden_tabs_mount_when_first_shown_and_take_the_data_that_waited(store: Store, tmp_path: Path) -> None:
    project = store.projects()[0]
    app = make_app(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        # the first screen mounts the Health tab only; the other tabs' data arrived and waits for them
        hidden = [app.pipelines_view, app.startup_tab, app.caches_tab, app.images_tab, app.compare_tab]
        assert not any(view.is_mounted for view in hidden)
        assert len(app.query(DataTable)) == 1
        assert app.caches_tab.view is not None and any(app.compare_tab.specs())
        await pilot.press("4")
        await pilot.pause()
        assert app.caches_tab.is_mounted and not app.startup_tab.is_mounted
        assert [r[0] for r in table_rows(app, "#cache-table")]
        assert app.focused is app.query_one("#cache-table", DataTable)
        # an action that jumps to a tab mounts it too: "/" on Health opens the Pipelines filter
        await pilot.press("1", "slash")
        await settle(pilot)
        assert app.tabs.active == "pipelines"
        assert app.focused is app.query_one("#pipeline-filter", Input)
        assert app.pipelines_view.total == len(store.pipelines(project.id))
        # ... and again once it is mounted: the box takes what is typed
        await pilot.press("escape", "1", "slash", *"ref:main")
        await settle(pilot)
        assert app.focused is app.query_one("#pipeline-filter", Input)
        assert app.pipelines_view.total == len(store.pipelines(project.id, ref="main"))
        # the Compare tab shows the migration SPECs it was given before it had inputs
        await pilot.press("escape", "6")
        await settle(pilot)
        assert app.compare_tab.specs() == (
            app.query_one("#baseline-spec", Input).value,
            app.query_one("#candidate-spec", Input).value,
        )
        assert all(app.compare_tab.specs()) and app.compare_tab.comparison is not None


class ViewsProbe(CidashApp):
    """Records which of the other tabs' views exist when the first screen is painted."""

    built_at_ready: list[str] | None = None

    def on_ready(self) -> None:
        self.built_at_ready = [
            name
            for name in ("pipelines_view", "startup_tab", "caches_tab", "images_tab", "compare_tab")
            if name in vars(self)
        ]


async def test_the_other_tabs_views_are_built_when_first_needed(store: Store, tmp_path: Path) -> None:
    project = store.projects()[0]
    save_health(
        health_cache_path(tmp_path / "cache", store.path, project.id), load_dashboard(store, Config(), project, NOW)[1]
    )  # a warm start: the Health shown at mount
    app = ViewsProbe(store, Config(), clock=lambda: NOW, cache_dir=tmp_path / "cache", poll=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.built_at_ready == []  # none built (nor its module imported) before the first paint
        assert app.health_view.health is not None
        await pilot.press("2")  # built and mounted when its tab is first shown, with its first page
        await settle(pilot)
        assert app.pipelines_view.is_mounted
        assert len(table_rows(app, "#pipelines-table")) == min(100, len(store.pipelines(project.id)))
        await pilot.press("4")  # built when its data came (after the paint), mounted now with that data
        await settle(pilot)
        assert app.caches_tab.is_mounted and [r[0] for r in table_rows(app, "#cache-table")]


def test_a_deferred_pane_takes_its_content_or_what_builds_it() -> None:
    from cidash.tui.widgets.deferred import DeferredPane

    made = Static("made")
    built: list[Static] = []
    assert DeferredPane("A", made, id="a").content is made
    lazy = DeferredPane("B", lambda: built[0], id="b")
    built.append(Static("built later"))
    assert lazy.content is built[0] and not lazy.content_shown


async def test_a_tab_left_while_it_mounts_does_not_take_the_focus_back(store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("3", "4")  # Start-up is still mounting when Caches is chosen
        await settle(pilot)
        assert app.tabs.active == "caches"
        assert app.focused is app.query_one("#cache-table", DataTable)


async def test_the_footer_is_rebuilt_only_when_its_keys_change(store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        footer = app.query_one(KeyFooter)
        keys = list(footer.query(FooterKey))
        assert "refresh" in {k.action for k in keys}
        await pilot.press("2", "3", "1")  # three focus changes, the same keys
        await settle(pilot)
        assert list(footer.query(FooterKey)) == keys  # the same widgets: not rebuilt
        app.bind("f5", "bell", description="Again")
        app.refresh_bindings()
        await settle(pilot)
        assert "Again" in {k.description for k in footer.query(FooterKey)}


class CollectorProbe(CidashApp):
    """Records whether the cyclic collector runs while the first screen mounts (the App's own on_mount runs too)."""

    mounted_with_collector: bool | None = None

    def on_mount(self) -> None:
        self.mounted_with_collector = gc.isenabled()


@pytest.mark.parametrize("enabled", [True, False])
async def test_the_collector_is_paused_until_the_first_paint(store: Store, tmp_path: Path, enabled: bool) -> None:
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        app = CollectorProbe(store, Config(), clock=lambda: NOW, cache_dir=tmp_path / "cache", poll=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert app.mounted_with_collector is False  # paused while the first screen is built
            assert app.health_view.is_mounted
            await settle(pilot)
            assert gc.isenabled() is enabled  # running again once painted, and only if it ran before
            assert app.health_view.health is not None  # the data loaded (under the core's own pause) as before
    finally:
        (gc.enable if was else gc.disable)()


def node_styles(app: CidashApp) -> list[tuple[object, ...]]:
    """Every widget of the screen with its style rules, its components' rules and the Rich style it paints with."""
    return [
        (
            type(node).__name__,
            node.id,
            node.rich_style,
            sorted(node.styles.get_rules().items()),
            sorted((name, sorted(styles.get_rules().items())) for name, styles in node._component_styles.items()),
        )
        for node in app.screen.walk_children(with_self=True)
    ]


@pytest.mark.parametrize(("theme", "size"), [("textual-dark", (80, 24)), ("textual-light", SIZE)])
async def test_the_first_screen_is_styled_as_a_full_restyle_would_style_it(
    store: Store, tmp_path: Path, theme: str, size: tuple[int, int]
) -> None:
    """The screen's first resume skips Textual's restyle of every widget (DashScreen.on_screen_resume): each was
    styled as it mounted. What the first paint showed must be what that restyle would have given."""
    app = make_app(store, tmp_path, config=config_from_dict({"tui": {"theme": theme}}))
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        first = node_styles(app)
        assert len(first) > 30  # the header, the tabs, the Health table, the footer's keys
        app.screen.update_node_styles(animate=False)  # what the skipped restyle did
        assert node_styles(app) == first


class EarlyHelp(CidashApp):
    """Pushes the help screen before the first paint (as a key pressed at once would)."""

    def on_mount(self) -> None:
        self.push_screen(HelpScreen())


@pytest.mark.parametrize("early", [False, True])
async def test_the_rest_of_the_stylesheet_reaches_the_other_tabs_and_screens(
    store: Store, tmp_path: Path, early: bool
) -> None:
    """cidash.tcss holds the first screen's rules; cidash-more.tcss the rest, read after the first paint (or before
    what needs it, when that comes first): a tab's table and a modal's box get their rules either way."""
    cls = EarlyHelp if early else CidashApp
    app = cls(store, Config(), clock=lambda: NOW, cache_dir=tmp_path / "cache", poll=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        if not early:
            await pilot.press("question_mark")
            await pilot.pause()
        box = app.screen.query_one("#help-box")
        assert box.styles.border.top[0] == "thick" and box.styles.max_width is not None  # .modal-box's
        await pilot.press("escape", "2")
        await settle(pilot)
        assert str(app.query_one("#pipelines-table", DataTable).styles.height) == "1fr"  # cidash-more.tcss's


@pytest.mark.parametrize("synced", ["current", "older", "unknown"])
async def test_a_cached_health_says_whether_the_store_was_synced_since(
    store: Store, tmp_path: Path, synced: str
) -> None:
    project = store.projects()[0]
    last = store.last_sync(project.id)
    assert last is not None
    _, health = load_dashboard(store, Config(), project, NOW)
    assert health.synced_at == last
    synced_at = {"current": last, "older": last - timedelta(hours=1), "unknown": None}[synced]
    save_health(health_cache_path(tmp_path / "cache", store.path, project.id), replace(health, synced_at=synced_at))
    app = make_app(store, tmp_path)
    app.load_data = lambda: None  # type: ignore[method-assign]  # keep the cached Health on screen
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = str(app.query_one("#verdict", Static).render())
    assert "recomputing" in text and health.verdict in text
    assert ("the store unchanged since" in text) == (synced == "current")
    assert ("before the store's last sync" in text) == (synced == "older")


async def test_a_cold_start_shows_the_verdicts_first_then_the_whole_table(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No cached Health: the verdicts and values (check's load) are on screen while the baselines, changes and
    series are still being computed; then the whole table, which alone is cached."""
    import cidash.tui.data as data

    release = threading.Event()
    whole = data.load_dashboard

    def held(*args: Any) -> Any:
        release.wait(30)
        return whole(*args)

    monkeypatch.setattr(data, "load_dashboard", held)
    app = make_app(store, tmp_path)
    path = health_cache_path(tmp_path / "cache", store.path, store.projects()[0].id)
    async with app.run_test(size=SIZE) as pilot:
        first = await first_health_shown(app, pilot, tries=500)
        assert first is not None and not first.complete and app.snapshot is None
        rows = table_rows(app, "#health-table")
        text = str(app.query_one("#verdict", Static).render())
        assert first.verdict in text and "computing" in text
        assert [row[1] for row in rows] == [r.status.upper().replace("_", " ") for r in first.rows]
        assert {row[4] for row in rows} == {"…"}  # the baseline cells wait
        await pilot.pause(0.2)
        assert not path.exists()  # a first Health is never cached
        release.set()
        await settle(pilot)
        health = app.health
        assert health is not None and health.complete and app.health_view.health is health
        assert health.verdict == first.verdict and "computing" not in str(app.query_one("#verdict", Static).render())
        complete_rows = table_rows(app, "#health-table")
        assert [row[:4] for row in complete_rows] == [row[:4] for row in rows]
        assert "…" not in {row[4] for row in complete_rows}
    cached = load_health(path)
    assert cached is not None and cached.complete and cached.rows == health.rows


# -- a cold start's first Health from a helper process (cidash.tui.prefetch) ------------------------------------

needs_fork = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="no os.fork here")


def start_helper(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> FirstHealthProcess:
    """A helper started as ``cidash`` starts it (a test process may run threads: fork_usable is told it may)."""
    monkeypatch.setattr(prefetch, "fork_usable", lambda: True)
    helper = prefetch.start_first_health(
        store, kw.pop("config", Config()), wanted=kw.pop("wanted", None), cache_dir=tmp_path / "cache", now=NOW
    )
    assert helper is not None
    return helper


def within(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() > deadline


@needs_fork
def test_the_helper_computes_checks_first_health(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The helper process's Health is first_health's (check's load and evaluation), and it is reaped once read."""
    from cidash.tui.data import first_health

    project = store.projects()[0]
    helper = start_helper(store, tmp_path, monkeypatch)
    assert helper.project_id == project.id and helper.now == NOW
    got = helper.result(within(60))
    assert got is not None and not got.complete
    assert got == first_health(store, Config(), project, NOW)
    with pytest.raises(ChildProcessError):
        os.waitpid(helper.pid, os.WNOHANG)  # reaped
    assert helper.result() is None  # read once


def test_no_helper_on_a_warm_start_an_unknown_project_or_when_switched_off(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = store.projects()[0]
    cache = tmp_path / "cache"
    monkeypatch.setattr(prefetch, "fork_usable", lambda: True)

    def no_fork() -> int:
        raise AssertionError("forked")

    monkeypatch.setattr(prefetch.os, "fork", no_fork)

    def start(wanted: str | None = None) -> FirstHealthProcess | None:
        return prefetch.start_first_health(store, Config(), wanted=wanted, cache_dir=cache, now=NOW)

    assert start("no/such-project") is None
    _, health = load_dashboard(store, Config(), project, NOW)
    save_health(health_cache_path(cache, store.path, project.id), health)
    assert start() is None and start(project.path) is None and start(str(project.id)) is None
    monkeypatch.undo()
    monkeypatch.setattr(prefetch.threading, "active_count", lambda: 1)
    monkeypatch.setattr(prefetch, "_usable_cpus", lambda: 2)
    monkeypatch.setenv(prefetch.ENV_SWITCH, "0")
    assert not prefetch.fork_usable()
    monkeypatch.setenv(prefetch.ENV_SWITCH, "1")
    assert prefetch.fork_usable() == (hasattr(os, "fork") and sys.platform != "darwin")
    monkeypatch.setattr(prefetch, "_usable_cpus", lambda: 1)  # one CPU: the helper would only take turns
    assert not prefetch.fork_usable()
    monkeypatch.setattr(prefetch, "_usable_cpus", lambda: 2)
    monkeypatch.setattr(prefetch.threading, "active_count", lambda: 2)  # a thread runs: its locks would be forked
    assert not prefetch.fork_usable()


@needs_fork
async def test_the_dashboard_shows_the_helpers_health(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold start with a helper: the first Health on screen is the helper's (this process computes none), then
    the whole table as always."""
    import cidash.tui.data as data

    helper = start_helper(store, tmp_path, monkeypatch)
    computed_here: list[object] = []
    original = data.first_health
    monkeypatch.setattr(data, "first_health", lambda *a: computed_here.append(a) or original(*a))
    release = threading.Event()
    whole = data.load_dashboard
    monkeypatch.setattr(data, "load_dashboard", lambda *a: release.wait(30) and whole(*a))
    app = make_app(store, tmp_path, first_health=helper)
    async with app.run_test(size=SIZE) as pilot:
        first = await first_health_shown(app, pilot, tries=1500)
        assert first is not None and not first.complete and app.snapshot is None
        assert first == original(store, Config(), store.projects()[0], NOW)
        release.set()
        await settle(pilot)
        assert app.health is not None and app.health.complete and app.health.verdict == first.verdict
    assert computed_here == [] and app.first_health is None


@needs_fork
@pytest.mark.parametrize("how", ["fails", "other project"])
async def test_without_the_helpers_health_the_dashboard_computes_it(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A helper that gives nothing (it failed) or computed another project's Health: the loading worker computes
    the first Health itself, and the helper is reaped."""
    import cidash.tui.data as data

    original = data.first_health
    if how == "fails":
        monkeypatch.setattr(data, "first_health", lambda *a: 1 / 0)  # in the forked helper too
    helper = start_helper(store, tmp_path, monkeypatch)
    if how == "fails":
        monkeypatch.setattr(data, "first_health", original)
    else:
        helper = replace(helper, project_id=-1)
    app = make_app(store, tmp_path, first_health=helper)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.health is not None and app.health.complete
    assert not helper._open
    with pytest.raises(ChildProcessError):
        os.waitpid(helper.pid, os.WNOHANG)


@needs_fork
def test_closing_ends_a_helper_still_computing(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard quit before the helper finished: close() kills and reaps it at once."""
    import cidash.tui.data as data

    monkeypatch.setattr(data, "first_health", lambda *a: time.sleep(600))
    helper = start_helper(store, tmp_path, monkeypatch)
    started = time.monotonic()
    assert helper.result(within(0.2)) is None  # cancelled: gave up waiting, ended it
    helper.close()  # idempotent
    assert time.monotonic() - started < 30
    with pytest.raises(ChildProcessError):
        os.waitpid(helper.pid, os.WNOHANG)
    # the dashboard quits while its loading worker waits: close() from another thread ends the wait quietly
    other = start_helper(store, tmp_path, monkeypatch)
    got: list[object] = []
    waiting = threading.Thread(target=lambda: got.append(other.result(within(60))))
    waiting.start()
    time.sleep(0.1)
    other.close()
    waiting.join(30)
    assert not waiting.is_alive() and got == [None]
    with pytest.raises(ChildProcessError):
        os.waitpid(other.pid, os.WNOHANG)


VERDICT = re.compile(rb"criteria (?:pass|fail)|PASS with gaps")
ESCAPES = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


@needs_fork
@pytest.mark.parametrize("helper", ["1", "0"])
def test_cidash_tui_in_a_terminal_shows_the_verdict_and_quits_cleanly(
    synced_db: Path, tmp_path: Path, helper: str
) -> None:
    """The real command in a pseudo-terminal, cold (its first Health from the helper process, or computed in the
    dashboard's own): the verdict comes on screen, ctrl+q quits with 0, and no process is left behind."""
    import fcntl
    import pty
    import select
    import signal
    import struct
    import termios

    db = tmp_path / "store.db"
    shutil.copy(synced_db, db)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITLAB", "CI_", "CIDASH"))}
    env.update(TERM="xterm-256color", XDG_CACHE_HOME=str(tmp_path / "cache"), CIDASH_FIRST_HEALTH_PROCESS=helper)
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 120, 0, 0))
        os.chdir(tmp_path)
        argv = [sys.executable, "-m", "cidash", "tui", "--offline", "--no-checkout", "--refresh", "0", "--db", str(db)]
        os.execve(sys.executable, argv, env)
    out, seen, status = b"", False, None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.05)[0]:
                try:
                    out += os.read(fd, 1 << 16)
                except OSError:
                    break  # it exited: the terminal closed
            if not seen and VERDICT.search(ESCAPES.sub(b"", out)):
                seen = True
                os.write(fd, b"\x11")  # ctrl+q
        status = os.waitpid(pid, 0)[1]
    finally:
        if status is None:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert seen, ESCAPES.sub(b"", out)[-800:]
    assert os.waitstatus_to_exitcode(status) == 0
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # its process group (the dashboard and any helper) is gone


def test_the_tui_commands_client_factory_makes_a_client_per_call(live_sim: SimulatedGitLab) -> None:
    """``cidash tui`` hands the dashboard a factory that imports the remote layer when first called (by a refresh's
    worker, after the first paint): each call gives a new client of the connection, which reaches GitLab."""
    from cidash.commands.tui import _client_factory

    conn = Connection(url=live_sim.url, token=Secret(live_sim.token), max_rps=0, concurrency=1, projects=())
    make = _client_factory(conn)
    with make() as first, make() as second:
        assert isinstance(first, GitLabClient) and first is not second
        assert first.connection is conn
        assert remote_projects.project(first.http, live_sim.project_path).path == live_sim.project_path


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
        started = next(i for i, r in enumerate(app.screen.rows) if r.job.started_at is not None)
        await pilot.press(*["j"] * started, "enter")  # a job that ran (a manual one has no log to fetch)
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
        # ... and the cached Health says it is still the store's, as of this sync (the next start says "current")
        project = store.projects()[0]
        cached = load_health(health_cache_path(tmp_path / "cache", store.path, project.id))
        assert cached is not None and cached.current_for(store.last_sync(project.id)) is True


async def test_failed_refresh_keeps_data_and_says_stale(
    store: Store, tmp_path: Path, live_sim: SimulatedGitLab
) -> None:
    factory = client_factory(live_sim)
    app = make_app(store, tmp_path, refresher=sync_refresher(factory, store, Config(), lambda: NOW))
    notices = record_notices(app)
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
        assert any(n.title == app.failure.title and n.severity == "error" for n in notices)


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


async def test_no_token_says_so_not_rejected(store: Store, tmp_path: Path, live_sim: SimulatedGitLab) -> None:
    conn = Connection(url=live_sim.url, token=None, max_rps=0, concurrency=4, projects=(live_sim.project_path,))
    factory = lambda: GitLabClient(conn)  # noqa: E731
    app = make_app(store, tmp_path, refresher=sync_refresher(factory, store, Config(), lambda: NOW), has_token=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, AuthScreen)
        assert "no GitLab token is configured" in app.screen.reason
        assert "rejected" not in app.screen.reason


async def test_store_of_another_gitlab_says_so_and_sends_nothing(
    store: Store, tmp_path: Path, live_sim: SimulatedGitLab
) -> None:
    """The URL and token work, the store holds another instance's history: the first refresh is refused before any
    request, the screen says why and how out (not how to set a token), and the store's data stays readable."""
    from cidash.sync.origin import claim_store_origin

    claim_store_origin(store, "https://gitlab.elsewhere.example")
    requests = live_sim.stats.total_requests
    app = make_app(store, tmp_path, refresher=sync_refresher(client_factory(live_sim), store, Config(), lambda: NOW))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AuthScreen) and not screen.setup_help and screen.has_data
        assert "https://gitlab.elsewhere.example" in screen.reason and "--accept-origin" in screen.reason
        assert live_sim.stats.total_requests == requests
        await pilot.press("c")
        await settle(pilot)
        assert app.screen is not screen and app.health is not None


async def test_setup_screen_offers_continue_only_with_data(tmp_path: Path) -> None:
    from cidash.errors import ConfigError

    with Store.open(tmp_path / "empty.db") as empty:
        app = make_app(empty, tmp_path, startup_error=ConfigError("no GitLab URL configured"))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, AuthScreen) and not screen.has_data
            shown = {b.description for (_, b, enabled, _) in app.active_bindings.values() if b.show and enabled}
            assert "Continue offline" not in shown and "Quit" in shown
            await pilot.press("c")
            assert app.screen is screen


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
    notices = record_notices(app)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("b")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert "read-only" in str(app.header.render())
        assert any("read-only" in n.message for n in notices)


# ---------------------------------------------------------------------------------------------------------------
# Snapshots (pytest-textual-snapshot): every tab at 120x36, Health at 80x24
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tab", ["1", "2", "3", "4", "5", "6"])
def test_snapshot_tabs(snap_compare: Any, store: Store, tmp_path: Path, tab: str) -> None:
    """Each tab at 120x36 on the synced 8-day migration story: 1 Health's verdict, period and one row per criterion
    with its sparkline; 2 Pipelines newest first with start-up, cache and image; 3 Start-up's phase table, the
    per-digest table and the daily chart with the migration mark; 4 Caches' per-key rates with the `default` and
    stale flags; 5 Images' tags with the size chart and target; 6 Compare's baseline/candidate specs and verdicts.
    The header says "actions disabled: no GitLab connection" (the app has no actions)."""
    app = make_app(store, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press(tab)
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_health_80x24(snap_compare: Any, store: Store, tmp_path: Path) -> None:
    """Health in the smallest supported terminal: the verdict and the period wrap, the Baseline column gives way
    and every criterion keeps its status, value, target and change."""
    app = make_app(store, tmp_path)
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle)


@pytest.mark.parametrize("tab", ["2", "3", "4", "5", "6"])
def test_snapshot_narrow_tabs_stack(snap_compare: Any, store: Store, tmp_path: Path, tab: str) -> None:
    """Every tab at 80x24: Start-up and Images stack their two halves (the App's -narrow class) and scroll;
    Pipelines, Caches and Compare keep their most telling columns first; the footer keeps quit and export."""
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
    """Enter on the newest pipeline: its header line (ref @ sha, status, source, created, duration, job count), the
    phase legend and one row per job with stage, status, duration, start-up, a phase bar and its cache outcome."""
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
        await pilot.press("K")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        plan = app.screen.plan
        assert any("go.mod" in line for line in plan.diff)
        assert any(line.startswith("GitLab on main") for line in plan.lines)
        await pilot.press("escape")
        await settle(pilot)
        assert (checkout / ".cache-key").read_text(encoding="utf-8") == stale
        await pilot.press("K")
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
    notices = record_notices(app)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        if failed:
            assert isinstance(app.screen, ConfirmScreen)
            assert app.screen.plan.dry_run.endswith(f"/jobs/{failed[-1].id}/retry")
        else:  # every failed build was already retried: refused in words, nothing sent
            assert not isinstance(app.screen, ConfirmScreen)
            assert any(n.title == "Refused" and "build-ci-image" in n.message for n in notices)
            if store.jobs(project.id, name="build-ci-image", status="failed", include_retried=True):
                assert any("already retried" in n.message for n in notices)
    assert live_sim.stats.mutating_requests == 0


def test_snapshot_light_theme_startup(snap_compare: Any, store: Store, tmp_path: Path) -> None:
    """ctrl+t then the Start-up tab: the same tables and daily chart as tab 3 (migration mark included), drawn in
    the light theme (dark text on a light background)."""
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
    """Enter on Health's first row opens the evidence of "CI image size" (the image, its digest and the tag table);
    ? opens the key list grouped by purpose with each key's command and what it does. Both say Esc closes."""
    app = make_app(store, tmp_path)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press(*keys)
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


# ---------------------------------------------------------------------------------------------------------------
# Keys people already have (issue 16)
# ---------------------------------------------------------------------------------------------------------------


async def test_vim_keys_move_in_every_table(store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for tab, selector in (("1", "#health-table"), ("2", "#pipelines-table"), ("4", "#cache-table")):
            await pilot.press(tab)
            await settle(pilot)
            table = app.query_one(selector, DataTable)
            assert app.focused is table and table.row_count > 2, selector
            await pilot.press("j", "j")
            assert table.cursor_row == 2, selector
            await pilot.press("k")
            assert table.cursor_row == 1, selector
            await pilot.press("G")
            assert table.cursor_row == table.row_count - 1, selector
            await pilot.press("g")
            assert table.cursor_row == 0, selector
        assert not any(isinstance(s, ConfirmScreen) for s in app.screen_stack)  # k moved, it did not plan keys


async def test_table_header_follows_rows_measured_after_a_paint() -> None:
    """A paint between adding rows and the idle that measures them must not leave the header at the old widths
    (the snapshot flake behind Health's modals: the header narrower than the rows)."""
    from textual.app import App, ComposeResult

    from cidash.tui.widgets.table import NavTable

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield NavTable(id="t")

    app = One()
    async with app.run_test(size=(80, 10)) as pilot:
        table = app.query_one(NavTable)
        table.add_columns("A", "B")
        table.add_row("x", "y")
        await pilot.pause()
        table.clear()
        table.add_row("a much longer cell", "y")
        table.render_line(0)  # painted before the idle
        await pilot.pause()
        header, row = table.render_line(0).text, table.render_line(1).text
    assert header.index("B") == row.index("y")


async def test_escape_leaves_every_input(store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await settle(pilot)
        box = app.query_one("#baseline-spec", Input)
        box.focus()
        await pilot.pause()
        await pilot.press("escape")
        assert app.focused is app.query_one("#compare-table", DataTable)
        await pilot.press("1")  # a tab key again, not typed into the box
        assert app.query_one("#tabs").active == "health"  # type: ignore[attr-defined]
        await pilot.press("4", "slash")
        assert app.focused is app.query_one("#cache-filter", Input)
        await pilot.press("escape")
        assert app.focused is app.query_one("#cache-table", DataTable)
        assert app.query_one("#cache-filter", Input).has_class("hidden")


async def test_ctrl_c_quits_even_from_an_input_and_help_lists_quit(store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        entries = {title: keys for keys, title, _ in app.screen.entries}
        assert "ctrl+c" in entries["Quit"] and entries["First / last"] == "g / G" and "First error" in entries
        await pilot.press("escape", "2", "slash")
        assert isinstance(app.focused, Input)
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert app.return_code is not None or not app.is_running


async def test_slash_is_offered_only_where_it_works(store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.check_action("filter", ()) is True
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PipelineScreen)
        assert app.check_action("filter", ()) is False
        footer_keys = {b.key for (_, b, enabled, _) in app.active_bindings.values() if b.show and enabled}
        assert "slash" not in footer_keys


async def test_open_and_copy_build_links_from_the_configured_origin(store: Store, tmp_path: Path) -> None:
    opened: list[str] = []
    app = make_app(store, tmp_path, gitlab_url="https://gitlab.example.com/", opener=lambda u: bool(opened.append(u)))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        project = store.projects()[0]
        await pilot.press("2")
        await settle(pilot)
        newest = app.query_one(PipelinesView).highlighted_pipeline_id()
        await pilot.press("o")
        assert opened == [f"https://gitlab.example.com/{project.path}/-/pipelines/{newest}"]
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PipelineScreen)
        await pilot.press("y")
        job = app.screen.highlighted_job_id()
        assert app.clipboard == f"https://gitlab.example.com/{project.path}/-/jobs/{job}"


# ---------------------------------------------------------------------------------------------------------------
# The job log (issue 16)
# ---------------------------------------------------------------------------------------------------------------


async def open_log(app: CidashApp, pilot: Pilot[None], status: str = "success") -> JobLogScreen:
    await settle(pilot)
    await pilot.press("2")
    await settle(pilot)
    await pilot.press("enter")
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, PipelineScreen)
    index = next(i for i, r in enumerate(screen.rows) if r.job.status == status)
    screen.query_one("#jobs-table", DataTable).move_cursor(row=index)
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(app.screen, JobLogScreen)
    return app.screen


async def open_job(app: CidashApp, pilot: Pilot[None], status: str) -> int:
    """Open the log of the first stored job in ``status``, from its pipeline's screen; returns the job id."""
    await settle(pilot)
    job = next(j for j in app.store.jobs(project_id=app.store.projects()[0].id) if j.status == status)
    app.open_pipeline(job.pipeline_id)
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, PipelineScreen)
    index = next(i for i, r in enumerate(screen.rows) if r.job.id == job.id)
    screen.query_one("#jobs-table", DataTable).move_cursor(row=index)
    await pilot.press("enter")
    await settle(pilot)
    return job.id


async def test_job_log_is_dense_searchable_and_keeps_its_place(
    store: Store, tmp_path: Path, live_sim: SimulatedGitLab
) -> None:
    from cidash.tui.widgets.loglines import LogLines

    app = make_app(store, tmp_path, log_fetcher=log_fetcher(client_factory(live_sim)))
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_log(app, pilot)
        view = screen.query_one(LogLines)
        named = [i for i, s in enumerate(screen.sections) if s.name]
        headers = [r for r in view.rows if r[1] == -1]
        assert len(headers) == len(named) >= 5  # one row per section
        assert len(view.rows) < 34  # folded: the whole log fits 120x36
        # + keeps the viewport: the row at the top stays at the top
        await pilot.press("j", "j", "j")
        top = view.rows[view.scroll_offset.y]
        cursor = view.rows[view.cursor]
        await pilot.press("plus")
        await pilot.pause()
        assert view.rows[view.scroll_offset.y] == top and view.rows[view.cursor] == cursor
        assert len(view.rows) > len(headers) + 5
        await pilot.press("minus")
        # search: / opens the box, Enter finds and unfolds, n/N cycle, Esc leaves the box not the screen
        await pilot.press("slash", *"cache", "enter")
        await pilot.pause()
        assert screen.matches and view.needle == "cache"
        first = screen.match
        await pilot.press("n")
        assert screen.match == (first + 1) % len(screen.matches)
        await pilot.press("N")
        assert screen.match == first
        assert view.rows[view.cursor] == screen.matches[first]
        await pilot.press("slash", "escape")
        assert isinstance(app.screen, JobLogScreen) and app.focused is view
        await pilot.press("escape")
        assert isinstance(app.screen, PipelineScreen)


async def test_failed_job_log_jumps_to_the_first_error(store: Store, tmp_path: Path, live_sim: SimulatedGitLab) -> None:
    from cidash.tui.logview import first_error
    from cidash.tui.widgets.loglines import LogLines

    app = make_app(store, tmp_path, log_fetcher=log_fetcher(client_factory(live_sim)))
    async with app.run_test(size=SIZE) as pilot:
        await open_job(app, pilot, "failed")
        log = app.screen
        assert isinstance(log, JobLogScreen)
        error = first_error(log.sections)
        assert error is not None
        await pilot.press("E")
        view = log.query_one(LogLines)
        assert view.rows[view.cursor] == error


async def test_manual_job_that_never_ran_says_so(store: Store, tmp_path: Path, live_sim: SimulatedGitLab) -> None:
    from cidash.tui.widgets.loglines import LogLines

    app = make_app(store, tmp_path, log_fetcher=log_fetcher(client_factory(live_sim)))
    async with app.run_test(size=SIZE) as pilot:
        manual_id = await open_job(app, pilot, "manual")
        view = app.screen.query_one(LogLines)
        assert "manual job has never run" in view.empty_text
        assert live_sim.stats.count(f"/jobs/{manual_id}/trace") == 0


@pytest.mark.parametrize("size", [SIZE, (80, 24)], ids=["120x36", "80x24"])
def test_snapshot_dense_job_log(
    snap_compare: Any, store: Store, tmp_path: Path, live_sim: SimulatedGitLab, size: tuple[int, int]
) -> None:
    """A failed job's log, folded (one row per section), the cursor on its first error."""
    app = make_app(store, tmp_path, log_fetcher=log_fetcher(client_factory(live_sim)))

    async def run_before(pilot: Pilot[None]) -> None:
        await open_job(app, pilot, "failed")
        await pilot.press("E")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


async def test_80x24_tables_keep_their_telling_columns_first(store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        table = app.query_one("#pipelines-table", DataTable)
        labels = [str(c.label) for c in table.ordered_columns]
        assert labels[:6] == ["Pipeline", "Status", "Ref", "Start-up", "Cache", "Image"]
        assert sum(c.get_render_width(table) for c in table.ordered_columns[:6]) <= 80
        assert table.fixed_columns == 1
        await pilot.press("6")
        await settle(pilot)
        compare = app.query_one("#compare-table", DataTable)
        assert [str(c.label) for c in compare.ordered_columns][:3] == ["Metric", "Change [95 % CI]", "Verdict"]
        assert sum(c.get_render_width(compare) for c in compare.ordered_columns[:3]) <= 80
        box = app.query_one("#baseline-spec", Input)
        assert box.region.width >= len(box.value)  # the SPEC box fits its preset


# ---------------------------------------------------------------------------------------------------------------
# Live screens (issue 16)
# ---------------------------------------------------------------------------------------------------------------


async def test_pipeline_screen_shows_a_retry_it_started(
    store: Store, tmp_path: Path, live_sim: SimulatedGitLab
) -> None:
    """After a retry from a pipeline screen, that screen (not only the tabs under it) shows the new attempt and
    the follow's progress: pushed screens reload with every refresh."""
    project = store.projects()[0]
    target = store.jobs(project.id, status="success", include_retried=False)[-1]
    factory = client_factory(live_sim)
    actions = CoreActions(factory, store, Config(), clock=lambda: NOW, follow_timeout=0.5)
    refresher = sync_refresher(factory, store, Config(), lambda: NOW)
    app = make_app(store, tmp_path, actions=actions, refresher=refresher)
    progress: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.open_pipeline(target.pipeline_id)
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, PipelineScreen)
        original = screen.show_activity
        screen.show_activity = lambda text: (progress.append(text), original(text))  # type: ignore[method-assign]
        loads_before = screen.loads
        jobs = [r.job.id for r in screen.rows]
        screen.query_one("#jobs-table", DataTable).move_cursor(row=jobs.index(target.id))
        await pilot.press("t")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
        await settle(pilot)
        assert app.screen is screen
        assert screen.loads > loads_before, "the screen reloaded after the refresh that followed the retry"
        assert screen.highlighted_job_id() == target.id  # the cursor stayed on its job
        loads_before = screen.loads
        await pilot.press("r")  # every refresh reloads the pushed screens too
        await settle(pilot)
        assert screen.loads > loads_before
    assert any(text.startswith("retry: job ") for text in progress)


async def test_running_job_log_tails(store: Store, tmp_path: Path) -> None:
    import dataclasses

    from cidash.tui.data import JobRow
    from cidash.tui.widgets.loglines import LogLines

    chunks = ["section_start:1:step_script\r\x1b[0KExecuting\n$ make\n"]
    app = make_app(store, tmp_path, log_fetcher=lambda project, job: "".join(chunks).encode())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        job = next(j for j in store.jobs(project_id=store.projects()[0].id) if j.status == "success")
        running = dataclasses.replace(job, status="running", finished_at=None)
        await app.push_screen(JobLogScreen(JobRow(running, None)))
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, JobLogScreen)
        view = screen.query_one(LogLines)
        await pilot.press("G")
        assert view.cursor == len(view.rows) - 1 == 1
        chunks.append("building 1\nbuilding 2\n")
        app.refresh_screens()  # what each poll does
        await settle(pilot)
        assert [view.sections[si].lines[li] for si, li in view.rows[-2:]] == ["building 1", "building 2"]
        assert view.cursor == len(view.rows) - 1  # the cursor on the last line follows the tail


async def test_unknown_status_filter_is_reported(store: Store, tmp_path: Path) -> None:
    app = make_app(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2", "slash", *"status:bogus")
        await settle(pilot)
        summary = str(app.query_one("#pipelines-summary").render())
        assert "0 of 0 pipelines" in summary and "unknown status `bogus`" in summary
        await pilot.press("ctrl+u", *"status:success")
        await settle(pilot)
        assert "unknown status" not in str(app.query_one("#pipelines-summary").render())


# ---------------------------------------------------------------------------------------------------------------
# A failing project (issue 16: not every picture is green)
# ---------------------------------------------------------------------------------------------------------------

FAILING = Scenario(
    days=8,
    pipelines_per_day=4,
    migration_day=5,
    with_docs_project=False,
    alpine_size=420 * 1_000_000,
    migrated_build_failure_rate=0.3,
    pull_probability=0.95,
)


@pytest.fixture(scope="session")
def failing_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tui-failing") / "store.db"
    with SimulatedGitLab(FAILING) as sim, Store.open(path) as store:
        with client_factory(sim)() as client:
            options = SyncOptions.from_config(Config(), since="all", now=FAILING.end)
            sync_project(client, store, sim.project_path, options=options, now=FAILING.end)
        unbind_origin(store)
        store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.mark.parametrize(
    ("tab", "size"),
    [("1", SIZE), ("1", (80, 24)), ("4", SIZE), ("4", (80, 24))],
    ids=["health-120x36", "health-80x24", "caches-120x36", "caches-80x24"],
)
def test_snapshot_failing_project(
    snap_compare: Any, failing_db: Path, tmp_path: Path, tab: str, size: tuple[int, int]
) -> None:
    """A failing project's Health (FAIL rows, red verdict) and its Caches tab on a stale key (fell back to
    `default`), at both sizes."""
    copy = tmp_path / "store.db"
    shutil.copy(failing_db, copy)
    with Store.open(copy) as failing_store:
        app = CidashApp(failing_store, Config(), clock=lambda: FAILING.end, cache_dir=tmp_path / "cache", poll=False)

        async def run_before(pilot: Pilot[None]) -> None:
            await settle(pilot)
            assert app.health is not None and not app.health.ok
            await pilot.press(tab)
            await settle(pilot)

        assert snap_compare(app, terminal_size=size, run_before=run_before)


# ---------------------------------------------------------------------------------------------------------------
# Snapshots of the confirmations, the auth screen, an empty store and the local checkout (issue 14)
# ---------------------------------------------------------------------------------------------------------------


def test_snapshot_rebuild_confirmation(
    snap_compare: Any, store: Store, tmp_path: Path, live_sim: SimulatedGitLab
) -> None:
    """`b` on Health: the confirmation names the project (and its id), the ref, the effect (play the manual
    build-ci-image job of the latest pipeline on main, both by number) and the one request it would send (its dry
    run), and offers y to confirm and Esc to cancel; nothing is sent while it is open."""
    actions = CoreActions(client_factory(live_sim), store, Config(), clock=lambda: NOW, follow_timeout=0.5)
    app = make_app(store, tmp_path, actions=actions)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    assert live_sim.stats.mutating_requests == 0


def stale_checkout(root: Path, content: dict[str, str] | None = None) -> Path:
    """A checkout of the default critical files (``content`` or a line each) whose .cache-key is current except for
    go.mod's line."""
    from cidash.cachekey import checksum_lines
    from cidash.config import DEFAULT_CRITICAL_FILES

    for name in DEFAULT_CRITICAL_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text((content or {}).get(name, f"content of {name}\n"), encoding="utf-8")
    lines = checksum_lines(list(DEFAULT_CRITICAL_FILES), root).splitlines(keepends=True)
    stale = ["0" * 64 + "  go.mod\n" if line.endswith("  go.mod\n") else line for line in lines]
    (root / ".cache-key").write_text("".join(stale), encoding="utf-8")
    return root


def test_snapshot_keys_confirmation(
    snap_compare: Any, store: Store, tmp_path: Path, live_sim: SimulatedGitLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`K` with a .cache-key stale for go.mod: the confirmation names go.mod as the one change, shows the git
    commands to commit the result (cidash never commits), what GitLab computed on main, the diff of .cache-key (one
    line) and the file it would write (relative: the checkout is the working directory), then y/Esc; the file is
    not written while it is open."""
    monkeypatch.chdir(tmp_path)
    stale_checkout(tmp_path / "checkout")
    checkout = Path("checkout")
    actions = CoreActions(client_factory(live_sim), store, Config(), clock=lambda: NOW, checkout=checkout)
    app = make_app(store, tmp_path, actions=actions)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("K")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
    assert (checkout / ".cache-key").read_text(encoding="utf-8").startswith("0" * 64)


def test_snapshot_auth_screen_after_a_rejected_token(
    snap_compare: Any, store: Store, tmp_path: Path, live_sim: SimulatedGitLab
) -> None:
    """GitLab answered 401 to the first refresh: the screen says the token was rejected, how to set a URL and a
    token (never the token itself), and offers c (continue with the stored data, read-only) and q."""
    factory = client_factory(live_sim, token="not-the-token")
    app = make_app(store, tmp_path, refresher=sync_refresher(factory, store, Config(), lambda: NOW))

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        assert isinstance(app.screen, AuthScreen)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_empty_store_without_a_connection(snap_compare: Any, tmp_path: Path) -> None:
    """A first start with nothing configured and an empty store: the set-up screen says what is missing and how
    to configure it or try the demo, and offers only q (there is no data to continue with)."""
    from cidash.errors import ConfigError

    with Store.open(tmp_path / "empty.db") as empty:
        app = make_app(empty, tmp_path, startup_error=ConfigError("no GitLab URL configured"))
        assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_snapshot_empty_store_health(snap_compare: Any, tmp_path: Path) -> None:
    """An empty store with no start-up error: Health says there is nothing synced yet and what to run, instead of
    an empty table or a crash."""
    with Store.open(tmp_path / "empty.db") as empty:
        app = make_app(empty, tmp_path)
        assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_snapshot_local_checkout_panel(
    snap_compare: Any, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Caches tab run inside a git checkout: under the key table, the local panel says .cache-key is stale and
    that go.mod (only) changed, with both digests; the key GitLab will compute for HEAD for the job that uses it
    (prefix `deps`); and the key last seen in logs on main."""
    from gitrepo_helpers import commit, init_repo

    for var in ("GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"):  # a fixed commit id, so the panel's HEAD is stable
        monkeypatch.setenv(var, "2026-11-04T12:00:00+00:00")
    ci = "test:\n  cache:\n    key:\n      files: [.cache-key]\n      prefix: deps\n    policy: pull\n  script: [x]\n"
    checkout = stale_checkout(init_repo(tmp_path / "checkout"), {".gitlab-ci.yml": ci})
    commit(checkout, "init")
    app = make_app(store, tmp_path, checkout=checkout)

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


async def test_a_refresh_reads_the_whole_history_again_only_for_a_history_tab_on_screen(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh that changed the store while the Health is shown recomputes the Health but leaves the Start-up,
    Caches and Images tabs (the whole history: seconds and hundreds of MB on a big store) until one is shown; while
    one is shown, each such refresh recomputes them at once. The Health cache is written either way."""
    from cidash.tui.adapters import RefreshResult

    widened = count_widened(monkeypatch)
    app = make_app(
        store,
        tmp_path,
        refresher=lambda project, progress: RefreshResult("ok"),  # changed: True
        refresh_on_start=False,  # (one landing during the first read: the next test)
    )
    cache = health_cache_path(tmp_path / "cache", store.path, store.projects()[0].id)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert widened == ["platform/app"]  # the first load fills the tabs in the background
        cache.unlink()
        await pilot.press("r")
        await settle(pilot)
        assert app.refresh_count == 1 and widened == ["platform/app"] and app._views_stale
        assert load_health(cache) is not None  # the new Health is cached all the same
        await pilot.press("4")
        await settle(pilot)
        assert widened == ["platform/app"] * 2 and not app._views_stale
        assert [r[0] for r in table_rows(app, "#cache-table")]
        await pilot.press("r")
        await settle(pilot)
        assert widened == ["platform/app"] * 3  # shown: recomputed with the refresh
        await pilot.press("1")
        await pilot.press("5")  # nothing changed since: not read again
        await settle(pilot)
        assert widened == ["platform/app"] * 3


def count_widened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The projects whose whole history Snapshot.widened() reads, one entry a read, in order."""
    from cidash.snapshot import Snapshot

    widened: list[str] = []
    original = Snapshot.widened

    def counting(self: Snapshot) -> Snapshot:
        widened.append(self.project.path)
        return original(self)

    monkeypatch.setattr(Snapshot, "widened", counting)
    return widened


def hold_caches_view(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Hold the Caches tab's view back (the history tabs' views worker waits in it) until the event is set."""
    import cidash.tui.data as data

    release = threading.Event()
    original = data.caches_view

    def slow_caches_view(*args: Any) -> Any:
        assert release.wait(30)
        return original(*args)

    monkeypatch.setattr(data, "caches_view", slow_caches_view)
    return release


def _loading_note(app: CidashApp, tab: str) -> str | None:
    """The text covering a tab's view while it is read (TabView.show_loading), None when it is uncovered."""
    view = app.view(tab)
    assert view is not None
    cover = view._cover_widget
    return None if cover is None else str(cast(Static, cover).render())


async def test_a_history_tab_says_it_is_reading_the_history_until_its_view_comes(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Start-up, Caches and Images tabs read the whole history (seconds on a big store): until their views come
    a tab says so instead of sitting empty, and after a switch to another project it never shows the previous
    project's history as if it were this one's."""
    from cidash.models import Project

    release = hold_caches_view(monkeypatch)
    store.upsert_project(Project(99, "platform/docs", "https://gitlab.example.com/platform/docs", "main"))
    app = make_app(store, tmp_path, project="platform/app")
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(500):  # the Health on screen; the history tabs' views held back
            await pilot.pause(0.02)
            if app.snapshot is not None and any(w.group == "views" and w.is_running for w in app.workers):
                break
        await pilot.press("4")
        await pilot.pause()
        assert app.caches_tab.loading
        assert "whole synced history" in (_loading_note(app, "caches") or "")
        assert table_rows(app, "#cache-table") == []
        release.set()
        await settle(pilot)
        assert not app.caches_tab.loading and _loading_note(app, "caches") is None
        rows = table_rows(app, "#cache-table")
        assert rows
        await pilot.press("3")  # a tab built after the views came is not covered
        await settle(pilot)
        assert not app.startup_tab.loading

        release.clear()
        await pilot.press("p")
        await pilot.pause()
        await pilot.press("down", "enter")
        await pilot.pause(0.2)
        assert app.project is not None and app.project.path == "platform/docs"
        assert app.startup_tab.loading and app.caches_tab.loading  # not platform/app's history under docs' name
        release.set()
        await settle(pilot)
        assert not app.startup_tab.loading and not app.caches_tab.loading
        assert table_rows(app, "#startup-digests") == []  # docs' own (empty) history


async def test_a_history_tab_whose_view_cannot_be_read_is_uncovered_and_the_error_said(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cidash.tui.data as data
    from cidash.errors import StoreError

    def failing(*args: Any) -> Any:
        raise StoreError("database disk image is malformed")

    monkeypatch.setattr(data, "caches_view", failing)
    app = make_app(store, tmp_path)
    said: list[tuple[str, str]] = []
    notify = app.notify

    def record(message: str, **kw: Any) -> None:
        said.append((message, kw.get("severity", "information")))
        notify(message, **kw)

    app.notify = record  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await settle(pilot)
        assert any("malformed" in m and sev == "error" for m, sev in said)
        assert not app.caches_tab.loading and _loading_note(app, "caches") is None


async def test_the_history_takes_the_windows_place_before_the_tabs_views_are_computed(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the whole history is read for the other tabs, it replaces the window the Health came from (same
    verdicts) before their views are computed: the window is no longer held while they are (at 50,000 pipelines
    ~100 MB less at the peak), and the evidence and a comparison read the history, whose jobs are read narrow."""
    import weakref

    release = hold_caches_view(monkeypatch)
    windows: list[weakref.ref[Any]] = []  # each window snapshot as it is taken (polling could miss it on a busy box)
    take = CidashApp.on_cidash_app_snapshot_ready

    def taken(self: CidashApp, message: Any) -> None:
        take(self, message)
        if message.snapshot.spans is not None:
            windows.append(weakref.ref(message.snapshot))

    monkeypatch.setattr(CidashApp, "on_cidash_app_snapshot_ready", taken)
    app = make_app(store, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        for _ in range(1000):
            await pilot.pause(0.02)
            snap = app.snapshot
            if windows and snap is not None and snap.spans is None:
                break
        window = windows[0] if windows else None
        assert window is not None and app.snapshot is not None
        assert app.snapshot.spans is None and app.snapshot.narrow  # the history, while the views are computed
        assert app.caches_tab.view is None  # (still held back)
        del snap
        gc.collect()
        assert window() is None  # nothing holds the window any more
        release.set()
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        assert table_rows(app, "#cache-table")
        app.open_evidence("startup_improvement")
        await pilot.pause()
        assert isinstance(app.screen, EvidenceScreen)


async def test_a_refresh_during_the_first_history_read_waits_for_it_instead_of_reading_beside_it(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At start the first refresh often changes the store while the other tabs' first read of the whole history
    runs (seconds on a big store): the tabs then read it again, but after that read, never beside it (two whole
    histories in memory at once)."""
    from cidash.tui.adapters import RefreshResult

    widened = count_widened(monkeypatch)
    release = hold_caches_view(monkeypatch)
    app = make_app(store, tmp_path, refresher=lambda project, progress: RefreshResult("ok"))  # at start, changed
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")  # a history tab on screen: a refresh's new data is read at once
        for _ in range(1000):
            await pilot.pause(0.02)
            if app.refresh_count >= 1 and widened and not app.refreshing and app._views_again:
                break
        await pilot.pause(0.2)
        assert app.refresh_count >= 1 and widened == ["platform/app"]  # the refresh's read waits
        assert app._views_reading and app._views_again
        release.set()
        await settle(pilot)
        assert widened == ["platform/app"] * 2  # read again once the first ended
        assert not app._views_reading and not app._views_again and not app._views_stale
        assert table_rows(app, "#cache-table") and not app.caches_tab.loading


async def test_the_history_tabs_say_the_first_sync_of_an_empty_store_runs(tmp_path: Path) -> None:
    """While the first sync fills an empty store, the Start-up, Caches and Images tabs say so (as the Health does)
    instead of showing empty tables; once it brought the project, they read its history, then show it."""
    from cidash.models import Project
    from cidash.tui.adapters import RefreshResult

    release = threading.Event()
    with Store.open(tmp_path / "empty.db") as empty:

        def first_sync(project: Any, progress: Any) -> RefreshResult:
            assert release.wait(30)
            empty.upsert_project(Project(42, "platform/app", "https://gitlab.example.com/platform/app", "main"))
            return RefreshResult("ok")

        app = make_app(empty, tmp_path, refresher=first_sync)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("4")
            await pilot.pause()
            assert app.project is None and app.refreshing and app.caches_tab.loading
            assert "the first sync from GitLab is running" in (_loading_note(app, "caches") or "")
            release.set()
            await settle(pilot)
            assert app.project is not None and app.project.path == "platform/app"
            assert not app.caches_tab.loading and _loading_note(app, "caches") is None
