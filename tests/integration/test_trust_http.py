"""The HTTP trust boundary, over real TCP on 127.0.0.1: credentials stay on the configured origin, a body counts
only when its framing says it is complete, a 2xx that is not the endpoint's JSON is retried, looping pagination
ends, and every HTTP path verifies TLS with the same CA bundle.

The simulated GitLab sits behind :mod:`faultproxy` (transport faults) or injects redirects and page loops itself;
"another host" is :class:`faultproxy.Recorder` on 127.0.0.2, which records what it receives.
"""

from __future__ import annotations

import re
import sqlite3
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cidash.actions.base import API_PREFIX, HttpCall
from cidash.config import Config, GitLabSettings
from cidash.connection import Connection, Secret, resolve_connection
from cidash.errors import (
    AuthError,
    BadPayload,
    CidashError,
    ConfigError,
    PaginationError,
    RedirectRefused,
    RemoteError,
    TLSError,
    TruncatedBody,
)
from cidash.remote import GitLabClient, RetryPolicy, policy
from cidash.remote import jobs as remote_jobs
from cidash.remote import pipelines as remote_pipelines
from cidash.remote import projects as remote_projects
from cidash.remote.mutations import ActionsRemote
from cidash.sim import Scenario, SimulatedGitLab
from cidash.sim.faults import FaultPlan, FaultRule
from cidash.store import Store
from cidash.sync import sync_project
from cidash.tui.adapters import log_fetcher
from faultproxy import FaultProxy, ProxyFault, Recorder
from paths import TLS
from test_sync import NOW, options

TRACE = "GET /projects/:id/jobs/:job_id/trace"
CREDENTIALS = ("private-token", "job-token", "authorization")
TLS_DIR = TLS
#: Bookkeeping that differs between two equally good syncs (wall-clock stamps, run history).
VOLATILE_COLUMNS = {"synced_at", "parsed_at", "fetched_at", "seen_at", "projects.added_at", "sync_state.updated_at"}
VOLATILE_TABLES = {"sync_runs", "schema_migrations", "audit", "sqlite_sequence"}
#: GitLab's URLs follow the Host a client reached it by (a proxy's port): compared without it.
ORIGIN = re.compile(r"http://127\.0\.0\.1:\d+")


def _scenario() -> Scenario:
    return Scenario(days=1, pipelines_per_day=4, migration_day=1)


@pytest.fixture(scope="module")
def world() -> Iterator[SimulatedGitLab]:
    """One simulated GitLab for the read-only tests of this module (nothing here mutates its world)."""
    with SimulatedGitLab(_scenario(), rate_limit_advertised=10**9) as sim:  # shared: no RateLimit pause
        yield sim


@pytest.fixture(scope="module")
def clean_rows(world: SimulatedGitLab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of a store filled by one sync without faults: what any faulted sync must end up equal to."""
    path = tmp_path_factory.mktemp("clean") / "clean.db"
    with Store.open(path) as store, _client(world.url, world.token) as client:
        sync_project(client, store, world.project_path, options=options(), now=NOW)
    return _rows(path)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture(params=["http.client", "httpx"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both HTTP paths: the http.client fast path, and httpx (which a proxy in the environment selects)."""
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return str(request.param)


def _client(url: str, token: str, *, retry: RetryPolicy | None = None, timeout: float = 30.0) -> GitLabClient:
    connection = Connection(url=url, token=Secret(token), max_rps=0, concurrency=4, timeout=timeout)
    return GitLabClient(connection, retry=retry or RetryPolicy(attempts=4, base_delay=0.01))


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows (volatile bookkeeping left out), sorted: two stores compared row by row."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table in sorted(set(tables) - VOLATILE_TABLES):
            columns = [
                r[1]
                for r in conn.execute(f"PRAGMA table_info({table})")
                if not {r[1], f"{table}.{r[1]}"} & VOLATILE_COLUMNS
            ]
            rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            out[table] = sorted(
                (tuple(ORIGIN.sub("ORIGIN", v) if isinstance(v, str) else v for v in row) for row in rows), key=repr
            )
        return out
    finally:
        conn.close()


def _no_credentials(recorder: Recorder, token: str) -> None:
    for seen in recorder.seen:
        assert not set(seen.headers) & set(CREDENTIALS), seen
        assert token not in repr(seen)


def _via(proxy: FaultProxy, transport: str, monkeypatch: pytest.MonkeyPatch, upstream: str) -> str:
    """The URL a client uses to go through ``proxy`` with ``transport``: the proxy itself as GitLab for the
    http.client path, or GitLab's own URL with the proxy in HTTP_PROXY for httpx."""
    if transport == "httpx":
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        return upstream
    return proxy.url


# -- credentials go only to the configured origin ------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "followed"),
    [
        (TRACE, True),  # a download: followed to object storage, without any credential
        ("GET /projects/:id/pipelines", False),  # an offset listing
        ("GET /projects/:id/jobs", False),  # a keyset listing
        ("GET /projects/:id/pipelines/:pipeline_id", False),  # JSON through http.client/httpx
        ("GET /projects/:id/registry/repositories", False),  # the registry, through GitLab's API
        ("HEAD /projects/:id/repository/files/:file_path", False),  # API metadata, not a download
        ("POST /api/graphql", False),  # the pipelines' details, many to a query
    ],
    ids=["trace", "pipelines", "jobs", "pipeline", "registry", "file-head", "graphql"],
)
def test_sync_never_sends_the_token_to_another_host(
    world: SimulatedGitLab, db: Path, transport: str, monkeypatch: pytest.MonkeyPatch, endpoint: str, followed: bool
) -> None:
    if endpoint == "GET /projects/:id/pipelines/:pipeline_id":  # asked for over REST only when GraphQL refuses

        def refused(*args: Any, **kwargs: Any) -> Any:
            raise remote_pipelines.GraphQLRefused("not in this test")

        monkeypatch.setattr(remote_pipelines, "pipeline_details", refused)
    with Recorder() as other, FaultProxy(world.url) as proxy:
        url = _via(proxy, transport, monkeypatch, world.url)
        world.set_faults(FaultPlan(rules=(FaultRule(endpoint=endpoint, redirect_to=other.url + "{path}", first=1),)))
        try:
            with Store.open(db) as store, _client(url, world.token) as client:
                try:
                    report = sync_project(client, store, world.project_path, options=options(), now=NOW)
                except RedirectRefused as exc:
                    assert not followed and "another origin" in exc.message and "127.0.0.2" in exc.message
                else:
                    if followed:
                        assert report.logs > 0
                    else:  # refused for that one item, which the sync defers with a warning naming the origin
                        refused = [w for w in report.warnings if "another origin" in w and "127.0.0.2" in w]
                        assert refused, report.warnings
        finally:
            world.set_faults(None)
    assert len(other.seen) == (1 if followed else 0)
    _no_credentials(other, world.token)
    if followed:
        assert other.seen[0].target.endswith("/trace")


def test_the_tui_log_fetch_and_actions_keep_the_token_home(world: SimulatedGitLab) -> None:
    job = next(j for j in world.world.all_jobs(world.project_id) if j.status_at(world.world.now()) == "success")
    with Recorder(body=b"a log from object storage\n") as other:
        world.set_faults(FaultPlan(rules=(FaultRule(endpoint=TRACE, redirect_to=other.url + "{path}"),)))
        try:
            fetch = log_fetcher(lambda: _client(world.url, world.token))
            assert fetch(world.project_id, job.id) == b"a log from object storage\n"
        finally:
            world.set_faults(None)
        # A mutation redirected elsewhere (307 keeps method and body) is refused before anything is sent there.
        rule = FaultRule(endpoint="POST *", redirect_to=other.url + "{path}", redirect_status=307)
        world.set_faults(FaultPlan(rules=(rule,)))
        remote = ActionsRemote(_client(world.url, world.token), owns_client=True)
        try:
            call = HttpCall("POST", f"{API_PREFIX}/projects/{world.project_id}/jobs/{job.id}/retry")
            with pytest.raises(RedirectRefused, match=r"another origin \(http://127\.0\.0\.2"):
                remote.send(call)
        finally:
            remote.close()
            world.set_faults(None)
    assert [s.target for s in other.seen] == [f"/api/v4/projects/{world.project_id}/jobs/{job.id}/trace"]
    _no_credentials(other, world.token)


def test_a_raw_file_from_object_storage_is_fetched_without_the_token(
    world: SimulatedGitLab, transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Recorder(body=b"stages: [build]\n") as other, FaultProxy(world.url) as proxy:
        proxy.set_faults([ProxyFault("redirect", "*/raw", first=1, location=other.url + "{path}")])
        url = _via(proxy, transport, monkeypatch, world.url)
        with _client(url, world.token) as client:
            assert client.http.file_raw(world.project_id, ".gitlab-ci.yml", "main") == b"stages: [build]\n"
    assert proxy.fired["redirect"] == 1 and len(other.seen) == 1
    _no_credentials(other, world.token)


def test_a_redirect_loop_on_gitlab_itself_stops_after_five_hops(world: SimulatedGitLab) -> None:
    with FaultProxy(world.url) as proxy:
        proxy.set_faults([ProxyFault("redirect", "*", location=proxy.url + "{path}")])
        with _client(proxy.url, world.token, retry=RetryPolicy(attempts=1)) as client:
            with pytest.raises(RedirectRefused, match="more than 5 redirects"):
                client.http.stream_trace(world.project_id, 1, lambda: lambda chunk: None)
            with pytest.raises(RedirectRefused, match="more than 5 redirects"):
                remote_projects.project(client.http, world.project_id)
    assert proxy.fired["redirect"] == 6 + 6


def test_a_refusal_from_the_redirect_target_is_not_blamed_on_the_token(world: SimulatedGitLab) -> None:
    job = next(j for j in world.world.all_jobs(world.project_id) if j.status_at(world.world.now()) == "success")
    with Recorder(status=401, body=b"<Error>AccessDenied</Error>") as other:
        world.set_faults(FaultPlan(rules=(FaultRule(endpoint=TRACE, redirect_to=other.url + "{path}"),)))
        try:
            with _client(world.url, world.token) as client, pytest.raises(RemoteError) as info:
                client.http.stream_trace(world.project_id, job.id, lambda: lambda chunk: None)
        finally:
            world.set_faults(None)
    assert not isinstance(info.value, AuthError)
    assert f"was redirected to http://127.0.0.2:{other.port}, which answered 401" in info.value.message
    _no_credentials(other, world.token)


def test_the_sync_pager_reads_a_next_link_to_another_host_from_gitlab(world: SimulatedGitLab) -> None:
    """The pager (remote.http.get_link_pages) takes only the path of a Link header (python-gitlab's would send the
    token wherever it points; cidash's takes it as a path on the configured origin, as keep_base_url does)."""
    from cidash.remote import http as remote_http

    with Recorder() as other, _client(world.url, world.token) as client:
        original = remote_http.HttpClient._exchange

        def rewritten(self: Any, *args: Any, **kwargs: Any) -> Any:
            reply = original(self, *args, **kwargs)
            link = reply.headers.get("link") or ""
            headers = remote_http._Headers({**reply.headers, "link": link.replace(world.url, other.url)})
            return remote_http.dataclasses.replace(reply, headers=headers)

        params = {"pagination": "keyset", "order_by": "id", "sort": "desc", "per_page": 10}
        try:
            remote_http.HttpClient._exchange = rewritten  # type: ignore[method-assign]
            pages = list(client.http.get_link_pages(f"/projects/{world.project_id}/jobs", params))
        finally:
            remote_http.HttpClient._exchange = original  # type: ignore[method-assign]
    assert len(pages) > 2 and sum(map(len, pages)) == len(world.world.all_jobs(world.project_id))
    assert other.seen == []


# -- a body is complete only when its framing says so ---------------------------------------------------------

RIDDEN_OUT = {
    "clean close mid-log": ProxyFault("close_mid_body", "*/trace", first=3),
    "RST before any byte": ProxyFault("rst", "*/trace", first=2),
    "chunked log cut": ProxyFault("chunk_cut", "*/trace", first=2),
    "conflicting Content-Length": ProxyFault("conflicting_len", "*/trace", first=2),
    "HTML 200 for a log": ProxyFault("html200", "*/trace", first=2),
    "garbage reply": ProxyFault("garbage", "POST /api/graphql", first=1),  # the pipelines' details
    "empty 200 for JSON": ProxyFault("empty200", "POST /api/graphql", first=1),
    "HTML 200 on a listing": ProxyFault("html200", "GET /api/v4/projects/*/jobs", first=1),
    "truncated JSON listing": ProxyFault("truncated_json", "GET /api/v4/projects/*/pipelines", first=1),
    "listing cut mid-body": ProxyFault("close_mid_body", "GET /api/v4/projects/*/jobs", first=1),
    "listing chunks cut": ProxyFault("chunk_cut", "GET /api/v4/projects/*/pipelines", first=1),
    "listing framed twice": ProxyFault("conflicting_len", "GET /api/v4/projects/*/jobs", first=1),
    "garbage on a listing": ProxyFault("garbage", "GET /api/v4/projects/*/jobs", first=1),
    "truncated JSON registry": ProxyFault("truncated_json", "*/registry/repositories/*/tags/*", first=1),
    "hang": ProxyFault("hang", "HEAD /api/v4/projects/*/repository/files/*", first=1),
}


@pytest.mark.parametrize("fault", list(RIDDEN_OUT.values()), ids=list(RIDDEN_OUT))
def test_transport_faults_are_retried_and_the_store_equals_a_clean_sync(
    world: SimulatedGitLab,
    clean_rows: dict[str, list[tuple[Any, ...]]],
    db: Path,
    transport: str,
    monkeypatch: pytest.MonkeyPatch,
    fault: ProxyFault,
) -> None:
    with FaultProxy(world.url, [fault]) as proxy:
        url = _via(proxy, transport, monkeypatch, world.url)
        with Store.open(db) as store, _client(url, world.token, timeout=2.0) as client:
            report = sync_project(client, store, world.project_path, options=options(), now=NOW)
    assert proxy.fired[fault.kind] == fault.first, "the fault never fired"
    assert report.logs_failed == 0 and not report.warnings, report.warnings
    assert report.retries >= 1 or fault.kind == "rst"  # an RST on a reused connection is re-sent, not retried
    assert _rows(db) == clean_rows


@pytest.mark.parametrize("kind", ["close_mid_body", "html200"])
def test_logs_that_keep_failing_are_deferred_never_stored_short_and_resync_heals(
    world: SimulatedGitLab,
    clean_rows: dict[str, list[tuple[Any, ...]]],
    db: Path,
    transport: str,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    fault = ProxyFault(kind, "*/trace", probability=0.6)  # type: ignore[arg-type]
    with FaultProxy(world.url, [fault], seed=7) as proxy:
        url = _via(proxy, transport, monkeypatch, world.url)
        with Store.open(db) as store, _client(url, world.token, retry=RetryPolicy(attempts=2, base_delay=0)) as c:
            report = sync_project(c, store, world.project_path, options=options(), now=NOW)
        assert report.logs_failed > 0 and report.logs > 0
        expected = "Incomplete answer" if kind == "close_mid_body" else "HTML page"
        assert any("will retry next sync" in w for w in report.warnings), report.warnings
        assert any(expected.lower() in w.lower() or "ended" in w for w in report.warnings), report.warnings
        # Every log stored is the whole log: the same facts, sections and cache events as a clean sync.
        got = _rows(db)
        for table in ("job_facts", "job_sections", "cache_events"):
            assert set(got[table]) <= set(clean_rows[table]), table
        assert len(got["job_facts"]) == report.logs < len(clean_rows["job_facts"])
        proxy.set_faults([])
        with Store.open(db) as store, _client(url, world.token) as c:
            again = sync_project(c, store, world.project_path, options=options(), now=NOW)
    assert again.logs == report.logs_failed and again.logs_failed == 0
    assert _rows(db) == clean_rows


def test_truncated_body_is_a_typed_transient_error(world: SimulatedGitLab, transport: str, monkeypatch: Any) -> None:
    job = next(j for j in world.world.all_jobs(world.project_id) if j.status_at(world.world.now()) == "success")
    with FaultProxy(world.url, [ProxyFault("close_mid_body", "*/trace")]) as proxy:
        url = _via(proxy, transport, monkeypatch, world.url)
        with _client(url, world.token, retry=RetryPolicy(attempts=3, base_delay=0)) as client:
            with pytest.raises(TruncatedBody) as info:
                client.http.stream_trace(world.project_id, job.id, lambda: lambda chunk: None)
            assert client.stats.retries == 2
    assert proxy.fired["close_mid_body"] == 3
    assert info.value.title == "Incomplete answer" and "3 tries" in info.value.message
    assert world.token not in info.value.one_line()
    with FaultProxy(world.url, [ProxyFault("html200", "*/pipelines/*")]) as proxy:
        url = _via(proxy, transport, monkeypatch, world.url)
        with (
            _client(url, world.token, retry=RetryPolicy(attempts=2, base_delay=0)) as client,
            pytest.raises(BadPayload, match="HTML page"),
        ):
            client.http.get_json(f"/projects/{world.project_id}/pipelines/{job.pipeline_id}")


# -- pagination ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "call"),
    [
        ("GET /projects/:id/repository/commits", lambda c, pid: list(c.http.commits(pid, "main"))),
        (
            "GET /projects/:id/pipelines",
            lambda c, pid: list(remote_pipelines.pipeline_pages(c.http, pid, updated_after=None)),
        ),
        ("GET /projects/:id/jobs", lambda c, pid: list(remote_jobs.jobs_newest_first(c.http, pid))),
    ],
    ids=["offset-http", "offset-sync", "keyset-sync"],
)
def test_a_looping_next_page_ends_the_listing_with_an_error(world: SimulatedGitLab, endpoint: str, call: Any) -> None:
    world.set_faults(FaultPlan(rules=(FaultRule(endpoint=endpoint, page_loop=True),)))
    world.stats.reset()
    try:
        with _client(world.url, world.token) as client, pytest.raises(PaginationError) as info:
            call(client, world.project_id)
    finally:
        world.set_faults(None)
    path = endpoint.split(" ", 1)[1].replace(":id", str(world.project_id))
    assert path in info.value.message and "already read" in info.value.message
    assert world.stats.total_requests <= 3  # not 3,631 requests in 240 s


def test_the_page_cap_is_a_second_guard(world: SimulatedGitLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy, "MAX_PAGES", 2)
    monkeypatch.setattr(remote_jobs, "PER_PAGE", 10)
    with _client(world.url, world.token) as client, pytest.raises(PaginationError, match="more than 2 pages"):
        list(remote_jobs.jobs_newest_first(client.http, world.project_id))


def test_a_keyset_cursor_that_does_not_advance_is_caught_by_the_ids(
    world: SimulatedGitLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _client(world.url, world.token) as client:
        first = next(client.http.get_link_pages(f"/projects/{world.project_id}/jobs", {"per_page": 10}))
        # every page answers with the first page's jobs, under a next link that changes (so no page is "read")
        monkeypatch.setattr(client.http, "get_link_pages", lambda *args, **kwargs: iter([first, list(first)]))
        with pytest.raises(PaginationError, match="keyset cursor does not advance"):
            list(remote_jobs.jobs_newest_first(client.http, world.project_id))


# -- TLS -----------------------------------------------------------------------------------------------------


class _TlsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/api/v4/projects/1/jobs/2/trace"):
            body, kind = b"Running with gitlab-runner 19.1.0\n", "text/plain"
        else:
            body = b'{"id": 1, "path_with_namespace": "g/p", "web_url": "https://x/g/p", "default_branch": "main"}'
            kind = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def tls_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _TlsHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS_DIR / "cert.pem", TLS_DIR / "key.pem")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _both_paths(connection: Connection) -> tuple[str, bytes]:
    chunks: list[bytes] = []
    with GitLabClient(connection, retry=RetryPolicy(attempts=1)) as client:
        project = remote_projects.project(client.http, 1)
        client.http.stream_trace(1, 2, lambda: chunks.append)
    return project.path, b"".join(chunks)


def _no_ca_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_tls_ca_file_and_ssl_cert_file_serve_every_path(
    tls_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_ca_env(monkeypatch)
    config = Config(gitlab=GitLabSettings(url=tls_url, projects=("g/p",)))
    with pytest.raises(TLSError, match="certificate verify failed"):
        _both_paths(resolve_connection(config, env={}))
    with_ca = Config(gitlab=GitLabSettings(url=tls_url, projects=("g/p",), ca_file=str(TLS_DIR / "cert.pem")))
    assert _both_paths(resolve_connection(with_ca, env={})) == ("g/p", b"Running with gitlab-runner 19.1.0\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(TLS_DIR / "cert.pem"))
    assert _both_paths(resolve_connection(config, env={}))[0] == "g/p"
    with pytest.raises(ConfigError, match=r"\[gitlab\] ca_file .*missing\.pem does not exist"):
        missing = GitLabSettings(url=tls_url, ca_file=str(tmp_path / "missing.pem"))
        resolve_connection(Config(gitlab=missing), env={}, require_project=False)
    with pytest.raises(ConfigError, match="contradict"):
        bad = GitLabSettings(url=tls_url, ca_file=str(TLS_DIR / "cert.pem"), verify_tls=False)
        resolve_connection(Config(gitlab=bad), env={}, require_project=False)


def test_verify_tls_false_prints_one_warning_line(
    tls_url: str, capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder
) -> None:
    connection = Connection(url=tls_url, verify_tls=False, max_rps=0)
    for _ in range(2):
        assert _both_paths(connection)[0] == "g/p"
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"cidash: warning: TLS certificate verification is off for {tls_url} ([gitlab] verify_tls = false)"
    ]
    assert not [w for w in recwarn if "Unverified HTTPS request" in str(w.message)]


def test_errors_never_carry_the_token(world: SimulatedGitLab) -> None:
    with (
        FaultProxy(world.url, [ProxyFault("garbage", "*")]) as proxy,
        _client(proxy.url, world.token, retry=RetryPolicy(attempts=1)) as client,
        pytest.raises(CidashError) as info,
    ):
        client.http.get_json(f"/projects/{world.project_id}/pipelines")
    assert world.token not in info.value.one_line()
