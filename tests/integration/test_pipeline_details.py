"""Pipelines' details (the fields GitLab's REST listing omits) by GraphQL, many to a request, and over REST, one
request each, when GraphQL cannot give them: against the simulator's GraphQL API over real HTTP."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cidash.config import Config
from cidash.connection import Connection, Secret
from cidash.models import Pipeline
from cidash.remote import GitLabClient, RetryPolicy
from cidash.remote import pipelines as remote_pipelines
from cidash.remote.wire import WireLog
from cidash.sim import FaultPlan, FaultRule, Scenario, SimulatedGitLab
from cidash.store import Store
from cidash.sync import SyncOptions, sync_project
from cidash.sync.context import CURSOR_GRAPHQL_REFUSED

NOW = datetime(2026, 12, 1, tzinfo=UTC)
DETAILS = ("started_at", "finished_at", "duration", "queued_duration")


@pytest.fixture(scope="module")
def sim() -> Any:
    with SimulatedGitLab(Scenario(days=8, pipelines_per_day=9, migration_day=5)) as server:
        yield server


def _client(sim: SimulatedGitLab, retry: RetryPolicy | None = None, **kw: Any) -> GitLabClient:
    return GitLabClient(Connection(url=sim.url, token=Secret(sim.token), max_rps=0, concurrency=6, **kw), retry=retry)


def _options() -> SyncOptions:
    base = SyncOptions.from_config(Config(), since="all", now=NOW)
    return SyncOptions(**{**base.__dict__, "fetch_logs": False, "fetch_checksums": False, "fetch_registry": False})


def _rest_details(sim: SimulatedGitLab) -> dict[int, dict[str, Any]]:
    """Each pipeline's REST detail, as GitLab's single-pipeline endpoint gives it."""
    headers = {"PRIVATE-TOKEN": sim.token}
    out: dict[int, dict[str, Any]] = {}
    with httpx.Client(base_url=f"{sim.url}/api/v4", headers=headers) as http:
        for p in sim.world.all_pipelines(sim.project_id):
            out[p.id] = http.get(f"/projects/{sim.project_id}/pipelines/{p.id}").raise_for_status().json()
    return out


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _sync(sim: SimulatedGitLab, db: Path, now: datetime = NOW, **kw: Any) -> tuple[Any, dict[int, Pipeline]]:
    sim.stats.reset()
    with Store.open(db) as store, _client(sim, **kw) as client:
        report = sync_project(client, store, sim.project_path, options=_options(), now=now)
        return report, {p.id: p for p in store.pipelines(sim.project_id)}


def _refused_at(sim: SimulatedGitLab, db: Path) -> str | None:
    with Store.open(db) as store:
        return store.cursor(sim.project_id, CURSOR_GRAPHQL_REFUSED)


def _new_pipeline(sim: SimulatedGitLab) -> None:
    headers = {"PRIVATE-TOKEN": sim.token}
    url = f"{sim.url}/api/v4/projects/{sim.project_id}/pipeline"
    httpx.post(url, json={"ref": "main"}, headers=headers).raise_for_status()


def test_a_first_sync_asks_for_the_details_by_graphql_thirty_pipelines_a_request(
    sim: SimulatedGitLab, tmp_path: Path
) -> None:
    rest = _rest_details(sim)
    report, stored = _sync(sim, tmp_path / "s.db")
    assert set(stored) == set(rest) and len(rest) > 2 * remote_pipelines.GRAPHQL_PIPELINES
    kinds = report.requests_by_kind
    assert kinds["POST graphql"] == math.ceil(len(rest) / remote_pipelines.GRAPHQL_PIPELINES)
    assert "GET pipeline" not in kinds and not report.warnings
    assert report.requests == sim.stats.total_requests
    started = 0
    for pid, detail in rest.items():
        got = stored[pid]
        assert (got.duration, got.queued_duration) == (detail["duration"], detail["queued_duration"])
        for name in ("started_at", "finished_at"):
            want, have = _time(detail[name]), getattr(got, name)
            if want is None:
                assert have is None
            else:  # GraphQL prints whole seconds (Types::TimeType: Time#iso8601), REST milliseconds
                assert have is not None and have.microsecond == 0
                assert timedelta(0) <= want - have < timedelta(seconds=1)
                started += 1
    assert started > len(rest)  # most pipelines have started and finished: the test compares real values


def test_when_graphql_refuses_the_query_the_details_come_over_rest_with_one_warning(
    sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All 73 pipelines in one query cost 1 + 73 x 7 = 512, past the 250 GitLab allows: GitLab refuses it (the
    simulator computes the complexity as GitLab does) and the sync asks for each pipeline over REST, as it did
    before GraphQL."""
    rest = _rest_details(sim)
    monkeypatch.setattr(remote_pipelines, "GRAPHQL_PIPELINES", 100)
    report, stored = _sync(sim, tmp_path / "s.db")
    assert len(rest) < 100 and report.requests_by_kind["POST graphql"] == 1
    assert report.requests_by_kind["GET pipeline"] == len(rest)
    [warning] = [w for w in report.warnings if "GraphQL" in w]
    assert f"complexity of {1 + 7 * len(rest)}, which exceeds max complexity of 250" in warning
    assert "for a day" in warning
    for pid, detail in rest.items():
        got = stored[pid]
        assert (got.started_at, got.finished_at) == (_time(detail["started_at"]), _time(detail["finished_at"]))
        assert (got.duration, got.queued_duration) == (detail["duration"], detail["queued_duration"])
    # The refusal is remembered a day: the next sync asks REST at once and says nothing more ...
    assert _refused_at(sim, tmp_path / "s.db") is not None
    monkeypatch.setattr(remote_pipelines, "GRAPHQL_PIPELINES", 30)  # a query GitLab would take, not asked for
    _new_pipeline(sim)
    later, _ = _sync(sim, tmp_path / "s.db", now=NOW + timedelta(hours=23))
    assert "POST graphql" not in later.requests_by_kind and later.requests_by_kind["GET pipeline"] == 1
    assert not [w for w in later.warnings if "GraphQL" in w]
    # ... and GraphQL is asked again once the day has passed.
    sim.advance(60)  # (the simulated clock stands still: a pipeline created a minute later is a new update)
    _new_pipeline(sim)
    next_day, _ = _sync(sim, tmp_path / "s.db", now=NOW + timedelta(hours=25))
    assert next_day.requests_by_kind.get("POST graphql") == 1, (next_day.requests_by_kind, next_day.warnings)
    assert "GET pipeline" not in next_day.requests_by_kind


def test_a_graphql_query_without_an_answer_falls_back_for_this_sync_only(sim: SimulatedGitLab, tmp_path: Path) -> None:
    """A 503 after its retries may be gone by the next sync: REST this time, nothing remembered."""
    sim.set_faults(FaultPlan(rules=(FaultRule(endpoint="POST /api/graphql", status=503),)))
    try:
        report, stored = _sync(sim, tmp_path / "s.db", retry=RetryPolicy(attempts=1, base_delay=0.01))
    finally:
        sim.set_faults(None)
    [warning] = [w for w in report.warnings if "GraphQL" in w]
    assert "in this sync (GraphQL did not answer" in warning and "503" in warning
    assert report.requests_by_kind["GET pipeline"] == len(stored) > 0
    assert _refused_at(sim, tmp_path / "s.db") is None


def test_a_ci_job_token_asks_over_rest(sim: SimulatedGitLab, tmp_path: Path) -> None:
    """GitLab's GraphQL API does not take a CI job token (RequestAuthenticator#find_user_for_graphql_api_request):
    the sync does not try it."""
    report, stored = _sync(sim, tmp_path / "s.db", token_kind="job")
    assert "POST graphql" not in report.requests_by_kind
    assert report.requests_by_kind["GET pipeline"] == len(stored) > 0 and not report.warnings


def test_the_graphql_answer_is_untrusted_input(sim: SimulatedGitLab) -> None:
    """A node that is not the pipeline asked for (another global ID or iid, not an object) is left for REST; a field
    that is not usable is kept unknown and reported, as in a REST record; GitLab's error text is shown escaped."""
    listed = [
        Pipeline(
            project_id=1,
            id=10 + n,
            iid=n,
            ref="main",
            sha="a" * 40,
            status="success",
            source="push",
            created_at=NOW,
            updated_at=NOW,
        )
        for n in range(1, 6)
    ]
    nodes: dict[str, Any] = {
        "p0": {
            "id": "gid://gitlab/Ci::Pipeline/11",
            "iid": "1",
            "startedAt": "2026-11-30T10:00:00Z",
            "finishedAt": None,
            "duration": 61,
            "queuedDuration": 1.5,
        },
        "p1": {"id": "gid://gitlab/Ci::Pipeline/12", "iid": "7", "duration": 5},  # another pipeline's iid
        "p3": {"id": "gid://gitlab/Ci::Pipeline/99", "iid": "4", "duration": 5},  # another project's, same iid
        "p2": "not an object",
        "p4": {
            "id": "gid://gitlab/Ci::Pipeline/15",
            "iid": 5,
            "startedAt": "yesterday",
            "duration": -1,
            "queuedDuration": math.inf,
        },
    }

    class Http:
        def __init__(self, answer: Any) -> None:
            self.answer = answer
            self.asked: list[tuple[str, Any]] = []

        def graphql(self, query: str, variables: Any) -> Any:
            self.asked.append((query, variables))
            return self.answer

    http = Http({"data": {"project": nodes}})
    log = WireLog(now=NOW)
    found = remote_pipelines.pipeline_details(http, "group/app", listed, log)  # type: ignore[arg-type]
    [(query, variables)] = http.asked
    assert variables == {"path": "group/app"} and query.count("pipeline(iid:") == 5
    assert set(found) == {11, 15}
    assert found[11].started_at == datetime(2026, 11, 30, 10, tzinfo=UTC) and found[11].duration == 61
    assert found[11].queued_duration == 1.5 and found[11].finished_at is None
    bad = found[15]
    assert (bad.started_at, bad.duration, bad.queued_duration) == (None, None, None)
    assert len(log.issues) == 3 and all(i.startswith("pipeline 15: ") for i in log.issues)

    with pytest.raises(remote_pipelines.GraphQLRefused) as refused:
        remote_pipelines.pipeline_details(Http({"errors": [{"message": "no\x1b[31m"}]}), "g/a", listed)  # type: ignore[arg-type]
    assert "\x1b" not in str(refused.value) and "no" in str(refused.value)
    with pytest.raises(remote_pipelines.GraphQLRefused, match="does not show this project"):
        remote_pipelines.pipeline_details(Http({"data": {"project": None}}), "g/a", listed)  # type: ignore[arg-type]


def _ask(sim: SimulatedGitLab, query: str, headers: dict[str, str] | None = None, **variables: Any) -> Any:
    headers = {"PRIVATE-TOKEN": sim.token} if headers is None else headers
    answer = httpx.post(f"{sim.url}/api/graphql", json={"query": query, "variables": variables}, headers=headers)
    assert answer.status_code == 200  # GitLab answers a refused query with 200 and its errors
    return answer.json()


def test_the_simulated_graphql_api_answers_as_gitlabs(sim: SimulatedGitLab) -> None:
    pipeline = max(sim.world.all_pipelines(sim.project_id), key=lambda p: p.iid)
    query = "query($path: ID!) { project(fullPath: $path) { p: pipeline(iid: $iid) { iid status startedAt } } }"
    query = query.replace("query($path: ID!)", "query($path: ID!, $iid: ID)")
    answer = _ask(sim, query, path=sim.project_path, iid=str(pipeline.iid))
    node = answer["data"]["project"]["p"]
    assert node["iid"] == str(pipeline.iid) and node["status"].isupper()
    assert node["startedAt"] is None or (node["startedAt"].endswith("Z") and "." not in node["startedAt"])
    missing = _ask(sim, query, path=sim.project_path, iid="999999")
    assert missing == {"data": {"project": {"p": None}}}
    # Anonymous (no token, or a CI job token, which GitLab's GraphQL API does not take): a private project is null.
    for headers in ({}, {"JOB-TOKEN": sim.token}):
        assert _ask(sim, query, headers, path=sim.project_path, iid="1") == {"data": {"project": None}}
    unknown = _ask(sim, '{ project(fullPath: "x") { pipeline(iid: "1") { nope } } }')
    assert unknown["errors"][0]["message"] == "Field 'nope' doesn't exist on type 'Pipeline'"
    assert "data" not in unknown
    many = " ".join(f'p{n}: pipeline(iid: "{n}") {{ iid }}' for n in range(125))  # 1 + 125 x 2 = 251
    refused = _ask(sim, f'{{ project(fullPath: "{sim.project_path}") {{ {many} }} }}')
    assert refused["errors"][0]["message"] == "Query has complexity of 251, which exceeds max complexity of 250"
    assert "data" not in refused
    assert _ask(sim, "{ project(")["errors"][0]["message"].startswith("Unexpected end of document")
