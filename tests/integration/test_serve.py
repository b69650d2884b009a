"""``cidash serve`` against the simulated GitLab over real HTTP: readiness, /metrics, webhooks, errors, stop."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families as prom_families

from cidash.cli import main
from cidash.sim import SimulatedGitLab
from cidash.store import Store
from paths import REPO_ROOT
from serve_support import (
    SECRET,
    Running,
    job_hook,
    log_lines,
    pipeline_hook,
    recent_scenario,
    request,
    serving,
    wait_for,
    wait_ready,
)


@pytest.fixture
def group_sim() -> Iterator[SimulatedGitLab]:
    with SimulatedGitLab(recent_scenario()) as sim:
        yield sim


@pytest.fixture
def running(group_sim: SimulatedGitLab, tmp_path: Path) -> Iterator[Running]:
    with serving(group_sim, tmp_path) as r:
        wait_ready(r.url)
        yield r


def series(text: str, parser: Any = prom_families) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for fam in parser(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append(s)
    return out


def test_ready_after_every_project_and_metrics_in_both_formats(running: Running, group_sim: SimulatedGitLab) -> None:
    code, _, body = request(running.url + "/readyz")
    assert code == 200 and json.loads(body)["status"] == "ready"
    assert request(running.url + "/healthz")[0] == 200
    code, headers, body = request(running.url + "/metrics")
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    prom = series(body.decode())
    code, headers, body = request(running.url + "/metrics", headers={"Accept": "application/openmetrics-text"})
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = body.decode()
    assert text.endswith("# EOF\n")
    om = series(text, om_families)
    assert set(prom) == set(om)
    for name in (
        "cidash_cache_restores_total",
        "cidash_image_builds_total",
        "cidash_job_startup_seconds_bucket",
        "cidash_pipeline_duration_seconds_count",
        "cidash_cache_hit_ratio_window",
        "cidash_image_size_bytes",
        "cidash_criterion_status",
        "cidash_build_info",
        "cidash_last_sync_success_timestamp_seconds",
        "cidash_gitlab_requests_total",
        "cidash_syncs_total",
    ):
        assert name in prom, name
    projects = {s.labels["project"] for s in prom["cidash_last_sync_success_timestamp_seconds"]}
    assert projects == {p.path for p in group_sim.world.projects.values()}
    labels = {k for samples in prom.values() for s in samples for k in s.labels}
    assert "job" not in labels and "instance" not in labels and "job_name" in labels
    builds = sum(s.value for s in prom["cidash_image_builds_total"])
    world_builds = [j for j in group_sim.world.all_jobs(group_sim.project_id) if j.name == "build-ci-image"]
    assert 0 < builds <= len(world_builds)


def test_webhook_answers(running: Running, group_sim: SimulatedGitLab) -> None:
    hook = running.url + "/webhook"
    body = pipeline_hook(group_sim.project_id, group_sim.project_path)
    ok = {"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": SECRET, "Content-Type": "application/json"}
    assert request(hook, data=body, headers={**ok, "X-Gitlab-Token": "wrong"})[0] == 401
    assert request(hook, data=body, headers={"X-Gitlab-Event": "Pipeline Hook"})[0] == 401
    assert request(hook, data=b"{not json", headers=ok)[0] == 400
    assert request(hook, data=b"[1, 2]", headers=ok)[0] == 400
    assert request(hook, data=b'{"object_kind": "pipeline", "project": {"id": "x"}}', headers=ok)[0] == 400
    code, _, answer = request(hook, data=pipeline_hook(999, "elsewhere/unknown"), headers=ok)
    assert code == 202 and json.loads(answer)["status"] == "ignored"
    code, _, answer = request(hook, data=b'{"object_kind": "push"}', headers={**ok, "X-Gitlab-Event": "Push Hook"})
    assert code == 202 and json.loads(answer)["status"] == "ignored"
    assert request(running.url + "/webhook")[0] == 405
    state = running.app.scheduler.find(group_sim.project_id, None)
    assert state is not None
    before = state.syncs
    code, _, answer = request(hook, data=body, headers=ok)
    assert code == 202 and json.loads(answer)["status"] == "accepted"
    wait_for(lambda: state.syncs > before, what="the triggered sync")
    code, _, answer = request(hook, data=job_hook(group_sim.project_id, "platform / app"),
                              headers={**ok, "X-Gitlab-Event": "Job Hook"})  # fmt: skip
    assert code == 202 and json.loads(answer)["status"] == "accepted"
    logs = log_lines(running)
    results = [line["result"] for line in logs if line["event"] == "webhook"]
    assert results.count("unauthorized") == 2 and results.count("bad_request") == 3 and "accepted" in results
    assert all("Traceback" not in line.get("error", "") for line in logs)
    _, _, metrics = request(running.url + "/metrics")
    samples = series(metrics.decode())["cidash_webhooks_total"]
    hooks = {(s.labels["event"], s.labels["result"]): s.value for s in samples}
    assert hooks[("pipeline", "unauthorized")] == 2


def test_webhook_secret_and_payload_never_kept(running: Running, group_sim: SimulatedGitLab) -> None:
    marker = "payload-marker-7f3a9c"
    data = json.loads(pipeline_hook(group_sim.project_id, group_sim.project_path))
    data["object_attributes"]["ref"] = marker
    headers = {"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": SECRET}
    assert request(running.url + "/webhook", data=json.dumps(data).encode(), headers=headers)[0] == 202
    bad = {"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": SECRET + "x"}
    assert request(running.url + "/webhook", data=b"{}", headers=bad)[0] == 401
    running.app.stop()
    text = running.log.getvalue()
    assert SECRET not in text and marker not in text and group_sim.token not in text
    for path in running.db.parent.glob("serve.db*"):
        raw = path.read_bytes()
        assert marker.encode() not in raw and SECRET.encode() not in raw and group_sim.token.encode() not in raw


def test_webhooks_debounce_into_one_sync(group_sim: SimulatedGitLab, tmp_path: Path) -> None:
    with serving(group_sim, tmp_path, interval=600, max_interval=600, debounce=1.0) as r:
        wait_ready(r.url)
        state = r.app.scheduler.find(group_sim.project_id, None)
        assert state is not None
        before = state.syncs
        headers = {"X-Gitlab-Event": "Pipeline Hook", "X-Gitlab-Token": SECRET}
        body = pipeline_hook(group_sim.project_id, group_sim.project_path)
        answers = [json.loads(request(r.url + "/webhook", data=body, headers=headers)[2])["sync"] for _ in range(5)]
        assert answers[0] == "queued" and set(answers[1:]) == {"already queued"}
        wait_for(lambda: state.syncs > before, what="the debounced sync")
        assert state.syncs == before + 1


def test_counters_never_fall_across_prune_and_restart(group_sim: SimulatedGitLab, tmp_path: Path) -> None:
    def totals(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = request(url + "/metrics")[2].decode()
        out = {}
        for name, samples in series(text).items():
            if name.endswith(("_total", "_bucket", "_count", "_sum")):
                for s in samples:
                    out[(name, tuple(sorted(s.labels.items())))] = s.value
        return out

    with serving(group_sim, tmp_path) as r:
        wait_ready(r.url)
        first = totals(r.url)
    assert first
    code = main(["prune", "--db", str(r.db), "--config", str(tmp_path / "cidash.toml"), "--before", "0d"])
    assert code == 0
    with Store.open(r.db) as store:
        assert store.counts()["pipelines"] == 0
    with serving(group_sim, tmp_path) as r2:
        wait_ready(r2.url)
        second = totals(r2.url)
    for key, value in first.items():
        assert second.get(key, -1) >= value, key


def test_port_in_use_is_one_line_exit_2(
    group_sim: SimulatedGitLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from serve_support import write_config

    config = write_config(tmp_path, group_sim)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main(["serve", "--config", str(config), "--group", "platform", "--listen", f"127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "already in use" in err and "Traceback" not in err


def test_a_store_of_another_gitlab_is_refused_at_start(
    group_sim: SimulatedGitLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One line and exit 2 before listening or syncing, not a failed sync every cycle (cidash.sync.origin)."""
    from cidash.store import Store
    from cidash.sync.origin import claim_store_origin
    from serve_support import write_config

    db = tmp_path / "serve.db"
    with Store.open(db) as store:
        claim_store_origin(store, "https://gitlab.elsewhere.example")
    config = write_config(tmp_path, group_sim)
    requests = group_sim.stats.total_requests
    code = main(["serve", "--config", str(config), "--group", "platform", "--db", str(db), "--listen", "127.0.0.1:0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "https://gitlab.elsewhere.example" in err and "--accept-origin" in err
    assert group_sim.stats.total_requests == requests


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--listen", "nonsense:port"], "--listen"),
        (["--interval", "0"], "--interval"),
        (["--jitter", "1.5"], "--jitter"),
        (["--webhook-secret-file", "/nonexistent/secret"], "--webhook-secret-file"),
    ],
)
def test_bad_options_are_one_line(
    argv: list[str], fragment: str, group_sim: SimulatedGitLab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from serve_support import write_config

    config = write_config(tmp_path, group_sim)
    assert main(["serve", "--config", str(config), "--group", "platform", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err


def test_nothing_below_serve_imports_it() -> None:
    """The core never imports ``cidash.serve`` (only ``cidash.commands.serve`` does)."""
    import ast

    import cidash

    root = Path(cidash.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("serve/") or rel == "commands/serve.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{rel}: {n}" for n in names if n == "cidash.serve" or n.startswith("cidash.serve.")]
    assert offenders == []


def test_team_page_documents_every_family() -> None:
    from cidash.export import FAMILIES

    page = (REPO_ROOT / "docs" / "team.md").read_text(encoding="utf-8")
    missing = [name for name in FAMILIES if f"`{name}" not in page]
    assert missing == []


def test_export_counters_never_fall_across_prune(group_sim: SimulatedGitLab, tmp_path: Path) -> None:
    """The textfile-collector path: `cidash sync`, export, prune everything, export again."""
    from serve_support import write_config

    config = str(write_config(tmp_path, group_sim))
    db = str(tmp_path / "serve.db")
    assert main(["sync", "--config", config, "--project", group_sim.project_path]) == 0
    base = ["export", "--config", config, "--project", group_sim.project_path]

    def counters(fmt: str, parser: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        out = tmp_path / f"export.{fmt}"
        assert main([*base, "--format", fmt, "--output", str(out)]) == 0
        found = {}
        for name, samples in series(out.read_text(encoding="utf-8"), parser).items():
            if name.endswith(("_total", "_bucket", "_count", "_sum")):
                for s in samples:
                    found[(name, tuple(sorted(s.labels.items())))] = s.value
        return found

    first = counters("openmetrics", om_families)
    assert any(name == "cidash_cache_restores_total" for name, _ in first)
    assert counters("prometheus", prom_families) == first  # same series, and exporting twice adds nothing
    assert main(["prune", "--config", config, "--db", db, "--before", "0d"]) == 0
    after = counters("openmetrics", om_families)
    assert after == first


def test_export_never_creates_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.db"
    assert main(["export", "--db", str(missing), "--format", "openmetrics"]) == 2
    assert not missing.exists() and "does not exist" in capsys.readouterr().err


def test_running_totals_fold_in_batches_to_the_same_numbers(
    group_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import cidash.export as export
    from serve_support import write_config

    config = str(write_config(tmp_path, group_sim))
    assert main(["sync", "--config", config, "--project", group_sim.project_path]) == 0
    copy = tmp_path / "copy.db"
    shutil.copy(tmp_path / "serve.db", copy)
    results = []
    for db, batch in ((tmp_path / "serve.db", export.FOLD_BATCH), (copy, 7)):
        monkeypatch.setattr(export, "FOLD_BATCH", batch)
        with Store.open(db) as store:
            project = store.project(group_sim.project_path)
            assert project is not None
            counted = export.update_running_totals(store, project, "build-ci-image")
            assert export.update_running_totals(store, project, "build-ci-image") == 0  # nothing twice
            results.append((counted, store.metric_totals()))
    (counted, totals), (counted_7, totals_7) = results
    assert counted > 7 * 3 and counted == counted_7
    assert [row[:3] for row in totals] == [row[:3] for row in totals_7]  # the same series
    # the same values: counts exactly; sums of seconds up to the order the batches added them in
    assert [row[3] for row in totals] == pytest.approx([row[3] for row in totals_7], rel=1e-12, abs=0)


def test_webhook_body_limits_and_unknown_paths(running: Running) -> None:
    import http.client

    host, port = "127.0.0.1", running.app.port

    def raw(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> int:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body:
            conn.send(body)
        status = conn.getresponse().status
        conn.close()
        return status

    token = {"X-Gitlab-Token": SECRET, "X-Gitlab-Event": "Pipeline Hook"}
    assert raw("POST", "/webhook", {**token, "Transfer-Encoding": "chunked"}, b"0\r\n\r\n") == 411
    assert raw("POST", "/webhook", token) == 411
    assert raw("POST", "/webhook", {**token, "Content-Length": str(50 * 1024 * 1024)}) == 413
    assert raw("POST", "/webhook", {**token, "Content-Length": "-5"}) == 400
    assert raw("GET", "/nothing-here", {}) == 404
    assert raw("POST", "/metrics", {"Content-Length": "0"}) == 404
    assert request(running.url + "/healthz")[0] == 200  # still serving


def test_registry_is_read_hourly_or_after_an_image_build(group_sim: SimulatedGitLab, tmp_path: Path) -> None:
    from datetime import timedelta

    from cidash.config import load_config
    from cidash.models import Job
    from cidash.serve.app import options_for
    from cidash.store import from_db_time
    from cidash.sync import CURSOR_REGISTRY, SyncOptions
    from serve_support import write_config

    config_file = str(write_config(tmp_path, group_sim))
    assert main(["sync", "--config", config_file, "--project", group_sim.project_path]) == 0
    config = load_config(config_file)
    with Store.open(tmp_path / "serve.db") as store:
        project = store.project(group_sim.project_id)
        assert project is not None
        cursor = store.cursor(project.id, CURSOR_REGISTRY)
        fetched = from_db_time(cursor)
        assert fetched is not None
        base = SyncOptions.from_config(config, now=fetched)
        assert base.fetch_registry

        def due(now: Any) -> bool:
            return options_for(store, project, base, "build-ci-image", now).fetch_registry

        assert not due(fetched + timedelta(minutes=5))
        assert due(fetched + base.registry_refresh)
        build = next(j for j in store.jobs(project.id, name="build-ci-image"))
        store.upsert_jobs(
            [
                Job(
                    **{
                        **{f: getattr(build, f) for f in Job.__slots__},
                        "id": build.id + 10**6,
                        "created_at": fetched,
                        "started_at": fetched,
                        "finished_at": fetched + timedelta(minutes=3),
                        "status": "success",
                    }
                )
            ]
        )
        assert due(fetched + timedelta(minutes=5))


def test_two_serve_processes_on_one_postgresql_store_split_the_work(
    group_sim: SimulatedGitLab, tmp_path: Path, pg_url: str
) -> None:
    """Team mode: two serve processes share one PostgreSQL database; the project lease makes each project's sync
    happen in one of them at a time, so no job log is downloaded twice."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        serving(group_sim, tmp_path / "a", db=pg_url) as first,
        serving(group_sim, tmp_path / "b", db=pg_url) as second,
    ):
        wait_ready(first.url)
        wait_ready(second.url)
        prom = series(request(second.url + "/metrics")[2].decode())
        events = [e["event"] for r in (first, second) for e in log_lines(r)]
    assert "sync_failed" not in events and "sync" in events
    traces = [path for method, path, status in group_sim.stats.log if path.endswith("/trace") and status == 200]
    assert traces and len(traces) == len(set(traces))  # every log fetched once, across both processes
    assert prom.get("cidash_syncs_total")


def test_connections_past_the_cap_are_closed_at_once(
    group_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each connection has a thread: past the cap a new connection is closed as it is accepted (before, silent
    sockets made a thread each, for ever), and a slot is free again when its connection ends."""
    from cidash.serve import http as serve_http

    monkeypatch.setattr(serve_http._Server, "max_connections", 3)
    with serving(group_sim, tmp_path) as r:
        wait_ready(r.url)
        server = r.app.server
        assert server is not None
        silent = [socket.create_connection(("127.0.0.1", r.app.port), timeout=30) for _ in range(3)]
        wait_for(lambda: getattr(server, "connections", 3) >= 3, 30, "three connections served")
        extra = socket.create_connection(("127.0.0.1", r.app.port), timeout=30)  # (30 s: a bound for a hung test)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answered = extra.recv(1024)
        except ConnectionResetError:
            answered = b""
        assert answered == b""  # over the cap: closed unanswered
        extra.close()
        for s in silent:
            s.close()
        wait_for(lambda: getattr(server, "connections", 0) == 0, 30, "the connections ended")
        assert request(r.url + "/healthz")[0] == 200
        assert "too many connections" in r.log.getvalue()


def test_a_silent_connection_is_closed_after_the_idle_time(
    group_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cidash.serve import http as serve_http

    monkeypatch.setattr(serve_http._Handler, "timeout", 0.5)
    with serving(group_sim, tmp_path) as r:
        wait_ready(r.url)
        silent = socket.create_connection(("127.0.0.1", r.app.port), timeout=30)  # (30 s: a bound for a hung test)
        assert silent.recv(1024) == b""  # closed by the server, unanswered
        silent.close()
        partial = socket.create_connection(("127.0.0.1", r.app.port), timeout=30)
        partial.sendall(b"GET /healthz HTTP/1.1\r\n")  # a request that never ends
        assert partial.recv(1024) == b""
        partial.close()
        assert request(r.url + "/healthz")[0] == 200


def test_a_request_not_whole_in_time_is_closed(
    group_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that trickles its request (a byte of one header every 0.1 s) meets no read's timeout: its request
    must be whole REQUEST_SECONDS after its first byte (here 1 s), else the connection is closed and logged once;
    a keep-alive connection waiting for its next request is not counted against it."""
    import threading

    from cidash.serve import http as serve_http

    monkeypatch.setattr(serve_http, "REQUEST_SECONDS", 1.0)
    with serving(group_sim, tmp_path) as r:
        wait_ready(r.url)
        slow = socket.create_connection(("127.0.0.1", r.app.port), timeout=30)  # (30 s: a bound for a hung test)
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        stop = threading.Event()

        def trickle() -> None:
            while not stop.wait(0.1):
                try:
                    slow.sendall(b"a")
                except OSError:
                    return

        threading.Thread(target=trickle, daemon=True).start()
        try:
            try:
                answered = slow.recv(1024)
            except ConnectionResetError:
                answered = b""
        finally:
            stop.set()
        assert answered == b""  # closed unanswered, long before the client's own 30 s bound
        slow.close()
        assert "request not whole in time" in r.log.getvalue()
        keep = http.client.HTTPConnection("127.0.0.1", r.app.port, timeout=30)
        for _ in range(2):  # the same connection, idle between its requests for longer than the deadline
            keep.request("GET", "/healthz")
            assert keep.getresponse().read() and keep.sock is not None
            stop.wait(1.5)
        keep.close()


def test_an_answer_not_taken_in_time_is_cut(
    group_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that reads its answer slowly (64 KiB every 50 ms) meets no write's timeout: the answer must be taken
    ANSWER_SECONDS after it is ready (here 1 s, for 16 MB that would take it ~13 s), else the connection is closed
    and logged once."""
    import threading

    from cidash.serve import http as serve_http
    from cidash.serve.app import ServeApp

    size = 16_000_000
    monkeypatch.setattr(serve_http, "ANSWER_SECONDS", 1.0)
    monkeypatch.setattr(ServeApp, "metrics", lambda self, accept: (b"x" * size, "text/plain"))
    with serving(group_sim, tmp_path) as r:
        wait_ready(r.url)
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        slow.settimeout(30)  # (a bound for a hung test)
        slow.connect(("127.0.0.1", r.app.port))
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        got, pause = 0, threading.Event()
        while True:
            try:
                data = slow.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            got += len(data)
            pause.wait(0.05)
        slow.close()
        assert got < size  # cut, not written whole
        assert "answer not taken in time" in r.log.getvalue()
        assert request(r.url + "/healthz")[0] == 200


def test_a_webhook_secret_with_non_ascii_characters_matches(group_sim: SimulatedGitLab, tmp_path: Path) -> None:
    """GitLab sends the secret token's UTF-8 bytes; the HTTP server reads a header as Latin-1: compared byte for
    byte, a secret such as 'pässwörd-秘密' matches (before, it was 401 for ever), and a near miss does not."""
    import http.client

    secret = "pässwörd-秘密"
    with serving(group_sim, tmp_path, webhook_secret=secret) as r:
        wait_ready(r.url)
        body = pipeline_hook(group_sim.project_id, group_sim.project_path)

        def deliver(token: bytes) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", r.app.port, timeout=30)
            conn.putrequest("POST", "/webhook")
            conn.putheader("X-Gitlab-Event", "Pipeline Hook")
            conn.putheader("X-Gitlab-Token", token)  # bytes: sent as they are
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            status = conn.getresponse().status
            conn.close()
            return status

        assert deliver(secret.encode("utf-8")) == 202
        assert deliver("pässwörd-秘".encode()) == 401
        assert deliver(secret.encode("latin-1", "replace")) == 401
