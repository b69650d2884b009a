"""Wiring of ``cidash serve``: the store, GitLab clients, the scheduler, the exposition cache and the HTTP server.

``/metrics`` is built from the same pieces as ``cidash export --format openmetrics``: the running totals in the
store (:func:`cidash.export.update_running_totals` after every sync) and, per project, the window gauges of
:meth:`cidash.snapshot.Snapshot.export_input` + :func:`cidash.export.window_families`, recomputed after a sync that
found something and at least every ``recompute`` seconds (the window moves), never on a scrape. A scrape costs one
query of the totals plus the cached text pieces.
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from cidash import __version__
from cidash.errors import (
    AuthError,
    CidashError,
    ConfigError,
    ConnectError,
    NotFound,
    PermissionDenied,
    ProjectBusy,
    RateLimited,
    StoreError,
    UsageError,
    redact,
)
from cidash.export import (
    FAMILIES,
    OPENMETRICS_CONTENT_TYPE,
    PROMETHEUS_CONTENT_TYPE,
    Family,
    Increments,
    exposition,
    families_from_totals,
    labels_key,
    merge_families,
    totals_from_store,
    update_running_totals,
    window_families,
)
from cidash.models import Project
from cidash.serve.eventlog import EventLog
from cidash.serve.scheduler import ProjectState, Scheduler, changed
from cidash.serve.webhook import BadDelivery, event_label, parse_delivery, token_ok
from cidash.snapshot import build_snapshot
from cidash.store import Store, from_db_time
from cidash.sync import CURSOR_REGISTRY, SyncOptions, SyncProgress, SyncReport, project_client, sync_project
from cidash.sync.origin import claim_store_origin

if TYPE_CHECKING:
    from cidash.config import Config
    from cidash.connection import Connection
    from cidash.remote import GitLabClient
    from cidash.serve.http import _Server

#: Totals of serve itself (requests, webhooks) are kept under this project id.
SERVE_PROJECT_ID = 0


@dataclass(frozen=True)
class ServeOptions:
    listen: tuple[str, int] = ("127.0.0.1", 9717)
    interval: float = 60.0
    max_interval: float = 900.0
    jitter: float = 0.1
    debounce: float = 5.0
    workers: int = 1
    recompute: float = 300.0
    group_refresh: float = 3600.0
    webhook_secret: str | None = None
    stop_timeout: float = 20.0


def error_kind(exc: BaseException) -> str:
    """A small fixed vocabulary for ``cidash_sync_errors_total{kind}``."""
    for cls, kind in (
        (AuthError, "auth"),
        (PermissionDenied, "permission"),
        (NotFound, "not_found"),
        (RateLimited, "rate_limited"),
        (ConnectError, "connect"),
        (StoreError, "store"),
        (ConfigError, "config"),
        (UsageError, "usage"),
    ):
        if isinstance(exc, cls):
            return kind
    return "other"


def options_for(store: Store, project: Project, options: SyncOptions, build_job: str, now: datetime) -> SyncOptions:
    """The sync options of one scheduled sync: the registry (tags and sizes) and resource groups are read only
    when they may have changed: every ``[sync] registry_refresh_minutes``, or when an image-build job finished
    since the last read. (A plain sync reads them whenever a pipeline changed, which under webhooks is nearly
    every sync: most of its requests, measured with bench/serve_requests.py.)"""
    cursor = store.cursor(project.id, CURSOR_REGISTRY)
    fetched = from_db_time(cursor) if cursor else None
    if fetched is None or now - fetched >= options.registry_refresh:
        return options
    recent = store.jobs(project.id, name=build_job, since=fetched - timedelta(days=2))
    if any(j.finished_at is not None and j.finished_at >= fetched for j in recent):
        return options
    return dataclasses.replace(options, fetch_registry=False)


class ServeApp:
    def __init__(
        self,
        config: Config,
        connection: Connection,
        store_path: str,
        options: ServeOptions,
        log: EventLog,
        *,
        client_factory: Callable[[GitLabClient | None], GitLabClient] | None = None,
    ) -> None:
        self.config = config
        self.connection = connection
        self.store_path = store_path
        self.options = options
        self.log = log
        self._client_factory = client_factory or self._default_client
        self._local = threading.local()
        self._clients: list[GitLabClient] = []
        self._clients_lock = threading.Lock()
        self._first_client: GitLabClient | None = None
        self.store: Store | None = None
        self.reader: Store | None = None
        self.server: _Server | None = None
        self._server_thread: threading.Thread | None = None
        self._cache: dict[int, tuple[float, dict[str, Family]]] = {}
        self._cache_lock = threading.Lock()
        self._requests_seen: dict[str, int] = {}
        self._requests_lock = threading.Lock()
        self._stop = threading.Event()
        self._group_thread: threading.Thread | None = None
        # several serve processes may share one store: a project another one is syncing is skipped, not waited for
        self.sync_options = dataclasses.replace(
            SyncOptions.from_config(config, now=datetime.now(UTC)), wait_for_lease=False
        )
        self.scheduler = Scheduler(
            self._sync,
            interval=options.interval,
            max_interval=options.max_interval,
            jitter=options.jitter,
            debounce=options.debounce,
            workers=options.workers,
            on_done=self._on_done,
        )

    # -- clients: one per worker thread, sharing the rate limiter and request counters --------------------------

    def _default_client(self, first: GitLabClient | None) -> GitLabClient:
        from cidash.remote import GitLabClient

        if first is None:
            return GitLabClient(self.connection)
        return GitLabClient(self.connection, limiter=first.limiter, stats=first.stats)

    def client(self) -> GitLabClient:
        client: GitLabClient | None = getattr(self._local, "client", None)
        if client is None:
            with self._clients_lock:
                client = self._client_factory(self._first_client)
                if self._first_client is None:
                    self._first_client = client
                self._clients.append(client)
            self._local.client = client
        return client

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the port (first: a taken port fails before anything else), open the store, list the projects,
        start the scheduler and the HTTP server."""
        from cidash.serve.http import bind

        self.server = bind(self, *self.options.listen)
        try:
            self.store = Store.open(self.store_path)
            # a store synced from another GitLab is refused at start, not by every sync after it (cidash.sync.origin)
            claim_store_origin(self.store, self.connection.url)
            self.reader = Store.open(self.store_path, readonly=True)
            targets: list[str | Project] = list(self.connection.projects)
            if self.connection.group:
                targets.extend(self._list_group())
            if not targets:
                raise UsageError("no project to serve", hint="give --project (repeatable) or --group")
            for target in targets:
                self.scheduler.add(target)
        except BaseException:
            self.close()
            raise
        host, port = cast(tuple[str, int], self.server.server_address[:2])
        self.scheduler.start()
        self._server_thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, name="cidash-serve-http", daemon=True
        )
        self._server_thread.start()
        if self.connection.group:
            self._group_thread = threading.Thread(target=self._group_loop, name="cidash-serve-group", daemon=True)
            self._group_thread.start()
        self.log(
            "listening",
            address=f"{host}:{port}",
            projects=len(self.scheduler.states),
            webhooks="on" if self.options.webhook_secret else "off",
        )

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def stop(self) -> bool:
        """Stop the scheduler (running syncs end at their last commit) and the server; True when clean."""
        self._stop.set()
        self.log("stopping")
        clean = self.scheduler.stop(self.options.stop_timeout)
        if self.server is not None:
            self.server.shutdown()
        self._persist_requests()
        self.close()
        self.log("stopped", clean=clean)
        return clean

    def close(self) -> None:
        if self.server is not None:
            self.server.server_close()
        for client in self._clients:
            client.close()
        for store in (self.reader, self.store):
            if store is not None:
                store.close()

    def _list_group(self) -> list[Project]:
        from cidash.remote.projects import group_projects
        from cidash.remote.wire import WireLog

        assert self.connection.group is not None
        # over the sync's own HTTP client: its limits on what an answer may be hold here too (docs/security.md)
        projects = group_projects(self.client().http, self.connection.group, log=WireLog(now=datetime.now(UTC)))
        self._persist_requests()
        return projects

    def _group_loop(self) -> None:
        while not self._stop.wait(self.options.group_refresh):
            try:
                before = len(self.scheduler.states)
                for p in self._list_group():
                    self.scheduler.add(p)
                added = len(self.scheduler.states) - before
                if added:
                    self.log("group_listed", group=self.connection.group, added=added)
            except CidashError as exc:
                self.log("group_list_failed", "warning", group=self.connection.group, error=redact(exc.one_line()))

    # -- syncing -----------------------------------------------------------------------------------------------

    def _sync(self, state: ProjectState, progress: Callable[[SyncProgress], None]) -> SyncReport:
        assert self.store is not None
        target = state.project or state.target
        now = datetime.now(UTC)
        options = self.sync_options
        if state.project is not None:
            options = options_for(self.store, state.project, options, self.config.image.build_job, now)
        # its own request counters (the limiter and the totals stay shared): the report counts this project's requests
        # even while other workers sync other projects
        with project_client(self.client()) as client:
            return sync_project(client, self.store, target, options=options, progress=progress, now=now)

    def _on_done(self, state: ProjectState, report: SyncReport | None, error: CidashError | None) -> None:
        """After each sync, on its worker thread: totals, the exposition cache, one log line."""
        assert self.store is not None
        try:
            self._persist_requests()
            if isinstance(error, ProjectBusy):  # another serve process has it: not an error, tried again later
                self.log("sync_skipped", project=state.label, reason=redact(error.one_line()))
                return
            if error is not None or report is None:
                kind = error_kind(error) if error is not None else "other"
                project = state.project
                label = project.path if project else state.label
                self._add_totals(
                    project.id if project else SERVE_PROJECT_ID,
                    {
                        ("cidash_sync_errors_total", labels_key({"project": label, "kind": kind})): 1,
                        ("cidash_syncs_total", labels_key({"project": label, "result": "error"})): 1,
                    },
                )
                self.log(
                    "sync_failed",
                    "error",
                    project=label,
                    kind=kind,
                    error=redact(error.one_line()) if error else None,
                    next_in=f"{state.interval:.0f}s",
                )
                return
            project = report.project
            counted = update_running_totals(self.store, project, self.config.image.build_job)
            ok = {"project": project.path, "result": "ok"}
            self._add_totals(project.id, {("cidash_syncs_total", labels_key(ok)): 1})
            self._refresh_cache(project, force=changed(report))
            self.log(
                "sync",
                project=project.path,
                pipelines=report.pipelines,
                jobs=report.jobs,
                logs=report.logs,
                requests=report.requests,
                counted=counted,
                warnings=report.warnings_total or None,
                seconds=f"{report.duration:.2f}",
            )
        except CidashError as exc:
            self.log("after_sync_failed", "error", project=state.label, error=redact(exc.one_line()))

    def _add_totals(self, project_id: int, increments: Increments) -> None:
        assert self.store is not None
        self.store.add_metric_totals(project_id, increments)

    def _persist_requests(self) -> None:
        """Add the requests made since the last call to ``cidash_gitlab_requests_total`` (kept in the store)."""
        if self._first_client is None or self.store is None:
            return
        stats = self._first_client.stats
        with self._requests_lock:
            with stats._lock:
                now = dict(stats.by_kind)
            delta = {k: v - self._requests_seen.get(k, 0) for k, v in now.items() if v > self._requests_seen.get(k, 0)}
            if not delta:
                return
            try:
                self._add_totals(
                    SERVE_PROJECT_ID,
                    {("cidash_gitlab_requests_total", labels_key({"kind": k})): float(v) for k, v in delta.items()},
                )
            except CidashError:
                return  # counted next time
            self._requests_seen = now

    def _refresh_cache(self, project: Project, *, force: bool) -> None:
        assert self.store is not None
        with self._cache_lock:
            cached = self._cache.get(project.id)
        if not force and cached is not None and time.monotonic() - cached[0] < self.options.recompute:
            return
        now = datetime.now(UTC)
        since = now - timedelta(days=self.config.criteria.window_days)
        inp = build_snapshot(self.store, self.config, project, now, since=since).export_input(self.store, since=since)
        fams = window_families(dataclasses.replace(inp, last_sync=None))
        with self._cache_lock:
            self._cache[project.id] = (time.monotonic(), fams)

    # -- answers -----------------------------------------------------------------------------------------------

    def healthy(self) -> bool:
        return not self._stop.is_set() and self.scheduler.alive()

    def ready(self) -> tuple[bool, list[str]]:
        states = self.scheduler.snapshot()
        with self._cache_lock:
            computed = set(self._cache)
        # ready once every project is synced and its metrics computed (that comes just after its sync)
        pending = [s.label for s in states if not s.synced_once or (s.project and s.project.id not in computed)]
        return (bool(states) and not pending), pending[:50]

    def metrics(self, accept: str) -> tuple[bytes, str]:
        fmt = "openmetrics" if "application/openmetrics-text" in accept.lower() else "prometheus"
        families = self.families()
        body = exposition(families, fmt).encode("utf-8", "replace")
        return body, OPENMETRICS_CONTENT_TYPE if fmt == "openmetrics" else PROMETHEUS_CONTENT_TYPE

    def families(self) -> dict[str, Family]:
        assert self.reader is not None
        parts: list[dict[str, Family]] = [families_from_totals(totals_from_store(self.reader, None))]
        with self._cache_lock:
            parts.extend(f for _, f in self._cache.values())
        parts.append(self._self_families())
        return merge_families(parts)

    def _self_families(self) -> dict[str, Family]:
        assert self.reader is not None
        fams = {
            n: Family(FAMILIES[n])
            for n in (
                "cidash_build",
                "cidash_last_sync_success_timestamp_seconds",
                "cidash_gitlab_rate_limit_remaining",
                "cidash_up_to_date",
            )
        }
        fams["cidash_build"].add("_info", {"version": __version__, "python": platform.python_version()}, 1)
        for s in self.scheduler.snapshot():
            if s.project is None:
                continue
            fams["cidash_up_to_date"].add("", {"project": s.project.path}, 1 if s.synced_once else 0)
            last = self.reader.last_sync(s.project.id)
            if last is not None:
                fam = fams["cidash_last_sync_success_timestamp_seconds"]
                fam.add("", {"project": s.project.path}, last.timestamp())
        if self._first_client is not None:
            remaining = self._first_client.limiter.state.remaining
            if remaining is not None:
                fams["cidash_gitlab_rate_limit_remaining"].add("", {}, remaining)
        return {n: f for n, f in fams.items() if f.samples}

    def webhook_refused(self, result: str) -> None:
        self._count_webhook("other", result)
        self.log("webhook", "warning", result=result)

    def _count_webhook(self, event: str, result: str) -> None:
        if self.store is None:
            return
        with contextlib.suppress(CidashError):
            self._add_totals(
                SERVE_PROJECT_ID, {("cidash_webhooks_total", labels_key({"event": event, "result": result})): 1}
            )

    def webhook(self, token: str | None, event_header: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one delivery: 401 bad token, 400 malformed, 202 ignored/queued. The body is never kept."""
        event = event_label(event_header)
        secret = self.options.webhook_secret
        if not secret:
            self._count_webhook(event, "disabled")
            self.log("webhook", "warning", hook=event, result="disabled")
            return 404, {"status": "error", "error": "webhooks are not enabled (cidash serve --webhook-secret-file)"}
        if not token_ok(token, secret):
            self._count_webhook(event, "unauthorized")
            self.log("webhook", "warning", hook=event, result="unauthorized")
            return 401, {"status": "error", "error": "bad or missing X-Gitlab-Token"}
        try:
            delivery = parse_delivery(event_header, body)
        except BadDelivery as exc:
            self._count_webhook(event, "bad_request")
            self.log("webhook", "warning", hook=event, result="bad_request", error=str(exc))
            return 400, {"status": "error", "error": str(exc)}
        if delivery.event == "other":
            self._count_webhook(event, "ignored")
            self.log("webhook", hook=event, result="ignored", reason="not a pipeline or job event")
            return 202, {"status": "ignored", "reason": "not a pipeline or job event"}
        state = self.scheduler.find(delivery.project_id, delivery.project_path)
        if state is None:
            self._count_webhook(event, "ignored")
            self.log("webhook", hook=event, result="ignored", reason="unknown project", project_id=delivery.project_id)
            return 202, {"status": "ignored", "reason": "project not served"}
        outcome = self.scheduler.trigger(state)
        self._count_webhook(event, "accepted")
        self.log("webhook", hook=event, result="accepted", project=state.label, sync=outcome)
        return 202, {"status": "accepted", "sync": outcome}
