"""The httpx/http.client transport of :mod:`cidash.remote.http`: gzip, stale keep-alive, redirects, proxies."""

from __future__ import annotations

import gzip
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from cidash.connection import Connection, Secret
from cidash.remote import GitLabClient

LOG = b"Running with gitlab-runner 17.0\n" * 500
BIG_LOG = b"".join(b"line %07d of a long job log\n" % i for i in range(40_000))  # ~1.1 MB


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str | None]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        Handler.seen.append((self.path, self.headers.get("PRIVATE-TOKEN")))
        if self.path == "/api/v4/projects/1/jobs/2/trace":
            self._send(200, gzip.compress(LOG), {"Content-Encoding": "gzip", "RateLimit-Remaining": "500"})
        elif self.path.startswith("/api/v4/projects/1/resource_groups"):
            body = gzip.compress(json.dumps([{"key": "prod", "process_mode": "oldest_first"}]).encode())
            self._send(200, body, {"Content-Encoding": "gzip", "Content-Type": "application/json"})
        elif self.path == "/api/v4/projects/1/jobs/3/trace":
            self._send(200, b"plain log\n", {})
            self.close_connection = True  # an idle keep-alive the server drops (no Connection: close header)
        elif self.path == "/api/v4/projects/1/jobs/5/trace":
            self._send(200, BIG_LOG, {})
        elif self.path == "/api/v4/projects/1/jobs/4/trace":
            self._send(301, b"", {"Location": "/api/v4/projects/1/jobs/3/trace"})
        else:
            self._send(404, b'{"message":"404 Not found"}', {"Content-Type": "application/json"})


@pytest.fixture
def server() -> Iterator[str]:
    Handler.seen = []
    yield from _serving(Handler)


def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A server on 127.0.0.1 answering with ``handler`` for as long as the generator runs: its URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _client(url: str) -> GitLabClient:
    return GitLabClient(Connection(url=url, token=Secret("glpat-secret-value-123"), max_rps=0))


def test_gzip_bodies_are_decoded_streamed_or_whole(server: str) -> None:
    with _client(server) as client:
        chunks: list[bytes] = []
        assert client.http.stream_trace(1, 2, lambda: chunks.append)
        assert b"".join(chunks) == LOG
        groups = client.http.resource_groups(1)
        assert [(g.key, g.process_mode) for g in groups] == [("prod", "oldest_first")]
        assert not client.http.stream_trace(1, 99, lambda: chunks.append)  # 404: no log
        assert client.limiter.state.remaining == 500
        assert client.stats.requests == 3 and client.stats.bytes >= len(LOG)
    assert all(token == "glpat-secret-value-123" for _, token in Handler.seen)


def test_a_dropped_keep_alive_connection_is_reopened_without_a_retry(server: str) -> None:
    with _client(server) as client:
        for _ in range(3):
            chunks: list[bytes] = []
            assert client.http.stream_trace(1, 3, lambda: chunks.append)  # noqa: B023 (used at once)
            assert b"".join(chunks) == b"plain log\n"
        assert client.stats.retries == 0 and client.stats.requests == 3


def test_same_origin_redirects_are_followed_with_the_token(server: str) -> None:
    with _client(server) as client:
        chunks: list[bytes] = []
        assert client.http.stream_trace(1, 4, lambda: chunks.append)
        assert b"".join(chunks) == b"plain log\n"
    assert Handler.seen == [
        ("/api/v4/projects/1/jobs/4/trace", "glpat-secret-value-123"),
        ("/api/v4/projects/1/jobs/3/trace", "glpat-secret-value-123"),
    ]


def test_a_proxy_in_the_environment_is_used_unless_no_proxy_names_the_host(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY is honoured (the request goes to the proxy: here a closed port, so it cannot connect), and
    NO_PROXY exempts the host (the request goes straight to the server)."""
    from cidash.errors import CidashError
    from cidash.remote import RetryPolicy

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    once = RetryPolicy(attempts=1)
    conn = Connection(url=server, token=Secret("glpat-secret-value-123"), max_rps=0)
    with GitLabClient(conn, retry=once) as client, pytest.raises(CidashError):
        client.http.stream_trace(1, 2, lambda: [].append)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with GitLabClient(conn, retry=once) as client:
        chunks: list[bytes] = []
        assert client.http.stream_trace(1, 2, lambda: chunks.append)
        assert b"".join(chunks) == LOG


def test_a_sink_that_raises_does_not_spoil_the_connection(server: str) -> None:
    def failing() -> Callable[[bytes], None]:
        def sink(chunk: bytes) -> None:
            raise ValueError("parser bug")

        return sink

    with _client(server) as client:
        with pytest.raises(ValueError, match="parser bug"):
            client.http.stream_trace(1, 2, failing)
        chunks: list[bytes] = []
        assert client.http.stream_trace(1, 2, lambda: chunks.append)
        assert b"".join(chunks) == LOG and client.stats.retries == 0


class GzipCutHandler(Handler):
    def do_GET(self) -> None:
        Handler.seen.append((self.path, self.headers.get("PRIVATE-TOKEN")))
        body = gzip.compress(LOG)
        if self.path.endswith("/jobs/5/trace"):  # a gzip stream cut short, framed as complete
            self._send(200, body[: len(body) // 2], {"Content-Encoding": "gzip"})
        else:  # framed twice, differently: which length is the body's?
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.send_header("Content-Length", "12")
            self.end_headers()
            self.wfile.write(b"0123456789")


@pytest.mark.parametrize("job", [5, 6], ids=["gzip-cut", "two-lengths"])
@pytest.mark.parametrize("proxied", [False, True], ids=["http.client", "httpx"])
def test_a_body_whose_framing_does_not_hold_is_never_complete(
    job: int, proxied: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cidash.errors import TruncatedBody
    from cidash.remote import RetryPolicy

    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)

    Handler.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), GzipCutHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        connection = Connection(url=f"http://127.0.0.1:{httpd.server_address[1]}", token=Secret("x" * 8), max_rps=0)
        with GitLabClient(connection, retry=RetryPolicy(attempts=2, base_delay=0)) as client:
            if proxied:  # httpx through no proxy at all: the same code path a proxy selects
                client.http._fast = False
            with pytest.raises(TruncatedBody):
                client.http.stream_trace(1, job, lambda: lambda chunk: None)
            assert client.stats.retries == 1
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert len(Handler.seen) == 2


# -- the fast path's own HTTP/1.1 framing (cidash.remote.conn) ------------------------------------------------


def _canned(answers: list[bytes]) -> tuple[str, list[bytes], Callable[[], None]]:
    """A one-connection-at-a-time server that answers each request with the next canned bytes, then closes."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def serve() -> None:
        pending = list(answers)
        while pending:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while pending:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        got = conn.recv(65536)
                        if not got:
                            break
                        data += got
                    if not data:
                        break
                    length = re.search(rb"\r\ncontent-length: *(\d+)", data.split(b"\r\n\r\n")[0], re.I)
                    while length and len(data.split(b"\r\n\r\n", 1)[1]) < int(length[1]):
                        data += conn.recv(65536)  # the body, when the request has one
                    requests.append(data)
                    answer = pending.pop(0)
                    conn.sendall(answer)
                    if b"Connection: close" in answer or b"HTTP/1.0" in answer:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", requests, listener.close


RAW_CASES = {
    "chunked with extensions and trailers": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=x\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
        b"hello world",
    ),
    "interim 100 then the answer": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"ok",
    ),
    "HTTP/1.0 body to the close": (b"HTTP/1.0 200 OK\r\n\r\nuntil the end", b"until the end"),
    "folded case, spaces in headers": (b"HTTP/1.1 200 OK\r\ncontent-LENGTH:   4 \r\n\r\nabcd", b"abcd"),
}


@pytest.mark.parametrize("case", list(RAW_CASES), ids=list(RAW_CASES))
def test_the_fast_path_reads_every_framing_gitlab_may_send(case: str) -> None:
    answer, body = RAW_CASES[case]
    url, requests, stop = _canned([answer, answer])
    try:
        with _client(url) as client:
            for _ in range(2):  # the second request reuses the connection, or reconnects after a close
                chunks: list[bytes] = []
                assert client.http.stream_trace(1, 2, lambda: chunks.append)  # noqa: B023 (used at once)
                assert b"".join(chunks) == body
            assert client.stats.retries == 0
    finally:
        stop()
    assert requests[0].startswith(b"GET /api/v4/projects/1/jobs/2/trace HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nPRIVATE-TOKEN: glpat-secret-value-123\r\n" in requests[0]


RAW_BROKEN = {
    "bad chunk size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "chunk cut by a close": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n10\r\nhello",
    "short Content-Length": b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nConnection: close\r\n\r\nhello",
    "not HTTP": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "headers without end": b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n",
    # numbers Python reads differently or not at all: more than 4,300 digits, Latin-1 digits ("²"), "1_0", "0x"
    "Content-Length of 5,000 digits": b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\nhello",
    "Content-Length in a superscript digit": b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nhi",
    "status code in superscript digits": b"HTTP/1.1 \xb2\xb2\xb2 OK\r\nContent-Length: 2\r\n\r\nok",
    "chunk size of 5,000 hex digits": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"f" * 5000
    + b"\r\nab",
    "chunk size with an underscore": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n" + b"x" * 16,
    "chunk size with 0x": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("case", list(RAW_BROKEN), ids=list(RAW_BROKEN))
def test_the_fast_path_never_takes_a_misframed_answer_as_complete(case: str) -> None:
    from cidash.errors import ConnectError, TruncatedBody
    from cidash.remote import RetryPolicy

    url, _, stop = _canned([RAW_BROKEN[case]] * 2)
    try:
        connection = Connection(url=url, token=Secret("glpat-secret-value-123"), max_rps=0, timeout=5)
        with GitLabClient(connection, retry=RetryPolicy(attempts=2, base_delay=0)) as client:
            with pytest.raises((TruncatedBody, ConnectError)) as info:
                client.http.stream_trace(1, 2, lambda: lambda chunk: None)
            assert client.stats.retries == 1
    finally:
        stop()
    assert "glpat-secret-value-123" not in info.value.one_line()


def test_a_small_log_is_parsed_after_its_slot_is_free_and_a_long_one_streamed_in_it(server: str) -> None:
    """A log under SINK_AFTER_SLOT reaches its sink whole once the request's slot of the in-flight window is given
    back (the next request goes out while it is parsed); a longer one is streamed into the sink as it arrives,
    still holding its slot (memory stays bounded). Both arrive complete and once."""
    from cidash.remote.http import SINK_AFTER_SLOT

    assert len(LOG) < SINK_AFTER_SLOT < len(BIG_LOG)
    with _client(server) as client:
        in_flight: list[int] = []
        chunks: list[bytes] = []

        def sink_factory() -> Callable[[bytes], None]:
            def sink(chunk: bytes) -> None:
                in_flight.append(client.limiter.in_flight)
                chunks.append(chunk)

            return sink

        assert client.http.stream_trace(1, 2, sink_factory)
        assert b"".join(chunks) == LOG and set(in_flight) == {0}
        in_flight.clear()
        chunks.clear()
        assert client.http.stream_trace(1, 5, sink_factory)
        assert b"".join(chunks) == BIG_LOG and len(chunks) > 1
        assert in_flight[-1] == 1  # the tail of a long body is fed while its request still holds the slot
        assert client.stats.requests == 2 and client.stats.retries == 0


_PIPELINE = {"project_id": 1, "sha": "a" * 40, "ref": "main", "status": "success", "created_at": "2026-11-30T10:00:00Z"}
#: A listing whose second pipeline's iid has 5,000 digits: valid JSON that Python's json refuses to read at all.
HUGE_PAGE = (
    json.dumps([{**_PIPELINE, "id": 11, "iid": 1}, {**_PIPELINE, "id": 12, "iid": 0}])
    .replace('"iid": 0', '"iid": ' + "9" * 5000)
    .encode()
)
DEEP = b"[" * 100_000 + b"]" * 100_000  # nested past Python's recursion limit


#: Listings read outside the wire's record checks, each with records that are not what the endpoint returns.
ODD_RECORDS: dict[str, Any] = {
    "/api/v4/projects/1/registry/repositories": [{"id": "abc"}, 5, {"id": 7, "path": "g/p\u0000", "location": ["x"]}],
    "/api/v4/projects/1/registry/repositories/7/tags": [{"name": 5}, "x", {"name": "v1"}, {}, {"name": "v\ud800"}],
    "/api/v4/projects/1/resource_groups": [{"key": ["x"]}, 3, {"key": "prod", "process_mode": 7}, {"key": ""}],
    "/api/v4/projects/1/repository/commits": [{"id": "a" * 40, "parent_ids": []}, {"id": 5}],
    # what the actions read (python-gitlab's session)
    "/api/v4/user": {"username": "mal\u0000lory"},
    "/api/v4/projects/2/pipelines": {"not": "a list"},
    "/api/v4/projects/1/pipelines/9/jobs": [
        {"id": 91, "name": "build", "status": "success", "created_at": "2026-11-30T10:00:00Z", "pipeline": {"id": 9}},
        {"id": "abc"},
        5,
    ],
    "/api/v4/projects/1/repository/commits/main": {"id": "a" * 40},
    "/api/v4/projects/1/repository/commits/odd": {"id": "main; not a sha"},
}


#: Repository-files HEAD headers by file: one well-formed, two not what GitLab sends.
HEADS: dict[str, dict[str, str]] = {
    "go.mod": {"X-Gitlab-Blob-Id": "b" * 40, "X-Gitlab-Last-Commit-Id": "c" * 64, "X-Gitlab-Content-Sha256": "D" * 64},
    "go.sum": {"X-Gitlab-Blob-Id": "not-a-blob \x00", "X-Gitlab-Last-Commit-Id": "c" * 40},
    "old.txt": {"X-Gitlab-Blob-Id": "b" * 40},  # a GitLab older than the last two headers
    "Dockerfile": {"X-Gitlab-Blob-Id": "b" * 40, "X-Gitlab-Content-Sha256": "e" * 63},
}


class JSONHandler(Handler):
    def do_HEAD(self) -> None:
        name = self.path.split("?", 1)[0].rsplit("/", 1)[-1]
        if name not in HEADS:
            self._send(404, b"", {})
            return
        self.send_response(200)
        for key, value in HEADS[name].items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        json_type = {"Content-Type": "application/json"}
        path = self.path.split("?", 1)[0]
        if path in ODD_RECORDS:
            self._send(200, json.dumps(ODD_RECORDS[path]).encode(), json_type)
        elif self.path.startswith("/api/v4/projects/1/pipelines?"):
            self._send(200, HUGE_PAGE, json_type)
        elif self.path == "/api/v4/projects/1/pipelines/7":
            self._send(200, DEEP, json_type)
        else:
            self._send(404, DEEP, json_type)


@pytest.fixture
def json_server() -> Iterator[str]:
    yield from _serving(JSONHandler)


def test_a_huge_integer_costs_its_field_and_deep_nesting_is_a_bad_payload(json_server: str) -> None:
    """Python's json refuses an integer of more than 4,300 digits for the whole text, and raises RecursionError on
    deep nesting: a page keeps its other records (on the sync's HTTP path and python-gitlab's alike), and a
    nested body is an ordinary bad answer, never a traceback."""
    from cidash.errors import BadPayload, Unsupported
    from cidash.remote import pipelines as remote_pipelines
    from cidash.remote.policy import RetryPolicy
    from cidash.remote.wire import WireLog

    connection = Connection(url=json_server, token=Secret("glpat-secret-value-123"), max_rps=0)
    with GitLabClient(connection, retry=RetryPolicy(attempts=2, base_delay=0)) as client:
        log = WireLog()
        (page,) = remote_pipelines.pipeline_pages(client.http, 1, updated_after=None, log=log)
        assert [(p.id, p.iid) for p in page] == [(11, 1), (12, None)]
        assert any("iid" in issue for issue in log.issues), log.issues
        with pytest.raises(BadPayload, match="nested too deep"):
            client.http.get_json("/projects/1/pipelines/7")
        with pytest.raises(Unsupported):  # its 404's body is unreadable: the error stands without its message
            client.http.get_json("/projects/1/pipelines/8")


def test_records_outside_the_wire_that_are_not_what_the_endpoint_returns_are_left_out(json_server: str) -> None:
    """Registry repositories, tag names and resource groups without a usable id, name or key are left out (they
    used to raise TypeError or ValueError out of the sync: 'cidash: internal error'); their text is storable; a
    commit history with a record that is not a commit fails its step as a bad answer."""
    from cidash.errors import BadPayload

    with _client(json_server) as client:
        (repository,) = client.http.registry_repositories(1)
        assert (repository.id, repository.path, repository.location) == (7, "g/p\ufffd", None)
        assert client.http.registry_tag_names(1, 7) == ["v1", "v\ufffd"]
        assert [(g.key, g.process_mode) for g in client.http.resource_groups(1)] == [("prod", "unordered")]
        with pytest.raises(BadPayload, match="not a commit"):
            list(client.http.commits(1, "main"))


def test_a_file_head_takes_object_ids_only(json_server: str) -> None:
    """The blob id, last commit id and content SHA-256 GitLab sends for a file are what cache keys and .cache-key
    checks are computed from: a header that is not one (any text a proxy puts there) is a bad answer, retried on
    the next sync, never stored nor read as an absent file; a header not sent is unknown (older GitLab)."""
    from cidash.errors import BadPayload

    with _client(json_server) as client:
        head = client.http.file_head(1, "go.mod", "main")
        assert head is not None and (head.blob_id, head.last_commit_id, head.content_sha256) == (
            "b" * 40,
            "c" * 64,
            "d" * 64,
        )
        old = client.http.file_head(1, "old.txt", "main")
        assert old is not None and (old.blob_id, old.last_commit_id, old.content_sha256) == ("b" * 40, None, None)
        assert client.http.file_head(1, "absent", "main") is None
        for name in ("go.sum", "Dockerfile"):
            with pytest.raises(BadPayload, match="X-Gitlab-"):
                client.http.file_head(1, name, "main")


def test_what_the_actions_read_is_checked_like_the_sync(json_server: str) -> None:
    """The actions' reads (python-gitlab's session): the token's username goes into the audit table as storable
    text; a pipelines listing that is not a list, or a ref whose head is not a commit id, is a bad answer (keys are
    computed at that commit); a pipeline's job the wire rejects is left out, the others shown."""
    from cidash.errors import BadPayload
    from cidash.remote.mutations import ActionsRemote

    with _client(json_server) as client:
        remote = ActionsRemote(client)
        assert remote.username() == "mal\ufffdlory"
        with pytest.raises(BadPayload, match="did not return a list"):
            remote.latest_pipeline(2, "main")
        assert [j.id for j in remote.pipeline_jobs(1, 9)] == [91]
        assert remote.ref_head(1, "main") == "a" * 40
        with pytest.raises(BadPayload, match="not a commit id"):
            remote.ref_head(1, "odd")


@pytest.mark.parametrize("path", ["fast", "httpx"])
def test_an_answer_held_whole_past_its_cap_is_refused_a_streamed_log_is_not(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gzip body a thousand times smaller than what it decodes to (from a proxy or a hostile server) would fill
    the memory of any answer held whole: past MAX_ANSWER_BYTES it is a bad answer (here with the cap at 1 MiB and
    a 2 MiB answer in 2 KB of gzip), on both HTTP stacks. A log streamed into its parser is never held, so never
    refused."""
    from cidash.errors import BadPayload
    from cidash.remote import RetryPolicy, policy
    from cidash.remote import http as remote_http

    monkeypatch.setattr(policy, "MAX_ANSWER_BYTES", 1024 * 1024)
    if path == "httpx":
        monkeypatch.setattr(remote_http.HttpClient, "_fast_connection", lambda self: None)
    bomb = gzip.compress(b"[" + b" " * (2 * 1024 * 1024) + b"]")
    assert len(bomb) < 4096
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n" % len(bomb)
    answers = [head + b"Content-Type: application/json\r\nConnection: close\r\n\r\n" + bomb] * 2
    answers.append(head + b"Content-Type: text/plain\r\nConnection: close\r\n\r\n" + bomb)
    url, _, stop = _canned(answers)
    try:
        connection = Connection(url=url, token=Secret("glpat-secret-value-123"), max_rps=0)
        with GitLabClient(connection, retry=RetryPolicy(attempts=2, base_delay=0)) as client:
            with pytest.raises(BadPayload, match="longer than 1 MiB"):
                client.http.get_json("/projects/1/pipelines/3")
            size = [0]
            assert client.http.stream_trace(1, 2, lambda: lambda chunk: size.__setitem__(0, size[0] + len(chunk)))
            assert size[0] == 2 * 1024 * 1024 + 2
    finally:
        stop()


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"http_proxy": "http://127.0.0.1:9"},
        {"HTTPS_PROXY": "http://127.0.0.1:9"},
        {"all_proxy": "http://127.0.0.1:9"},
        {"HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "127.0.0.1"},
        {"NO_PROXY": "*"},
        {"PROXY": "http://127.0.0.1:9", "MY_PROXYISH": "x"},
    ],
)
def test_proxy_detection_agrees_with_urllib_for_every_spelling(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start-up shortcut (no ``*_proxy`` variable: urllib.request is not imported) decides as urllib does."""
    import urllib.request

    from cidash.remote.http import _proxied

    for name in list(os.environ):
        if name.lower().endswith("proxy") or name.lower().endswith("_proxyish"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for scheme in ("http", "https"):
        proxies = urllib.request.getproxies()
        expected = bool(proxies.get(scheme) or proxies.get("all")) and not urllib.request.proxy_bypass("127.0.0.1")
        assert _proxied(scheme, "127.0.0.1") is expected


# -- answers that never end ------------------------------------------------------------------------------------


def _endless(head: bytes, repeat: bytes, pause: float = 0.0) -> tuple[str, list[int], Callable[[], None]]:
    """A server that answers every request with ``head``, then ``repeat`` again and again until the client hangs
    up (its connections counted in the list); with ``pause``, one ``repeat`` per pause (a trickle)."""
    import socket
    import time

    listener = socket.create_server(("127.0.0.1", 0))
    connections: list[int] = []
    block = repeat if pause else repeat * max(1, 65536 // len(repeat))

    def feed(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(head)
                while True:
                    conn.sendall(block)
                    if pause:
                        time.sleep(pause)
            except OSError:
                return

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(1)
            threading.Thread(target=feed, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", connections, listener.close


def _error_of(url: str, timeout: float, request: Callable[[GitLabClient], object], stop: Callable[[], None]) -> Any:
    """The error ``request`` ends in against ``url`` (two tries, no pause), run on a thread given 60 s: an answer
    that never ends would hold the test for ever otherwise. ``stop`` ends the server after it."""
    from cidash.remote import RetryPolicy

    outcome: list[BaseException | None] = []

    def call() -> None:
        connection = Connection(url=url, token=Secret("glpat-secret-value-123"), max_rps=0, timeout=timeout)
        try:
            with GitLabClient(connection, retry=RetryPolicy(attempts=2, base_delay=0)) as client:
                request(client)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    try:
        caller.start()
        caller.join(60)
        assert not caller.is_alive(), "the client is still reading an answer that does not end"
    finally:
        stop()
    return outcome[0]


@pytest.mark.parametrize("path", ["fast", "httpx"])
@pytest.mark.parametrize("what", ["an API answer", "a log"])
def test_an_answer_that_trickles_is_ended(path: str, what: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that sends a byte every 20 ms meets no read's timeout: an answer must be whole within SLOW_TIMEOUTS
    x [gitlab] timeout (here 10 x 0.2 s) plus a second per 64 KiB it brought; this one is ended after ~2 s, on
    either HTTP stack, for an answer held whole or a log streamed into its parser, and not retried (a try that took
    minutes would take as long again: the item waits for the next sync)."""
    from cidash.errors import CidashError
    from cidash.remote import http as remote_http

    if path == "httpx":
        monkeypatch.setattr(remote_http.HttpClient, "_fast_connection", lambda self: None)
    kind = "application/json" if what == "an API answer" else "text/plain"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: 1000000\r\n\r\n" % kind.encode()
    url, connections, stop = _endless(head, b"a", pause=0.02)

    def request(client: GitLabClient) -> object:
        if what == "a log":
            return client.http.stream_trace(1, 2, lambda: lambda chunk: None)
        return client.http.get_json("/version")

    error = _error_of(url, 0.2, request, stop)
    assert isinstance(error, CidashError), error
    assert re.search(r"an answer too slow: still arriving \d+ s after the request, at under 64 KiB/s", error.one_line())
    assert len(connections) == 1 and "(1 try)" in error.one_line()


WIRE = f"an answer still going past {2 * 1024 * 1024 + 256 * 1024:,} bytes on the wire"
ENDLESS = {
    "interim answers": (b"", b"HTTP/1.1 100 Continue\r\n\r\n", "more than 16 interim (1xx) answers", WIRE),
    "trailers": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n",
        b"X-Trailer: 1\r\n",
        "trailers over 64 KiB",
        "",  # h11 refuses trailers past 16 KiB itself
    ),
    "chunk extensions": (  # a byte of body per 4 KB of framing: the body stays tiny, the answer never ends
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"1;" + b"x" * 4000 + b"\r\n \r\n",
        WIRE,
        WIRE,
    ),
}


@pytest.mark.parametrize("path", ["fast", "httpx"])
@pytest.mark.parametrize("case", list(ENDLESS), ids=list(ENDLESS))
def test_an_answer_that_never_ends_is_refused(case: str, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Endless interim answers, trailers or framing carry no body bytes, so no cap on the body ends them: on the
    sync's own connections each has its own bound, and on either HTTP stack no answer may take much more than
    twice its body's cap on the wire (here 1 MiB)."""
    from cidash.errors import CidashError
    from cidash.remote import http as remote_http
    from cidash.remote import policy

    monkeypatch.setattr(policy, "MAX_ANSWER_BYTES", 1024 * 1024)
    if path == "httpx":
        monkeypatch.setattr(remote_http.HttpClient, "_fast_connection", lambda self: None)
    head, repeat, fast_message, httpx_message = ENDLESS[case]
    url, connections, stop = _endless(head, repeat)
    error = _error_of(url, 5, lambda client: client.http.get_json("/version"), stop)
    assert isinstance(error, CidashError), error
    assert (fast_message if path == "fast" else httpx_message) in error.one_line()
    assert "glpat-secret-value-123" not in error.one_line()
    assert len(connections) == 2  # retried once on a fresh connection, as any malformed answer


@pytest.mark.parametrize("path", ["fast", "httpx"])
def test_a_log_that_never_ends_is_read_to_its_cap_and_kept_truncated(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log streams into its parser, so it has no answer cap; one that never ends stops at MAX_LOG_BYTES (here
    256 KiB) with the facts of what was read, marked truncated, without a retry."""
    from cidash.logparse import parse_bytes
    from cidash.remote import http as remote_http
    from cidash.remote import policy
    from cidash.sync.logs import _LogCut, _LogSink
    from paths import DATA

    monkeypatch.setattr(policy, "MAX_LOG_BYTES", 256 * 1024)
    if path == "httpx":
        monkeypatch.setattr(remote_http.HttpClient, "_fast_connection", lambda self: None)
    log = (DATA / "logs" / "runner-19-timestamps.log").read_bytes()
    script = log.index(b"step_script") + log[log.index(b"step_script") :].index(b"\n") + 1
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"the same line of script output\n" * 100
    url, connections, stop = _endless(
        head + b"%x\r\n%s\r\n" % (script, log[:script]), b"%x\r\n%s\r\n" % (len(chunk), chunk)
    )
    sink = _LogSink()
    try:
        with _client(url) as client:
            with pytest.raises(_LogCut):
                client.http.stream_trace(1, 2, sink)
            assert client.stats.retries == 0
            requests, nbytes = client.stats.snapshot()  # the cut download was made: it counts, with what it brought
            assert requests == 1 and nbytes >= 256 * 1024
    finally:
        stop()
    assert sink.cut and sink.bytes == 256 * 1024 and len(connections) == 1
    facts, whole = sink.facts(), parse_bytes(log)
    assert facts.truncated and not whole.truncated
    assert facts.startup_seconds == whole.startup_seconds is not None  # what came before the cut still counts


@pytest.mark.parametrize("case", ["interim answers", "trickle"])
def test_an_action_is_sent_once_and_its_answer_is_bounded_like_a_read(case: str) -> None:
    """An action's POST goes through the sync's own client: an answer that never ends (interim answers for ever) or
    trickles is ended by the same bounds as a read's, and the POST is never sent again (one connection): it may
    or may not have taken effect. Through python-gitlab's session, the interim answers held it for ever."""
    from cidash.errors import ConnectError
    from cidash.models import API_PREFIX, HttpCall
    from cidash.remote.mutations import ActionsRemote

    if case == "trickle":
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        url, connections, stop = _endless(head, b" ", pause=0.02)
    else:
        url, connections, stop = _endless(b"", b"HTTP/1.1 100 Continue\r\n\r\n")
    call = HttpCall("POST", f"{API_PREFIX}/projects/1/jobs/2/retry", {"reason": "test"})
    error = _error_of(url, 0.2, lambda client: ActionsRemote(client).send(call), stop)
    assert isinstance(error, ConnectError), error
    assert "may or may not have taken effect" in error.one_line()
    assert ("more than 16 interim" if case != "trickle" else "an answer too slow") in error.one_line()
    assert len(connections) == 1


@pytest.mark.parametrize("path", ["fast", "httpx"])
def test_a_post_carries_its_json_body_and_an_empty_one_says_content_length_0(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an action sends, on either stack: a JSON body with its type and length, and a POST without a body
    with ``Content-Length: 0`` (as requests sent it: a server may refuse a POST without a length)."""
    from cidash.remote import http as remote_http

    if path == "httpx":
        monkeypatch.setattr(remote_http.HttpClient, "_fast_connection", lambda self: None)
    answer = b'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{"id": 1}'
    url, requests, stop = _canned([answer, answer])
    try:
        with _client(url) as client:
            assert client.http.post_json("/projects/1/pipeline", {"ref": "main"}).data == {"id": 1}
            assert client.http.post_json("/projects/1/jobs/2/play", None).data == {"id": 1}
    finally:
        stop()
    with_body, empty = (r.lower() for r in requests)
    assert with_body.startswith(b"post /api/v4/projects/1/pipeline http/1.1\r\n")
    assert b"\r\ncontent-type: application/json\r\n" in with_body and with_body.endswith(b'\r\n\r\n{"ref": "main"}')
    assert b"\r\ncontent-length: 15\r\n" in with_body
    assert empty.startswith(b"post /api/v4/projects/1/jobs/2/play http/1.1\r\n")
    assert b"\r\ncontent-length: 0\r\n" in empty and empty.endswith(b"\r\n\r\n")
