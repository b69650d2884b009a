"""The cidash dashboard: a Textual App over the store, the criteria and the actions layer.

Everything is injected (harlequin style): the store, the config, a clock, a client factory, a refresher (sync)
and the actions. ``cidash tui`` wires the real ones; ``cidash demo`` and the tests wire the simulator and a frozen
clock. Blocking work (store queries, criteria, sync, actions) runs in thread workers that post messages back;
polling re-arms a one-shot timer after each refresh finishes (never ``set_interval``), and skips while the
terminal is hidden or polling is paused (``s``).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.geometry import Size
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import TabbedContent
from textual.worker import get_current_worker

from cidash.config import Config
from cidash.errors import AuthError, CidashError, ConfigError, PermissionDenied, StoreOriginError, redact
from cidash.models import Project, RateLimitState
from cidash.outfile import STDOUT, write_text
from cidash.store import Store
from cidash.textsafe import clean
from cidash.tui.adapters import (
    ActionOutcome,
    ActionPlan,
    Actions,
    Clock,
    Refresher,
    RefreshResult,
    UnavailableActions,
    system_clock,
)
from cidash.tui.commands import CommandsProvider, bindings
from cidash.tui.healthcache import (
    Health,
    default_cache_dir,
    health_cache_path,
    load_health,
    save_health,
)
from cidash.tui.links import web_url
from cidash.tui.prefetch import chosen_project
from cidash.tui.screens.base import TabView
from cidash.tui.screens.health import HealthView
from cidash.tui.widgets.deferred import DashPane, DeferredPane
from cidash.tui.widgets.footer import KeyFooter
from cidash.tui.widgets.header import StatusHeader

LogFetcher = Callable[[int, int], bytes]


if TYPE_CHECKING:
    from cidash.compare import Comparison
    from cidash.tui.data import CachesView, ImagesView, Snapshot, StartupView
    from cidash.tui.prefetch import FirstHealthProcess
    from cidash.tui.screens.caches import CachesTab
    from cidash.tui.screens.compare import CompareTab
    from cidash.tui.screens.images import ImagesTab
    from cidash.tui.screens.pipelines import PipelinesView
    from cidash.tui.screens.startup import StartupTab

# Imported where they are used, not here: the core's load and criteria (cidash.tui.data), the pushed screens and
# the modals are not needed for the first screen, and importing them is CPU before the first paint.


#: Terminal columns under which the two-column layouts (Start-up tables, Images) stack (the "-narrow" class).
NARROW_WIDTH = 100
#: The tabs whose views read the whole history (Snapshot.widened()): after a refresh that brought new data they
#: are recomputed at once only while one of them is on screen, else when one is next shown.
HISTORY_TABS = frozenset({"startup", "caches", "images"})

_T = TypeVar("_T", bound=TabView)

#: What the tabs say while the first sync of an empty store runs.
FIRST_SYNC_TEXT = "The store holds no project yet: the first sync from GitLab is running (progress in the header)."


class DashScreen(Screen[None]):
    """The tabs' screen. A resize to the size it already has is not laid out again: Textual 8 re-lays-out and
    repaints the whole screen on every Resize, and the first screen gets three of the same size while the
    dashboard starts (the App's, the terminal's, its own first layout's)."""

    _resized_to: Size | None = None
    _resumed = False

    def on_resize(self, event: events.Resize) -> None:
        if event.size == self._resized_to:
            event.prevent_default()  # Screen's own handler (the layout) does not run
        self._resized_to = event.size

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        """The first resume (the App showing this screen at start) does not restyle every widget: each was styled
        as it mounted, a moment before, against the whole stylesheet (the App's and, scoped to each widget, its
        own), and focus and class changes since restyled what they touch (~10 ms, the widest restyle of a start).
        Runs before Screen's own handler; later resumes (a pushed screen popped) restyle as Textual does."""
        if not self._resumed:
            self._resumed = True
            event.refresh_styles = False


class CidashApp(App[None]):
    """The dashboard. See the module docstring for what is injected."""

    CSS_PATH = Path(__file__).parent / "cidash.tcss"  # the first screen's rules
    #: The rules of everything else (the other tabs, pushed screens, the narrow layout): :meth:`load_more_css`.
    MORE_CSS_PATH = Path(__file__).parent / "cidash-more.tcss"
    TITLE = "cidash"
    BINDINGS: ClassVar[list[BindingType]] = bindings()  # type: ignore[assignment]
    COMMANDS = App.COMMANDS | {CommandsProvider}

    # -- messages posted by workers ---------------------------------------------------------------------------

    class SnapshotReady(Message):
        def __init__(self, snapshot: Snapshot, health: Health) -> None:
            super().__init__()
            self.snapshot = snapshot
            self.health = health

    class FirstHealth(Message):
        """The Health's verdicts and values, before the baselines and series (a start with no cached Health);
        ``painted`` is set once it is on screen (the worker waits for it before the heavier load)."""

        def __init__(self, health: Health, painted: threading.Event) -> None:
            super().__init__()
            self.health = health
            self.painted = painted

    class Widened(Message):
        """The snapshot the Health came from (the window) read over the whole history: it takes the window's place
        before the other tabs' views are computed from it, so the window's dataset is freed meanwhile."""

        def __init__(self, window: Snapshot, widened: Snapshot) -> None:
            super().__init__()
            self.window: Snapshot | None = window  # None once handled (Textual may hold a message a while longer)
            self.widened = widened

    class ViewsReady(Message):
        def __init__(self, startup: StartupView, caches: CachesView, images: ImagesView, project_id: int) -> None:
            super().__init__()
            self.startup = startup
            self.caches = caches
            self.images = images
            self.project_id = project_id  # the project whose history they show

    class HistoryRead(Message):
        """A read of the whole history for the Start-up, Caches and Images tabs ended (views posted, or not)."""

    class LocalReady(Message):
        def __init__(self, lines: list[str]) -> None:
            super().__init__()
            self.lines = lines

    class RefreshDone(Message):
        def __init__(self, result: RefreshResult | None, error: CidashError | None) -> None:
            super().__init__()
            self.result = result
            self.error = error

    class Activity(Message):
        """Progress text from a worker; coalesced (only the newest matters)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, CidashApp.Activity)

    class CompareReady(Message):
        def __init__(self, comparison: Comparison) -> None:
            super().__init__()
            self.comparison = comparison

    class Failed(Message):
        def __init__(self, error: CidashError, *, views: bool = False) -> None:
            super().__init__()
            self.error = error
            self.views = views  # the history tabs' views could not be read

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        project: str | None = None,
        clock: Clock = system_clock,
        client_factory: Callable[[], Any] | None = None,
        refresher: Refresher | None = None,
        actions: Actions | None = None,
        log_fetcher: LogFetcher | None = None,
        poll: bool = True,
        refresh_on_start: bool = True,
        source: str = "",
        cache_dir: Path | None = None,
        checkout: Path | None = None,
        startup_error: CidashError | None = None,
        gitlab_url: str | None = None,
        has_token: bool = True,
        opener: Callable[[str], bool] | None = None,
        first_health: FirstHealthProcess | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.config = config
        self.clock = clock
        self.client_factory = client_factory
        self.refresher = refresher
        self.actions: Actions = actions or UnavailableActions("no GitLab connection")
        self.log_fetcher = log_fetcher
        self.poll = poll
        self.refresh_on_start = refresh_on_start
        self.source = source
        self.cache_dir = cache_dir or default_cache_dir()
        self.checkout = checkout  # None: no local-checkout panel (the tests' and the demo's case)
        self.startup_error = startup_error
        self.gitlab_url = gitlab_url or config.gitlab.url
        self.has_token = has_token  # False: requests go out without a token, so a 401 means "none configured"
        self.opener = opener  # None: the terminal's browser hand-off (webbrowser locally, a link over SSH)
        self.wanted_project = project
        #: A cold start's first Health, computed by a helper process started before Textual was imported
        #: (:func:`cidash.tui.prefetch.start_first_health`): the loading worker reads it instead of computing it.
        self.first_health = first_health
        self.project: Project | None = None
        self.snapshot: Snapshot | None = None  # the one core snapshot every tab formats
        self._health: Health | None = None  # the Health table of self.snapshot
        self._compared_for: Snapshot | None = None
        self._views_for: int | None = None  # the project whose history the Start-up, Caches and Images tabs show
        self._views_stale = False  # True: they show the history before the last refresh that changed it
        self._views_reading = False  # a read of the whole history for them is running (_read_history_views)
        self._views_again = False  # read it again once that one ends (asked for meanwhile)
        self.last_refresh: datetime | None = None
        self.refreshing = False
        self.paused = False
        self.hidden = False
        self.refresh_count = 0
        self._sync_before: datetime | None = None  # the project's last sync when the running refresh started
        self.failure: CidashError | None = None
        # The views are kept (not queried): App.query_one searches the *active* screen, and results may arrive
        # while a pipeline, a log or a modal is on top.
        self.header = StatusHeader(id="status")
        self.tabs = TabbedContent(initial="health", id="tabs")
        self.health_view = HealthView()
        # The other tabs' views (pipelines_view, startup_tab, ...) are built the first time anything asks for one
        # (their tab shown, data for them): their modules are not imported before the first paint.
        self._poll_timer: Timer | None = None
        self._tick_timer: Timer | None = None
        #: Whether the collector ran when :meth:`_pause_collector` paused it (None: not paused yet; False: resumed).
        self._collector_paused: bool | None = None
        self._more_css_loaded = False
        self.theme = config.tui.theme if config.tui.theme in self.available_themes else "textual-dark"

    # -- the tabs' views ---------------------------------------------------------------------------------------

    @cached_property
    def pipelines_view(self) -> PipelinesView:
        from cidash.tui.screens.pipelines import PipelinesView

        return PipelinesView()

    @cached_property
    def startup_tab(self) -> StartupTab:
        from cidash.tui.screens.startup import StartupTab

        return self._history_tab(StartupTab())

    @cached_property
    def caches_tab(self) -> CachesTab:
        from cidash.tui.screens.caches import CachesTab

        return self._history_tab(CachesTab())

    @cached_property
    def images_tab(self) -> ImagesTab:
        from cidash.tui.screens.images import ImagesTab

        return self._history_tab(ImagesTab())

    def _history_tab(self, tab: _T) -> _T:
        """A Start-up, Caches or Images tab as it is built: covered while its view is read (see _history_loading)."""
        tab.show_loading(*self._history_cover)
        return tab

    @property
    def _history_cover(self) -> tuple[bool, str | None]:
        """Whether the Start-up, Caches and Images tabs are covered, and with what (None: their own text): while
        they hold no view of the project on screen yet (it is being read, the whole history: seconds on a big
        store, or waits for the Health to be read first), and while the first sync of an empty store runs."""
        if self.project is None:
            return self.refreshing, FIRST_SYNC_TEXT
        return self._views_for != self.project.id, None

    def _history_loading(self, on: bool | None = None) -> None:
        """Cover the history tabs built so far as :attr:`_history_cover` says (they would sit empty, or show the
        previous project's history after a switch), uncover them once their views came (``on``: regardless)."""
        cover, text = self._history_cover
        for name in ("startup_tab", "caches_tab", "images_tab"):
            tab = self.__dict__.get(name)
            if tab is not None:
                cast("TabView", tab).show_loading(cover if on is None else on, text)

    @cached_property
    def compare_tab(self) -> CompareTab:
        from cidash.tui.screens.compare import CompareTab

        return CompareTab()

    # -- layout -----------------------------------------------------------------------------------------------

    #: Each tab's view by tab id: the App's attribute that holds it.
    _VIEWS: ClassVar[dict[str, str]] = {
        "health": "health_view",
        "pipelines": "pipelines_view",
        "startup": "startup_tab",
        "caches": "caches_tab",
        "images": "images_tab",
        "compare": "compare_tab",
    }

    def view(self, tab: str) -> TabView | None:
        """The view of the tab ``tab`` (mounted or not yet: see :class:`DeferredPane`; built if it was not yet),
        None for no tab."""
        name = self._VIEWS.get(tab)
        return None if name is None else cast("TabView", getattr(self, name))

    @property
    def views(self) -> dict[str, TabView]:
        """Every tab's view by tab id (each built if it was not yet)."""
        return {tab: cast("TabView", getattr(self, name)) for tab, name in self._VIEWS.items()}

    def get_default_screen(self) -> Screen[None]:
        return DashScreen(id="_default")

    def compose(self) -> ComposeResult:
        self._pause_collector()
        # before the widgets mount: an App class set later restyles every one of them
        self.set_class(self.size.width < NARROW_WIDTH, "-narrow")
        yield self.header
        with self.tabs:
            with DashPane("1 Health", id="health"):
                yield self.health_view
            # the other tabs mount their content when first shown (_tab_shown): not before the first paint
            yield DeferredPane("2 Pipelines", lambda: self.pipelines_view, id="pipelines")
            yield DeferredPane("3 Start-up", lambda: self.startup_tab, id="startup")
            yield DeferredPane("4 Caches", lambda: self.caches_tab, id="caches")
            yield DeferredPane("5 Images", lambda: self.images_tab, id="images")
            yield DeferredPane("6 Compare", lambda: self.compare_tab, id="compare")
        yield KeyFooter()

    def _pause_collector(self) -> None:
        """Pause Python's cyclic garbage collector from the first compose until the first screen is painted
        (:meth:`on_ready`). Composing, styling, laying out and painting the first screen allocate ~100,000 objects
        that all stay alive (widgets, styles, strips); each allocation burst triggered a collection that rescanned
        them and the ~1,000,000 the imports left (a full collection ~10-20 ms, ~40 ms in all before the first
        paint, measured with ``gc.callbacks``). Reference counting frees as usual meanwhile."""
        if self._collector_paused is None:
            self._collector_paused = gc.isenabled()
            gc.disable()

    def _resume_collector(self) -> None:
        """Resume the collector paused by :meth:`_pause_collector` (if it was running then), the objects the start
        left alive moved to its oldest generation first (as :func:`cidash.dataset.gc_paused` does after a load):
        else the first young collection after the pause would walk all of them at once."""
        paused, self._collector_paused = self._collector_paused, False
        if paused:
            gc.freeze()
            gc.unfreeze()
            gc.enable()

    def on_ready(self) -> None:
        self._resume_collector()  # the first screen is painted
        self.load_more_css()

    def load_more_css(self) -> None:
        """Add the rules of everything but the first screen (:attr:`MORE_CSS_PATH`) to the stylesheet, once: after
        the first paint (:meth:`on_ready`; Textual parses them when it next styles a widget), and before a tab's
        content or a pushed screen mounts when that comes first. They match none of the first screen's widgets, so
        nothing is restyled; if a pushed screen or a tab's content is already there (a key pressed before the first
        paint), every widget is restyled once with them."""
        if self._more_css_loaded:
            return
        self._more_css_loaded = True
        path = self.MORE_CSS_PATH
        self.stylesheet.add_source(path.read_text(encoding="utf-8"), read_from=(str(path), ""))
        deferred_shown = any(isinstance(p, DeferredPane) and p.content_shown for p in self.query(DeferredPane))
        if len(self.screen_stack) > 1 or deferred_shown:
            self.refresh_css(animate=False)

    def on_unmount(self) -> None:
        self._resume_collector()  # an App that quits before its first paint

    def _tab_shown(self, tab: str) -> None:
        """Whenever the active tab changes (a key, a click, an action): mount its content if it was deferred."""
        if tab:
            pane = self.tabs.get_pane(tab)
            if isinstance(pane, DeferredPane):
                self.load_more_css()  # (its rules before its content mounts)
                pane.show_content()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < NARROW_WIDTH, "-narrow")  # cidash.tcss stacks wide layouts then

    def on_mount(self) -> None:
        self.set_class(self.size.width < NARROW_WIDTH, "-narrow")
        self.header.source = self.source
        self.header.now = self.clock()
        if self.actions.disabled_reason:
            self.header.notice = f"actions disabled: {self.actions.disabled_reason}"
        self._tick()
        # the first tab's table focused before the first paint: the tab's activation (handled after it) would move
        # the focus there from the tab bar Textual focuses first, restyling and repainting both once more
        self._focus_tab(self.tabs.active or "health")
        self.watch(self.tabs, "active", self._tab_shown)
        self.select_project(self.wanted_project, first=True)

    def select_project(self, wanted: str | None, *, first: bool = False) -> None:
        chosen = chosen_project(self.store.projects(), wanted, self.config)  # the helper's rule too
        if wanted and chosen is None:  # never another project in its place (a typo would show and sync the wrong one)
            self._project_not_found(wanted, first=first)
            return
        self.project = chosen
        self._history_loading()
        configured = self.config.gitlab.projects[0] if self.config.gitlab.projects else ""
        self.header.project = chosen.path if chosen else (wanted or configured)
        if chosen is None:
            self.health_view.waiting(
                FIRST_SYNC_TEXT
                if self.refresher is not None and self.startup_error is None
                else "The store holds no project yet: run 'cidash sync' (or start cidash with a GitLab connection)."
            )
        if first and self.startup_error is not None:
            self._show_auth(self.startup_error)
        if chosen is not None:
            cached = load_health(health_cache_path(self.cache_dir, self.store.path, chosen.id))
            if cached is not None:  # said to be current only if the store was not synced since it was computed
                self.health_view.show_health(
                    cached, cached=True, current=cached.current_for(self.store.last_sync(chosen.id))
                )
            # after the first paint: the heavy load competes with rendering for the GIL; with nothing cached to
            # show, the verdicts and values first (check's load), the baselines and series after them
            helper = self.first_health
            if cached is None and helper is not None and helper.project_id == chosen.id:
                # the worker only waits for the helper process (on its pipe, without the GIL) until its Health
                # comes: started now, that Health can make the first paint
                self.load_data(first=True)
            elif cached is None:
                self.call_after_refresh(self.load_data, first=True)
            else:
                self.call_after_refresh(self.load_data)
            self.call_after_refresh(self._reload_pipelines)
        if first and self.refresh_on_start and self.refresher is not None and self.startup_error is None:
            self.action_refresh()
        elif first:
            self._arm_poll()

    def _reload_pipelines(self) -> None:
        self.pipelines_view.reload()  # (here, after the first paint: the view is built when first asked for)

    def _project_not_found(self, wanted: str, *, first: bool) -> None:
        """``--project X`` (or a chosen X) that the store does not hold: say so, and let the refresh sync X
        itself (GitLab then says whether X exists, as ``cidash sync`` does)."""
        self.project = None
        self.snapshot = None
        self.header.project = wanted
        syncing = self.refresher is not None and self.startup_error is None
        message = f"project {wanted} is not in the store {self.store.path}"
        self.health_view.waiting(
            f"The {message}: syncing it from GitLab (progress in the header)."
            if syncing
            else f"The {message}: run 'cidash sync --project {wanted}' (or start cidash with a GitLab connection)."
        )
        if first:
            self.notify(message[0].upper() + message[1:] + ".", title="Project not found", severity="warning")
            if self.startup_error is not None:
                self._show_auth(self.startup_error)
            if self.refresh_on_start and syncing:
                self.action_refresh()
            else:
                self._arm_poll()

    # -- loading (workers) ------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="load")
    def load_data(self, first: bool = False) -> None:
        """The snapshot and its Health table. ``first`` (no Health on screen yet): the verdicts and values first
        (:func:`~cidash.tui.data.first_health`, what ``cidash check`` computes), then, once they are painted, the
        whole table."""
        project = self.project
        helper, self.first_health = self.first_health, None
        if project is None or not first or (helper is not None and helper.project_id != project.id):
            if helper is not None:
                helper.close()  # not the Health this load needs
            helper = None
        if project is None:
            return
        now = self.clock() if helper is None else helper.now
        worker = get_current_worker()

        def cancelled() -> bool:
            return worker.is_cancelled

        try:
            if first:
                computed = helper.result(cancelled) if helper is not None else None
                if cancelled():
                    return
                if computed is None:  # no helper, or it gave nothing: computed here
                    from cidash.tui.data import first_health

                    computed = first_health(self.store, self.config, project, now)
                painted = threading.Event()
                self.post_message(self.FirstHealth(computed, painted))
                while not painted.wait(0.05):  # the heavier load would hold the GIL from the paint
                    if cancelled():
                        return
            from cidash.tui.data import load_dashboard  # the core: imported after the first Health is painted

            snap, health = load_dashboard(self.store, self.config, project, now)
            self.post_message(self.SnapshotReady(snap, health))  # Health first; the other tabs once it is painted
        except CidashError as exc:
            self.post_message(self.Failed(exc))

    @work(thread=True, exclusive=True, group="health-cache")
    def _save_health_worker(self) -> None:
        """Write the Health on screen to the cache the next start shows at once (after it is painted)."""
        snap, health = self.snapshot, self._health
        if snap is None or health is None:
            return
        try:
            save_health(health_cache_path(self.cache_dir, self.store.path, snap.project.id), health)
        except CidashError as exc:
            self.post_message(self.Failed(exc))

    def _read_history_views(self) -> None:
        """Read the whole history for the Start-up, Caches and Images tabs (:meth:`_views_worker`), or, while such
        a read runs, once it ends: two at once would hold two whole histories (~500 MB each at 50,000 pipelines),
        as a refresh that lands during the first read, at start, used to start a second one beside it."""
        if self._views_reading:
            self._views_again = True
            return
        self._views_reading = True
        self._views_worker()

    @work(thread=True, exclusive=True, group="views")
    def _views_worker(self) -> None:
        """The Start-up, Caches and Images tabs' views (through :meth:`_read_history_views` only), started once
        the Health of the snapshot is on screen (computing them in the loading worker kept the GIL from the UI
        thread that was to paint it). No snapshot argument: Textual describes a worker by the repr of its
        arguments, which for a snapshot is huge."""
        try:
            self._read_views()
        finally:
            self.post_message(self.HistoryRead())  # after the views or the failure it posted

    def _read_views(self) -> None:
        snap, health = self.snapshot, self._health
        if snap is None or health is None:
            return
        project = snap.project
        from cidash.dataset import gc_paused
        from cidash.tui.data import caches_view, images_view, local_key_status, startup_view

        try:
            with gc_paused():
                # the Health came from the window; these tabs show the history, which takes the window's place at
                # once: nothing here holds the window while the views are computed, so its dataset is freed
                wide = snap.widened()
                self.post_message(self.Widened(snap, wide))
                del snap
                caches = caches_view(wide, self.store)
                views = self.ViewsReady(startup_view(wide), caches, images_view(self.store, wide), project.id)
            self.post_message(views)
            if self.checkout is not None:
                view = caches
                version = self.store.instance_version(project.id)
                lines = local_key_status(self.config, self.checkout, view.last_key_on_ref, view.ref, version)
            else:
                lines = ["[dim]no local checkout (run cidash inside your repository to see .cache-key here)[/]"]
            self.post_message(self.LocalReady(lines))
        except CidashError as exc:
            self.post_message(self.Failed(exc, views=True))

    def on_cidash_app_first_health(self, message: FirstHealth) -> None:
        project, snap = self.project, self.snapshot
        if project is not None and message.health.project == project.path and (snap is None or snap.project != project):
            self.health_view.show_health(message.health)  # unless the whole table came first (a refresh's load)
        self.call_after_refresh(message.painted.set)

    def on_cidash_app_snapshot_ready(self, message: SnapshotReady) -> None:
        self.snapshot = message.snapshot
        self._health = message.health
        self.health_view.show_health(message.health)
        # the whole history's tabs: at once for a new project or while one of them is shown; else (a refresh that
        # changed the store while the Health or Pipelines is on screen) when one is next shown: reading the
        # whole history again takes seconds and hundreds of MB on a big store, each poll that brings a pipeline
        now = self._views_for != message.snapshot.project.id or self.tabs.active in HISTORY_TABS
        self._views_stale = not now
        self.call_after_refresh(self._save_health_worker)
        if now:
            self.call_after_refresh(self._read_history_views)
        if self.last_refresh is None and message.snapshot.last_sync is not None:
            self.last_refresh = message.snapshot.last_sync
            self.header.last_refresh = self.last_refresh
        compare_tab = self.compare_tab
        if not any(compare_tab.specs()):
            from cidash.tui.data import migration_presets

            presets = migration_presets(message.snapshot)
            if presets:
                compare_tab.set_specs(*presets)
        self._compared_for = None
        if self.tabs.active == "compare":
            self._compare_current()

    def _compare_current(self) -> None:
        """Run the comparison of the specs on screen once per snapshot (it bootstraps: costly on big stores)."""
        if self.snapshot is None or self._compared_for is self.snapshot:
            return
        self._compared_for = self.snapshot
        self.run_compare(*self.compare_tab.specs())

    def on_cidash_app_widened(self, message: Widened) -> None:
        window, message.window = message.window, None
        if window is not None and self.snapshot is window:
            self.snapshot = message.widened  # one dataset in memory, the whole history's (same verdicts)
            if self._compared_for is window:
                self._compared_for = message.widened  # the same comparison: not made again

    def on_cidash_app_views_ready(self, message: ViewsReady) -> None:
        if self.project is None or message.project_id != self.project.id:
            return  # read for the project shown before a switch
        self._views_for = message.project_id
        self.startup_tab.show(message.startup)
        self.caches_tab.show(message.caches)
        self.images_tab.show(message.images)
        self._history_loading()

    def on_cidash_app_local_ready(self, message: LocalReady) -> None:
        self.caches_tab.show_local(message.lines)

    def on_cidash_app_history_read(self, message: HistoryRead) -> None:
        self._views_reading = False
        if self._views_again:  # asked for while it ran: read again, now
            self._views_again = False
            self._read_history_views()

    def on_cidash_app_failed(self, message: Failed) -> None:
        self.report_error(message.error)
        if message.views:  # the error is in the header; the next refresh that changes the store reads them again
            self._history_loading(False)

    def on_cidash_app_activity(self, message: Activity) -> None:
        self.header.activity = message.text
        for screen in self.screen_stack[1:]:  # a followed action shows on the screen it was started from
            show = getattr(screen, "show_activity", None)
            if callable(show):
                show(message.text)

    def refresh_screens(self) -> None:
        """Pushed screens (a pipeline, a job's log) are live: each reloads what it shows after a refresh."""
        for screen in self.screen_stack[1:]:
            reload = getattr(screen, "refresh_data", None)
            if callable(reload):
                reload()

    # -- refresh and polling ----------------------------------------------------------------------------------

    def action_refresh(self) -> None:
        if self.refreshing:
            return
        if self.refresher is None:
            self.load_data()
            self.pipelines_view.reload()
            self.refresh_screens()
            self.notify("No GitLab connection: reloaded from the store.", title="Refresh")
            self._arm_poll()
            return
        self.refreshing = True
        self._sync_before = self.store.last_sync(self.project.id) if self.project is not None else None
        self.header.activity = "refreshing…"
        if self.project is None:
            self._history_loading()  # the first sync of an empty store: the history tabs say so
        self._refresh_worker()

    @work(thread=True, exclusive=True, group="refresh")
    def _refresh_worker(self) -> None:
        assert self.refresher is not None

        def progress(text: str) -> None:
            self.post_message(self.Activity(redact(text)[:60]))

        try:
            result = self.refresher(self.project, progress)
            self.post_message(self.RefreshDone(result, None))
        except CidashError as exc:
            self.post_message(self.RefreshDone(None, exc))
        except Exception as exc:  # an unexpected bug must not kill the dashboard
            self.post_message(self.RefreshDone(None, CidashError(f"{type(exc).__name__}: {exc}")))

    def _honest(self, error: CidashError) -> CidashError:
        """A 401 to a request that carried no token is "no token configured", not "GitLab rejected the token"."""
        if isinstance(error, AuthError) and not self.has_token:
            return ConfigError(
                "no GitLab token is configured (GitLab answered 401 to a request sent without one)",
                hint="set GITLAB_TOKEN, --token-file FILE or [gitlab] token_file",
            )
        return error

    def on_cidash_app_refresh_done(self, message: RefreshDone) -> None:
        if message.error is not None:
            message.error = self._honest(message.error)
        self.refreshing = False
        self.refresh_count += 1
        if self.project is None:
            self._history_loading()  # (a project it brought is selected below, and covered while it is read)
        self.post_message(self.Activity(""))  # the header and the pushed screens' progress lines
        if message.error is not None:
            self.failure = message.error
            self.header.stale = message.error.one_line()[:80]
            if self.refresh_count == 1 and isinstance(message.error, (AuthError, PermissionDenied, ConfigError)):
                self._show_auth(message.error)
            else:
                self.report_error(message.error)
        else:
            self.failure = None
            self.header.stale = None
            self.last_refresh = self.clock()
            self.header.last_refresh = self.last_refresh
            if message.result is not None and message.result.rate_limit is not None:
                self.header.rate_limit = message.result.rate_limit
            if self.project is None:
                self.select_project(self.wanted_project)
            elif self.snapshot is None or message.result is None or message.result.changed:
                self.load_data()
                self.pipelines_view.reload()
            else:
                self._health_still_current()
            self.refresh_screens()
        self._arm_poll()

    def _health_still_current(self) -> None:
        """A refresh that changed nothing in the store: the Health on screen (if it was the store's before this
        sync) is still the store's, and its cache says so (as of this sync), so the next start shows it as current."""
        health, project = self._health, self.project
        if health is None or project is None or self.snapshot is None or not health.current_for(self._sync_before):
            return
        self._health = replace(health, synced_at=self.store.last_sync(project.id))
        save_health(health_cache_path(self.cache_dir, self.store.path, project.id), self._health)

    def _arm_poll(self) -> None:
        if self._poll_timer is not None:
            self._poll_timer.stop()
            self._poll_timer = None
        if self.poll and self.refresher is not None and self.config.tui.refresh_seconds > 0:
            self._poll_timer = self.set_timer(self.config.tui.refresh_seconds, self._poll)

    def _poll(self) -> None:
        self._poll_timer = None
        if self.paused or self.hidden:
            self._arm_poll()
            return
        self.action_refresh()

    def _tick(self) -> None:
        """Re-render "refreshed N s ago" (a re-armed one-shot timer, like polling)."""
        self.header.now = self.clock()
        self._tick_timer = self.set_timer(5, self._tick)

    def on_app_blur(self, event: events.AppBlur) -> None:
        self.hidden = True

    def on_app_focus(self, event: events.AppFocus) -> None:
        self.hidden = False

    def action_toggle_polling(self) -> None:
        self.paused = not self.paused
        self.header.paused = self.paused
        self.notify("Polling paused." if self.paused else "Polling resumed.", title="Refresh")

    # -- errors -----------------------------------------------------------------------------------------------

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification's text is cleaned (:func:`cidash.textsafe.clean`) and never read as markup: job
        names, refs and error texts carry GitLab's strings."""
        super().notify(
            clean(message, keep_newlines=True), title=clean(title), severity=severity, timeout=timeout, markup=False
        )

    def report_error(self, error: CidashError) -> None:
        """One exception type, one titled notification."""
        self.notify(error.one_line(), title=error.title, severity="error", timeout=8)

    def _show_auth(self, error: CidashError) -> None:
        self.load_more_css()  # (pushed before the first paint when the start found no usable GitLab)
        has_data = bool(self.store.projects())
        from cidash.tui.screens.modals import AuthScreen

        setup = not isinstance(error, StoreOriginError)  # the URL and token work: the store is the other instance's
        self.push_screen(
            AuthScreen(f"{error.title}: cidash cannot use GitLab", error.one_line(), has_data, setup_help=setup)
        )

    # -- navigation -------------------------------------------------------------------------------------------

    def action_show_tab(self, tab: str) -> None:
        while len(self.screen_stack) > 1:  # from a pipeline, a log or a modal: back to the tabs
            self.pop_screen()
        self.tabs.active = tab
        self._focus_tab(tab)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id:
            focused, view = self.screen.focused, self.view(event.pane.id)
            if focused is None or view is None or view not in focused.ancestors_with_self:
                self._focus_tab(event.pane.id)  # not when the action that showed the tab focused in it (a filter)
            if event.pane.id == "compare":
                self._compare_current()
            if event.pane.id in HISTORY_TABS and self._views_stale:
                self._views_stale = False
                self._read_history_views()

    def _focus_tab(self, tab: str) -> None:
        view = self.view(tab)
        if view is not None:
            view.focus_table()

    def action_filter(self) -> None:
        view = self.view(self.tabs.active)
        if len(self.screen_stack) > 1:
            return  # "/" belongs to the tabs
        if view is None or not view.start_filter():
            self.action_show_tab("pipelines")
            self.pipelines_view.start_filter()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``/`` is offered (footer, key) only where it does something: the tabs, and screens with their own."""
        return not (action == "filter" and len(self.screen_stack) > 1)

    # -- links (o opens, y copies) ----------------------------------------------------------------------------

    def selected_url(self) -> str | None:
        """The GitLab page of what is selected: a pipeline, a job, an image or a criterion's evidence row,
        built from the configured origin and numeric ids (:mod:`cidash.tui.links`)."""
        project = self.project
        if project is None:
            return None
        kind, ident = "pipelines", None
        screen = self.screen
        pick = getattr(screen, "selected_link", None)
        if callable(pick):
            kind, ident = pick()
        else:
            tab = self.tabs.active
            if tab == "pipelines":
                pid = self.pipelines_view.highlighted_pipeline_id()
                kind, ident = ("pipeline", pid) if pid is not None else ("pipelines", None)
            elif tab == "images":
                kind = "registry"
            elif tab == "health":
                from cidash.criteria import REGISTRY  # the criterion knows its GitLab page: no id matched here

                cid = self.health_view.highlighted_criterion()
                kind = REGISTRY[cid].gitlab_page if cid is not None and cid in REGISTRY else "pipelines"
        return web_url(self.gitlab_url, project.path, kind, ident)

    def action_open_url(self) -> None:
        url = self.selected_url()
        if url is None:
            self.notify("No GitLab URL is configured for a link.", title="Open", severity="warning")
            return
        opened = False
        try:
            opened = self.opener(url) if self.opener is not None else self._open_in_browser(url)
        except Exception:  # a browser that fails to start must not kill the dashboard
            opened = False
        self.notify(f"Opened {url}" if opened else f"No browser here: {url}", title="Open", timeout=10)

    def _open_in_browser(self, url: str) -> bool:
        import os
        import sys
        import webbrowser

        if sys.platform not in ("darwin", "win32") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            return False  # no graphical browser: a text one would take over this terminal
        try:
            return webbrowser.get() is not None and webbrowser.open(url, new=2)
        except webbrowser.Error:
            return False

    def action_copy_url(self) -> None:
        url = self.selected_url()
        if url is None:
            self.notify("No GitLab URL is configured for a link.", title="Copy", severity="warning")
            return
        self.copy_to_clipboard(url)  # an OSC 52 sequence Textual builds from our URL (base64): no GitLab bytes
        self.notify(f"Copied {url}", title="Copy")

    def action_help(self) -> None:
        from cidash.tui.screens.modals import HelpScreen

        self.push_screen(HelpScreen())

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_switch_project(self) -> None:
        projects = [p.path for p in self.store.projects()]
        if not projects:
            self.notify("The store holds no project yet.", title="Project", severity="warning")
            return

        def chosen(path: str | None) -> None:
            if path and (self.project is None or path != self.project.path):
                self.snapshot = None
                self.select_project(path)

        from cidash.tui.screens.modals import ProjectScreen

        self.push_screen(ProjectScreen(projects, self.project.path if self.project else None), chosen)

    def open_evidence(self, criterion_id: str) -> None:
        if self.snapshot is None:
            self.notify("Still computing the criteria…", title="Evidence")
            return
        from cidash.tui.data import evidence_for
        from cidash.tui.screens.modals import EvidenceScreen

        self.push_screen(EvidenceScreen(evidence_for(self.snapshot, criterion_id)))

    def open_pipeline(self, pipeline_id: int) -> None:
        from cidash.tui.screens.detail import PipelineScreen

        self.push_screen(PipelineScreen(pipeline_id))

    # -- compare and export -----------------------------------------------------------------------------------

    def compare_preset(self) -> None:
        if self.snapshot is None:
            return
        from cidash.tui.data import migration_presets

        presets = migration_presets(self.snapshot)
        if presets is None:
            self.notify("No CI-image digest change found: enter SPECs by hand.", title="Compare", severity="warning")
            return
        self.compare_tab.set_specs(*presets)
        self.run_compare(*presets)

    def run_compare(self, baseline: str, candidate: str) -> None:
        if self.snapshot is None or not baseline.strip() or not candidate.strip():
            return
        self.compare_tab.show_progress(f"comparing {baseline} with {candidate}…")
        self._compare_worker(baseline, candidate)

    @work(thread=True, exclusive=True, group="compare")
    def _compare_worker(self, baseline: str, candidate: str) -> None:
        assert self.snapshot is not None
        from cidash.tui.data import run_comparison

        try:
            self.post_message(self.CompareReady(run_comparison(self.snapshot, baseline, candidate)))
        except CidashError as exc:
            self.post_message(self.Failed(exc))

    def on_cidash_app_compare_ready(self, message: CompareReady) -> None:
        self.compare_tab.show(message.comparison)

    def action_export(self) -> None:
        snap = self.snapshot
        if snap is None or self.project is None:
            self.notify("Nothing to export yet: the criteria are still computing.", title="Export", severity="warning")
            return
        comp = self.compare_tab.comparison
        day = self.clock().astimezone(UTC).strftime("%Y%m%d")
        safe_name = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._") else "-" for ch in self.project.path)
        default = str(Path.cwd() / f"cidash-{safe_name}-{day}.md")
        what = "the criteria and the comparison" if comp is not None else "the criteria"

        def write(path: str | None) -> None:
            if not path:
                return
            try:
                if path == STDOUT:  # standard output is the dashboard itself
                    raise CidashError("export: name a file (- would write into the dashboard)")
                from cidash.tui.data import export_markdown

                write_text(path, export_markdown(snap, comp), option="export")
            except CidashError as exc:
                self.report_error(exc)
                return
            self.notify(f"Wrote {path}", title="Export")

        from cidash.tui.screens.modals import ExportScreen

        self.push_screen(ExportScreen(what, default), write)

    # -- actions (plan -> confirm -> execute -> follow) -------------------------------------------------------

    def action_keys(self) -> None:
        self._plan_action("keys")

    def action_rebuild(self) -> None:
        self._plan_action("rebuild")

    def action_retry(self) -> None:
        self._plan_action("retry")

    def _plan_action(self, kind: str) -> None:
        if self.actions.disabled_reason:
            self.notify(f"{kind} is disabled: {self.actions.disabled_reason}", title="Actions", severity="warning")
            return
        if self.project is None:
            return
        job_id = None
        from cidash.tui.screens.detail import PipelineScreen

        if kind == "retry" and isinstance(self.screen, PipelineScreen):
            job_id = self.screen.highlighted_job_id()  # t on a pipeline's job retries that job
        self._plan_worker(kind, self.project, job_id)

    @work(thread=True, exclusive=True, group="actions")
    def _plan_worker(self, kind: str, project: Project, job_id: int | None = None) -> None:
        try:
            plan = self.actions.plan(kind, project, job_id=job_id)
        except CidashError as exc:
            self.post_message(self.Failed(exc))
            return
        self.call_from_thread(self._confirm, plan)

    def _confirm(self, plan: ActionPlan) -> None:
        def decided(ok: bool | None) -> None:
            if ok:
                self._execute_worker(plan)
            else:
                self._decline_worker(plan)
                self.notify("Cancelled: nothing was sent.", title=plan.title)

        from cidash.tui.screens.modals import ConfirmScreen

        self.push_screen(ConfirmScreen(plan), decided)

    @work(thread=True, exclusive=True, group="actions")
    def _decline_worker(self, plan: ActionPlan) -> None:
        try:
            self.actions.decline(plan)
        except CidashError as exc:
            self.post_message(self.Failed(exc))

    @work(thread=True, exclusive=True, group="actions")
    def _execute_worker(self, plan: ActionPlan) -> None:
        try:
            outcome: ActionOutcome = self.actions.execute(plan)
        except CidashError as exc:
            self.post_message(self.Failed(exc))
            return
        self.call_from_thread(self.notify, outcome.summary, title=plan.title)
        last = ""
        try:
            for line in self.actions.follow(outcome):
                last = line
                self.post_message(self.Activity(f"{plan.kind}: {line}"))
                if self.refresher is not None:  # the screens follow the job as it runs (a refresh in flight skips)
                    self.call_from_thread(self.action_refresh)
        except CidashError as exc:
            self.post_message(self.Failed(exc))
        self.post_message(self.Activity(""))
        if last:
            self.call_from_thread(self.notify, last, title=plan.title)
        if plan.kind == "keys":
            self.load_data()
        else:
            self.call_from_thread(self.action_refresh)  # show the new pipeline / job

    # -- test and benchmark hooks -----------------------------------------------------------------------------

    @property
    def health(self) -> Health | None:
        return self._health if self.snapshot else None

    @property
    def rate_limit(self) -> RateLimitState | None:
        return self.header.rate_limit
