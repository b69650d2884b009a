"""Remote adapters: rate limiter, retry policy, error mapping, request accounting, conversion to models."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cidash.connection import Connection, Secret
from cidash.errors import AuthError, NotFound, PermissionDenied, RateLimited, RemoteError, Unsupported
from cidash.remote import GitLabClient
from cidash.remote import jobs as remote_jobs
from cidash.remote import pipelines as remote_pipelines
from cidash.remote import projects as remote_projects
from cidash.remote.policy import (
    RateLimiter,
    RetryPolicy,
    describe_network_error,
    endpoint_kind,
    error_for_status,
    parse_retry_after,
)
from cidash.remote.wire import job_from_json, pipeline_from_json
from cidash.sim import SimulatedGitLab


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


def test_rate_limiter_ceiling_spaces_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.acquire()
    assert clock.slept == pytest.approx([0.1] * 4)


def test_rate_limiter_honours_remaining_reset_and_retry_after() -> None:
    clock = FakeClock()
    wall = [5000.0]
    limiter = RateLimiter(0, clock=clock, wall=lambda: wall[0], sleep=clock.sleep)
    limiter.observe({"RateLimit-Limit": "100", "RateLimit-Remaining": "50", "RateLimit-Reset": "5010"}, 200)
    limiter.acquire()
    assert clock.slept == []
    limiter.observe({"RateLimit-Remaining": "1", "RateLimit-Reset": "5010"}, 200)
    limiter.acquire()
    assert clock.slept == [pytest.approx(10.0)]
    assert limiter.state.limit == 100 and limiter.state.remaining == 1
    limiter.observe({"Retry-After": "3"}, 429)
    limiter.acquire()
    assert clock.slept[-1] == pytest.approx(3.0)


def test_retry_after_and_backoff() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None
    policy = RetryPolicy(base_delay=0.2, max_delay=1.0, max_retry_after=5)
    assert 0.15 <= policy.delay(1) <= 0.25 and policy.delay(10) <= 1.25 and policy.delay(1, 99) == 5


@pytest.mark.parametrize(
    ("status", "missing", "cls"),
    [
        (401, "endpoint", AuthError),
        (403, "project", PermissionDenied),
        (404, "project", NotFound),
        (404, "endpoint", Unsupported),
        (405, "endpoint", Unsupported),
        (429, "endpoint", RateLimited),
        (500, "endpoint", RemoteError),
    ],
)
def test_error_mapping(status: int, missing: str, cls: type[RemoteError]) -> None:
    err = error_for_status(status, "GET /projects/1/x", missing=missing)  # type: ignore[arg-type]
    assert type(err) is cls and str(status) in err.one_line()


def test_a_401_without_a_token_says_none_is_configured() -> None:
    """A request sent without a token that gets 401 did not have a token rejected: the error says to set one."""
    without = error_for_status(401, "GET /projects/42/pipelines", token_sent=False)
    assert isinstance(without, AuthError) and "no GitLab token is configured" in without.one_line()
    assert "rejected" not in without.one_line() and "GITLAB_TOKEN" in (without.hint or "")
    assert "rejected the token" in error_for_status(401, "GET /projects/42/pipelines").one_line()


def test_sync_without_a_token_says_none_is_configured(
    small_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cidash.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITLAB_URL", small_sim.url)
    code = main(["sync", "--project", small_sim.project_path, "--db", str(tmp_path / "s.db")])
    err = capsys.readouterr().err
    assert code == 2 and "no GitLab token is configured" in err and "rejected" not in err


def test_error_message_from_the_body_is_said_once() -> None:
    """GitLab's 401 body is {"message": "401 Unauthorized"}: the status is not repeated; a real reason is kept."""
    restated = error_for_status(401, "GET /projects/42/pipelines", message="401 Unauthorized").one_line()
    assert restated.count("401") == 1 and "Unauthorized" not in restated
    reason = error_for_status(403, "GET /projects/42/jobs", message="insufficient_scope").one_line()
    assert "403" in reason and "insufficient_scope" in reason


def test_endpoint_kinds_and_network_reasons() -> None:
    assert endpoint_kind("GET", "/api/v4/projects/42/jobs/7/trace") == "GET trace"
    assert endpoint_kind("POST", "/api/graphql") == "POST graphql"  # GraphQL's endpoint, beside /api/v4
    assert endpoint_kind("GET", "/api/v4/projects/42/pipelines?page=2") == "GET pipelines"
    assert endpoint_kind("GET", "/api/v4/projects/42/pipelines/9") == "GET pipeline"
    assert endpoint_kind("HEAD", "/api/v4/projects/42/repository/files/go.mod") == "HEAD files"
    assert describe_network_error("[Errno 111] Connection refused") == "connection refused"
    assert describe_network_error("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed") == (
        "certificate verify failed"
    )


def test_conversions() -> None:
    p = pipeline_from_json(
        1, {"id": 5, "iid": 2, "ref": "main", "sha": "s", "status": "success", "created_at": "2026-05-01T10:00:00.000Z"}
    )
    assert p.created_at == datetime(2026, 5, 1, 10, tzinfo=UTC) and p.updated_at == p.created_at
    j = job_from_json(
        1,
        {
            "id": 9,
            "name": "build",
            "stage": "b",
            "status": "failed",
            "created_at": "2026-05-01T10:00:00+02:00",
            "pipeline": {"id": 5, "ref": "main", "sha": "s"},
            "runner": {"id": 3, "description": "docker-1"},
            "failure_reason": "script_failure",
            "duration": 12,
        },
    )
    assert j.pipeline_id == 5 and j.runner == "docker-1" and j.duration == 12.0
    assert j.created_at == datetime(2026, 5, 1, 8, tzinfo=UTC)


def test_clients_against_the_simulator(small_sim: SimulatedGitLab) -> None:
    conn = Connection(url=small_sim.url, token=Secret(small_sim.token), max_rps=0)
    with GitLabClient(conn) as client:
        project = remote_projects.project(client.http, small_sim.project_path)
        assert project.id == small_sim.project_id
        assert remote_projects.project(client.http, str(small_sim.project_id)).path == small_sim.project_path
        with pytest.raises(NotFound, match="project not found"):
            remote_projects.project(client.http, "no/such")
        pages = list(remote_pipelines.pipeline_pages(client.http, project.id, updated_after=None))
        assert sum(len(p) for p in pages) == small_sim.truth.pipelines
        assert all(a.updated_at <= b.updated_at for page in pages for a, b in itertools.pairwise(page))
        ids = [j.id for j in remote_jobs.jobs_newest_first(client.http, project.id)]
        assert ids == sorted(ids, reverse=True) and len(ids) == small_sim.truth.jobs
        heads = client.http.file_head(project.id, ".gitlab-ci.yml", "main")
        assert heads is not None and heads.blob_id and heads.content_sha256
        assert client.http.file_head(project.id, "no-such-file", "main") is None
        chunks: list[bytes] = []
        assert client.http.stream_trace(project.id, ids[-1], lambda: chunks.append)
        assert b"Running with gitlab-runner" in b"".join(chunks)
        requests, nbytes = client.stats.snapshot()
        assert requests == small_sim.stats.total_requests and nbytes > 0
    bad = Connection(url=small_sim.url, token=Secret("glpat-wrong-0123456789"), max_rps=0)
    with GitLabClient(bad) as client, pytest.raises(AuthError) as info:
        remote_projects.project(client.http, small_sim.project_path)
    assert "glpat-wrong-0123456789" not in info.value.one_line()
    with GitLabClient(bad) as client, pytest.raises(AuthError):
        client.http.registry_repositories(small_sim.project_id)


def test_http_client_keeps_one_connection_per_thread(small_sim: SimulatedGitLab) -> None:
    conn = Connection(url=small_sim.url, token=Secret(small_sim.token), max_rps=0)
    with GitLabClient(conn) as client:
        http = client.http
        heads: dict[str, object] = {}

        def work(name: str) -> None:
            for _ in range(3):  # keep-alive: one client (and connection) per thread, reused
                assert http.file_head(small_sim.project_id, ".gitlab-ci.yml", "main") is not None
            heads[name] = http.client

        threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        clients = list(heads.values())
        assert len({id(c) for c in clients}) == 3
        assert http.client is not clients[0]  # the main thread gets its own
        # the finished threads' clients are closed when the next thread opens one, not kept open
        assert all(c.is_closed for c in clients)  # type: ignore[attr-defined]
        assert client.stats.requests == 9
    assert http.client is not None and http.client.is_closed is False  # reopened on use after close
    http.close()
