"""Fault injection of the simulated GitLab: each fault behaves as configured, deterministically."""

from __future__ import annotations

import time

import gitlab
import httpx
import pytest

from cidash.sim import FaultPlan, FaultRule, Scenario, SimulatedGitLab
from cidash.sim.faults import FaultState

TINY = Scenario(days=2, pipelines_per_day=3, migration_day=2)
HEADERS = {"PRIVATE-TOKEN": "demo-token"}


def _sim(*rules: FaultRule, **kwargs: object) -> SimulatedGitLab:
    return SimulatedGitLab(TINY, faults=FaultPlan(rules=rules, seed=3), **kwargs)  # type: ignore[arg-type]


def test_429_burst_then_python_gitlab_recovers() -> None:
    with _sim(FaultRule(endpoint="*/pipelines", status=429, first=2, retry_after=0)) as sim:
        with httpx.Client(base_url=sim.url, headers=HEADERS) as client:
            r = client.get("/api/v4/projects/42/pipelines")
            assert r.status_code == 429 and r.headers["retry-after"] == "0"
        gl = gitlab.Gitlab(sim.url, private_token=sim.token, retry_transient_errors=True)
        pipelines = gl.projects.get(42, lazy=True).pipelines.list(get_all=True)
        assert pipelines
        assert sim.stats.by_status[429] == 2
        assert sim.stats.count("GET /projects/:id/pipelines") == 3


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(status: int) -> None:
    with (
        _sim(FaultRule(endpoint="GET /projects/:id", status=status, every=2)) as sim,
        httpx.Client(base_url=sim.url, headers=HEADERS) as client,
    ):
        codes = [client.get("/api/v4/projects/42").status_code for _ in range(4)]
    assert codes == [200, status, 200, status]


def test_python_gitlab_retries_transient_502() -> None:
    with _sim(FaultRule(endpoint="GET /projects/:id", status=502, first=1)) as sim:
        gl = gitlab.Gitlab(sim.url, private_token=sim.token, retry_transient_errors=True)
        assert gl.projects.get(42).id == 42
        assert sim.stats.by_status[502] == 1


def test_connection_reset_mid_body() -> None:
    with _sim(FaultRule(endpoint="*/trace", reset=True, first=1)) as sim:
        job = next(j for j in sim.world.main.jobs.values() if j.facts)
        url = f"{sim.url}/api/v4/projects/42/jobs/{job.id}/trace"
        with pytest.raises(httpx.HTTPError):
            httpx.get(url, headers=HEADERS)
        r = httpx.get(url, headers=HEADERS)
        assert r.status_code == 200 and b"Running with gitlab-runner" in r.content[:80]


def test_truncated_log() -> None:
    with _sim(FaultRule(endpoint="*/trace", truncate_bytes=300)) as sim:
        job = next(j for j in sim.world.main.jobs.values() if j.facts)
        r = httpx.get(f"{sim.url}/api/v4/projects/42/jobs/{job.id}/trace", headers=HEADERS)
    assert r.status_code == 200 and len(r.content) == 300


def test_slow_body_and_latency() -> None:
    with _sim(FaultRule(endpoint="*/trace", slow_bytes_per_s=20_000), latency_ms=50) as sim:
        job = next(j for j in sim.world.main.jobs.values() if j.facts)
        with httpx.Client(base_url=sim.url, headers=HEADERS) as client:
            start = time.monotonic()
            client.get("/api/v4/version")
            fast = time.monotonic() - start
            start = time.monotonic()
            r = client.get(f"/api/v4/projects/42/jobs/{job.id}/trace")
            slow = time.monotonic() - start
    assert fast >= 0.05
    assert r.status_code == 200
    assert slow >= len(r.content) / 20_000 * 0.8


def test_latency_rule_with_jitter_is_deterministic() -> None:
    plan = FaultPlan(rules=(FaultRule(endpoint="*", latency_ms=10, jitter_ms=20),), seed=5)
    a, b = FaultState(plan), FaultState(plan)
    delays_a = [a.decide("GET", "/version", "/api/v4/version").delay_s for _ in range(5)]
    delays_b = [b.decide("GET", "/version", "/api/v4/version").delay_s for _ in range(5)]
    assert delays_a == delays_b
    assert all(0.010 <= d <= 0.030 for d in delays_a)
    assert len(set(delays_a)) > 1


def test_probability_and_skip_are_seeded() -> None:
    rule = FaultRule(endpoint="*/jobs", status=503, probability=0.5, skip=2)

    def run(seed: int) -> list[int | None]:
        state = FaultState(FaultPlan(rules=(rule,), seed=seed))
        return [state.decide("GET", "/projects/:id/jobs", "/api/v4/projects/42/jobs").status for _ in range(30)]

    first = run(1)
    assert first == run(1)
    assert first[:2] == [None, None]
    assert 5 < first.count(503) < 25
    assert run(2) != first


def test_set_faults_replaces_the_plan() -> None:
    with _sim(FaultRule(endpoint="*", status=503)) as sim:
        assert httpx.get(sim.url + "/api/v4/version", headers=HEADERS).status_code == 503
        sim.set_faults(None)
        assert httpx.get(sim.url + "/api/v4/version", headers=HEADERS).status_code == 200


def test_method_filter() -> None:
    with _sim(FaultRule(endpoint="*", method="POST", status=500)) as sim:
        assert httpx.get(sim.url + "/api/v4/projects/42", headers=HEADERS).status_code == 200
        r = httpx.post(sim.url + "/api/v4/projects/42/pipeline", headers=HEADERS, json={"ref": "main"})
        assert r.status_code == 500
