"""The simulated GitLab over real HTTP, with python-gitlab and httpx as clients."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator

import gitlab
import httpx
import pytest

from cidash.sim import Scenario, SimulatedGitLab


def _client(sim: SimulatedGitLab, token: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=sim.url + "/api/v4", headers={"PRIVATE-TOKEN": token or sim.token}, timeout=10)


def _gl(sim: SimulatedGitLab, **kwargs: object) -> gitlab.Gitlab:
    return gitlab.Gitlab(sim.url, private_token=sim.token, retry_transient_errors=True, timeout=10, **kwargs)


def test_python_gitlab_reads_project_version_user(small_sim: SimulatedGitLab) -> None:
    gl = _gl(small_sim)
    gl.auth()
    assert gl.user is not None and gl.user.username == "demo"
    version, _revision = gl.version()
    assert version.startswith("18.")
    project = gl.projects.get(small_sim.project_path)
    assert project.id == small_sim.project_id
    assert project.path_with_namespace == "platform/app"
    assert gl.projects.get(small_sim.project_id).default_branch == "main"


def test_offset_pagination_headers_to_the_last_page(sim: SimulatedGitLab) -> None:
    total = len(sim.world.main.pipelines)
    seen: list[int] = []
    with _client(sim) as client:
        page = "1"
        pages = 0
        while page:
            r = client.get("/projects/platform%2Fapp/pipelines", params={"per_page": 100, "page": page})
            assert r.status_code == 200
            assert r.headers["x-total"] == str(total)
            assert r.headers["x-total-pages"] == str(-(-total // 100))
            assert r.headers["x-per-page"] == "100"
            assert r.headers["x-page"] == page
            assert 'rel="first"' in r.headers["link"] and 'rel="last"' in r.headers["link"]
            seen += [p["id"] for p in r.json()]
            pages += 1
            page = r.headers["x-next-page"]
            if page:
                assert 'rel="next"' in r.headers["link"]
        assert pages == -(-total // 100)
        assert r.headers["x-prev-page"] == str(pages - 1)
    assert len(seen) == total == len(set(seen))
    assert seen == sorted(seen, reverse=True)  # default order_by=id sort=desc


def test_per_page_is_capped_at_100(small_sim: SimulatedGitLab) -> None:
    with _client(small_sim) as client:
        r = client.get("/projects/42/jobs", params={"per_page": 500})
    assert r.headers["x-per-page"] == "100"
    assert len(r.json()) == 100


def test_python_gitlab_get_all_and_iterator_agree(sim: SimulatedGitLab) -> None:
    project = _gl(sim).projects.get(sim.project_id, lazy=True)
    listed = project.pipelines.list(get_all=True, per_page=100)
    lazy = list(project.pipelines.list(iterator=True, per_page=50))
    assert [p.id for p in listed] == [p.id for p in lazy]
    assert len(listed) == sim.truth.pipelines
    # list items carry only the list fields; the detail has durations
    assert "duration" not in listed[0].attributes
    detail = project.pipelines.get(listed[-1].id)
    assert isinstance(detail.duration, int) and detail.duration > 0
    assert isinstance(detail.queued_duration, float)
    assert detail.started_at.endswith("Z") and len(detail.started_at) == len("2026-11-02T10:15:03.123Z")


def test_pipeline_filters(sim: SimulatedGitLab) -> None:
    pipelines = list(sim.world.main.pipelines.values())
    cut = sorted(p.created_at for p in pipelines)[len(pipelines) // 2]
    from cidash.sim.server import iso

    with _client(sim) as client:
        r = client.get("/projects/42/pipelines", params={"ref": "feature/legacy-ci", "per_page": 100})
        assert r.json() and {p["ref"] for p in r.json()} == {"feature/legacy-ci"}
        r = client.get("/projects/42/pipelines", params={"updated_after": iso(cut), "per_page": 100, "sort": "asc"})
        items = r.json()
        assert items and all(p["updated_at"] > iso(cut) for p in items)  # type: ignore[operator]
        assert [p["id"] for p in items] == sorted(p["id"] for p in items)
        n_after = int(r.headers["x-total"])
        assert 0 < n_after < len(pipelines)
        r = client.get("/projects/42/pipelines", params={"status": "failed", "per_page": 100})
        assert all(p["status"] == "failed" for p in r.json())
        r = client.get("/projects/42/pipelines", params={"updated_after": "yesterday"})
        assert r.status_code == 400
        r = client.get("/projects/42/pipelines", params={"source": "schedule", "per_page": 100})
        assert r.json() and all(p["source"] == "schedule" for p in r.json())


def test_keyset_pagination_on_project_jobs(sim: SimulatedGitLab) -> None:
    project = _gl(sim).projects.get(sim.project_id, lazy=True)
    sim.stats.reset()
    jobs = list(project.jobs.list(iterator=True, pagination="keyset", order_by="id", sort="desc", per_page=100))
    ids = [j.id for j in jobs]
    assert len(ids) == len(sim.world.main.jobs) == len(set(ids))
    assert ids == sorted(ids, reverse=True)
    assert sim.stats.count("GET /projects/:id/jobs") == -(-len(ids) // 100)
    with _client(sim) as client:
        r = client.get(
            "/projects/42/jobs", params={"pagination": "keyset", "per_page": 5, "order_by": "id", "sort": "desc"}
        )
        assert "x-total" not in r.headers
        assert 'rel="next"' in r.headers["link"] and "cursor=" in r.headers["link"]
        r = client.get("/projects/42/jobs", params={"pagination": "keyset", "order_by": "id", "sort": "asc"})
        assert r.status_code == 405


def test_job_scopes_and_include_retried(sim: SimulatedGitLab) -> None:
    project = sim.world.main
    retried = next(j for j in project.jobs.values() if j.retried)
    with _client(sim) as client:
        base = f"/projects/42/pipelines/{retried.pipeline_id}/jobs"
        default = [j["id"] for j in client.get(base).json()]
        everything = [j["id"] for j in client.get(base, params={"include_retried": "true"}).json()]
        assert retried.id not in default and retried.id in everything
        assert len(everything) > len(default)
        r = client.get("/projects/42/jobs", params=[("scope[]", "failed"), ("per_page", "100")])
        failed = r.json()
        assert failed and all(j["status"] == "failed" and j["failure_reason"] for j in failed)
        r = client.get("/projects/42/jobs", params=[("scope[]", "manual"), ("scope[]", "success")])
        assert {j["status"] for j in r.json()} <= {"manual", "success"}
        assert client.get("/projects/42/jobs", params={"scope": "bogus"}).status_code == 400


def test_job_fields_and_types(small_sim: SimulatedGitLab) -> None:
    project = _gl(small_sim).projects.get(small_sim.project_id, lazy=True)
    job = next(j for j in project.jobs.list(iterator=True) if j.status == "success")
    assert isinstance(job.duration, float) and isinstance(job.queued_duration, float)
    assert job.pipeline["ref"] == job.ref and len(job.pipeline["sha"]) == 40
    assert job.runner["description"].startswith("sim-runner-")
    assert "failure_reason" not in job.attributes
    assert job.web_url.endswith(f"/-/jobs/{job.id}")


def test_trace_is_runner_format(small_sim: SimulatedGitLab) -> None:
    project = _gl(small_sim).projects.get(small_sim.project_id, lazy=True)
    job_id = next(j.id for j in small_sim.world.main.jobs.values() if j.kind == "setup" and j.facts)
    trace = project.jobs.get(job_id, lazy=True).trace()
    assert isinstance(trace, bytes)
    lines = trace.decode().split("\n")
    assert lines[0].endswith("00O Running with gitlab-runner 18.6.0 (5a6e1f2b)")
    assert any("section_start:" in ln and ":step_script\r\x1b[0K" in ln for ln in lines)
    assert any("Checking cache for 0_-" in ln for ln in lines)  # GitLab 18.6: "0_" + stem of .cache-key
    assert any("with digest registry.example.com/platform/app/ci@sha256:" in ln for ln in lines)


def test_auth_failures(small_sim: SimulatedGitLab) -> None:
    with httpx.Client(base_url=small_sim.url + "/api/v4") as client:
        r = client.get("/projects/42")
        assert r.status_code == 401 and r.json() == {"message": "401 Unauthorized"}
        r = client.get("/projects/42", headers={"PRIVATE-TOKEN": "wrong"})
        assert r.status_code == 401 and r.json() == {"message": "401 Unauthorized"}
        r = client.get("/projects/42", headers={"Authorization": f"Bearer {small_sim.token}"})
        assert r.status_code == 200
        r = client.get("/projects/42", headers={"JOB-TOKEN": small_sim.token})
        assert r.status_code == 200
        r = client.get("/projects/999", headers={"PRIVATE-TOKEN": small_sim.token})
        assert r.status_code == 404 and r.json() == {"message": "404 Project Not Found"}
        r = client.get("/projects/some%2Fother", headers={"PRIVATE-TOKEN": small_sim.token})
        assert r.status_code == 404
        r = client.get("/no/such/route", headers={"PRIVATE-TOKEN": small_sim.token})
        assert r.status_code == 404
    gl = gitlab.Gitlab(small_sim.url, private_token="nope")
    with pytest.raises(gitlab.exceptions.GitlabAuthenticationError):
        gl.auth()


def test_readonly_token_cannot_mutate(small_sim: SimulatedGitLab) -> None:
    manual = next(j for j in small_sim.world.main.jobs.values() if j.status_at(small_sim.world.now()) == "manual")
    assert small_sim.readonly_token
    with _client(small_sim, small_sim.readonly_token) as client:
        assert client.get("/projects/42/pipelines").status_code == 200
        assert client.get("/projects/42").json()["permissions"]["group_access"]["access_level"] == 20
        assert client.get("/user").json()["username"] == "reporter"
        r = client.post(f"/projects/42/jobs/{manual.id}/play")
        assert r.status_code == 403 and r.json() == {"message": "403 Forbidden"}
        r = client.post("/projects/42/pipeline", json={"ref": "main"})
        assert r.status_code == 403
    assert manual.status_at(small_sim.world.now()) == "manual"


def test_play_manual_job_runs_it_over_simulated_time(small_sim: SimulatedGitLab) -> None:
    world = small_sim.world
    manual = next(j for j in world.main.jobs.values() if j.status_at(world.now()) == "manual")
    project = _gl(small_sim).projects.get(small_sim.project_id, lazy=True)
    project.jobs.get(manual.id, lazy=True).play()
    assert project.jobs.get(manual.id).status in ("created", "pending")
    small_sim.advance(5)
    seen = {project.jobs.get(manual.id).status}
    for _ in range(40):
        small_sim.advance(5)
        seen.add(project.jobs.get(manual.id).status)
    assert "running" in seen and "success" in seen
    trace = project.jobs.get(manual.id, lazy=True).trace().decode()
    assert "already exists, skipping build" in trace
    assert small_sim.stats.by_method["POST"] == 1 and small_sim.stats.mutating_requests == 1


def test_play_non_manual_job_is_400(small_sim: SimulatedGitLab) -> None:
    done = next(j for j in small_sim.world.main.jobs.values() if j.final_status == "success")
    with _client(small_sim) as client:
        r = client.post(f"/projects/42/jobs/{done.id}/play")
    assert r.status_code == 400 and r.json() == {"message": "400 Bad request - Unplayable Job"}


def test_retry_creates_a_new_job_and_flags_the_old(small_sim: SimulatedGitLab) -> None:
    world = small_sim.world
    old = next(j for j in world.main.jobs.values() if j.name == "lint" and j.final_status == "success")
    with _client(small_sim) as client:
        r = client.post(f"/projects/42/jobs/{old.id}/retry")
        assert r.status_code == 201
        new = r.json()
        assert new["id"] != old.id and new["name"] == "lint" and new["status"] in ("created", "pending")
        assert old.retried
        jobs = client.get(f"/projects/42/pipelines/{old.pipeline_id}/jobs").json()
        assert new["id"] in [j["id"] for j in jobs] and old.id not in [j["id"] for j in jobs]
        # retrying the retried job again is refused
        assert client.post(f"/projects/42/jobs/{old.id}/retry").status_code == 403
        small_sim.advance(600)
        assert client.get(f"/projects/42/jobs/{new['id']}").json()["status"] in ("success", "failed")


def test_create_pipeline_with_force_rebuild_moves_through_states(small_sim: SimulatedGitLab) -> None:
    project = _gl(small_sim).projects.get(small_sim.project_id, lazy=True)
    created = project.pipelines.create(
        {"ref": "main", "variables": [{"key": "FORCE_CI_IMAGE_REBUILD", "value": "true", "variable_type": "env_var"}]}
    )
    assert created.status in ("created", "pending")
    pipeline = small_sim.world.main.pipelines[created.id]
    assert pipeline.variables == [{"key": "FORCE_CI_IMAGE_REBUILD", "value": "true", "variable_type": "env_var"}]
    statuses = []
    for _ in range(120):
        small_sim.advance(10)
        statuses.append(project.pipelines.get(created.id).status)
        if statuses[-1] in ("success", "failed"):
            break
    assert "running" in statuses and statuses[-1] in ("success", "failed")
    jobs = {j.name: j for j in project.pipelines.get(created.id).jobs.list(get_all=True)}
    assert jobs["build-ci-image"].status != "manual"
    trace = project.jobs.get(jobs["build-ci-image"].id, lazy=True).trace().decode()
    assert "-> 404" in trace or "building" in trace
    with _client(small_sim) as client:
        r = client.get(f"/projects/42/pipelines/{created.id}/variables")
        assert r.json()[0]["key"] == "FORCE_CI_IMAGE_REBUILD"
        r = client.post("/projects/42/pipeline", json={"ref": "no-such-branch"})
        assert r.status_code == 400
        r = client.post("/projects/42/pipeline", data={"ref": "main"})
        assert r.status_code == 201


def test_cancel_running_job(small_sim: SimulatedGitLab) -> None:
    with _client(small_sim) as client:
        pipeline = client.post("/projects/42/pipeline", json={"ref": "main"}).json()
        small_sim.advance(3)
        jobs = client.get(f"/projects/42/pipelines/{pipeline['id']}/jobs").json()
        target = next(j for j in jobs if j["status"] != "manual")
        r = client.post(f"/projects/42/jobs/{target['id']}/cancel")
        assert r.status_code == 201 and r.json()["status"] == "canceled"


def test_repository_files_blob_ids_are_real(small_sim: SimulatedGitLab) -> None:
    with _client(small_sim) as client:
        for path in ("go.mod", ".mise/config.toml", ".cache-key"):
            encoded = path.replace("/", "%2F")
            r = client.get(f"/projects/platform%2Fapp/repository/files/{encoded}", params={"ref": "main"})
            assert r.status_code == 200
            body = r.json()
            raw = client.get(f"/projects/42/repository/files/{encoded}/raw", params={"ref": "main"}).content
            assert base64.b64decode(body["content"]) == raw
            assert body["blob_id"] == hashlib.sha1(b"blob %d\x00" % len(raw) + raw).hexdigest()
            assert body["content_sha256"] == hashlib.sha256(raw).hexdigest()
            head = client.head(f"/projects/42/repository/files/{encoded}", params={"ref": "main"})
            assert head.status_code == 200 and head.content == b""
            assert head.headers["x-gitlab-blob-id"] == body["blob_id"]
            assert head.headers["x-gitlab-last-commit-id"] == body["last_commit_id"]
            assert head.headers["x-gitlab-content-sha256"] == body["content_sha256"]
            commit = client.get(f"/projects/42/repository/commits/{body['last_commit_id']}").json()
            assert commit["id"] == body["last_commit_id"]
        r = client.get("/projects/42/repository/files/nope.txt", params={"ref": "main"})
        assert r.status_code == 404 and r.json() == {"message": "404 File Not Found"}
        r = client.get("/projects/42/repository/files/go.mod")
        assert r.status_code == 400
        commits = client.get("/projects/42/repository/commits", params={"ref_name": "main", "path": "go.sum"}).json()
        assert commits and all(len(c["id"]) == 40 for c in commits)


def test_cache_key_in_trace_matches_gitlab_formula(small_sim: SimulatedGitLab) -> None:
    """After the migration the restore key is 0-sha1(blob id of .cache-key)-protected, computable remotely."""
    world = small_sim.world
    job = next(
        j
        for j in world.main.jobs.values()
        if j.kind == "lint" and world.main.pipelines[j.pipeline_id].design == "migrated" and j.facts
    )
    sha = world.main.pipelines[job.pipeline_id].sha
    with _client(small_sim) as client:
        head = client.head("/projects/42/repository/files/.cache-key", params={"ref": sha})
        digest = hashlib.sha1(head.headers["x-gitlab-blob-id"].encode()).hexdigest()
        trace = client.get(f"/projects/42/jobs/{job.id}/trace").text
    assert f"Checking cache for 0_-{digest}-protected..." in trace


def test_registry_and_resource_groups(sim: SimulatedGitLab) -> None:
    truth = sim.truth
    with _client(sim) as client:
        repos = client.get("/projects/42/registry/repositories", params={"tags": "true"}).json()
        assert repos[0]["path"] == "platform/app/ci"
        names = {t["name"] for t in repos[0]["tags"]}
        assert truth.baseline_image_tag in names and truth.candidate_image_tag in names
        tag = client.get(f"/projects/42/registry/repositories/{repos[0]['id']}/tags/{truth.baseline_image_tag}").json()
        assert tag["total_size"] == truth.image_tags[truth.baseline_image_tag].total_size
        assert 806_000_000 < tag["total_size"] < 808_000_000
        assert tag["digest"].startswith("sha256:")
        new = client.get(f"/projects/42/registry/repositories/1/tags/{truth.candidate_image_tag}").json()
        assert new["total_size"] <= 215_000_000
        groups = client.get("/projects/42/resource_groups").json()
        assert [g["key"] for g in groups] == ["cache_updates"]
        assert client.get("/projects/42/resource_groups/cache_updates").json()["process_mode"] == "unordered"
    manifest = httpx.head(f"{sim.url}/v2/platform/app/ci/manifests/{truth.candidate_image_tag}")
    assert manifest.status_code == 200
    assert manifest.headers["docker-content-digest"] == truth.image_tags[truth.candidate_image_tag].digest
    assert httpx.head(f"{sim.url}/v2/platform/app/ci/manifests/nope").status_code == 404


def test_group_projects(small_sim: SimulatedGitLab) -> None:
    gl = _gl(small_sim)
    projects = gl.groups.get("platform").projects.list(get_all=True)
    assert {p.path_with_namespace for p in projects} == {"platform/app", "platform/docs"}


def test_stats_endpoint_and_reset(small_sim: SimulatedGitLab) -> None:
    with _client(small_sim) as client:
        for _ in range(3):
            client.get("/projects/42/pipelines")
        client.head("/projects/42")
    stats = httpx.get(small_sim.url + "/__sim/stats").json()
    assert stats["by_endpoint"]["GET /projects/:id/pipelines"] == 3
    assert stats["by_method"] == {"GET": 3, "HEAD": 1}
    assert stats["mutating_requests"] == 0
    assert stats["bytes_by_endpoint"]["GET /projects/:id/pipelines"] > 0
    assert httpx.post(small_sim.url + "/__sim/stats/reset").status_code == 200
    assert small_sim.stats.total_requests == 0


def test_keep_alive_reuses_connections(small_sim: SimulatedGitLab) -> None:
    with _client(small_sim) as client:
        r1 = client.get("/version")
        r2 = client.get("/version")
        assert r1.http_version == "HTTP/1.1"
        assert r1.headers.get("connection", "keep-alive").lower() != "close"
        stream1 = r1.extensions.get("network_stream")
        stream2 = r2.extensions.get("network_stream")
        assert stream1 is not None and stream1 is stream2


def test_rate_limit_headers_and_429(small_sim: SimulatedGitLab) -> None:
    with _client(small_sim) as client:
        r = client.get("/version")
    assert r.headers["ratelimit-limit"] == "2000"
    assert int(r.headers["ratelimit-remaining"]) < 2000
    with (
        SimulatedGitLab(Scenario(days=2, pipelines_per_day=2, migration_day=2), rate_limit=3) as limited,
        _client(limited) as client,
    ):
        codes = [client.get("/version").status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        r = client.get("/version")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        assert r.headers["ratelimit-remaining"] == "0"
        assert r.json() == {"message": "429 Too Many Requests"}


def test_determinism_same_seed_same_bytes() -> None:
    scenario = Scenario(days=3, pipelines_per_day=4, migration_day=2)

    def snapshot(sim: SimulatedGitLab) -> bytes:
        out = []
        with _client(sim) as client:
            for path in (
                "/projects/42/pipelines?per_page=100",
                "/projects/42/jobs?per_page=100",
                "/projects/42/registry/repositories?tags=true",
                "/projects/42/repository/commits?per_page=100&all=true",
            ):
                out.append(client.get(path).content)
            for job in sorted(sim.world.main.jobs):
                out.append(client.get(f"/projects/42/jobs/{job}/trace").content)
                out.append(client.get(f"/projects/42/jobs/{job}").content)
        return b"\n".join(out).replace(sim.url.encode(), b"BASE")

    with SimulatedGitLab(scenario) as a, SimulatedGitLab(scenario) as b:
        first, second = snapshot(a), snapshot(b)
    assert first == second
    with SimulatedGitLab(Scenario(days=3, pipelines_per_day=4, migration_day=2, seed=8)) as c:
        assert snapshot(c) != first
    json.loads(first.split(b"\n")[0])


def test_retry_of_a_failed_job_resumes_the_skipped_stages(sim: SimulatedGitLab) -> None:
    world = sim.world
    main = world.main
    pipeline = next(p for p in main.pipelines.values() if world.pipeline_status(main, p, world.now()) == "failed")
    with _client(sim) as client:
        jobs = client.get(f"/projects/42/pipelines/{pipeline.id}/jobs").json()
        assert "skipped" in {j["status"] for j in jobs}
        failed = next(j for j in jobs if j["status"] == "failed")
        assert client.post(f"/projects/42/jobs/{failed['id']}/retry").status_code == 201
        assert client.get(f"/projects/42/pipelines/{pipeline.id}").json()["status"] in ("running", "pending")
        sim.advance(3600)
        after = client.get(f"/projects/42/pipelines/{pipeline.id}/jobs").json()
    assert "skipped" not in {j["status"] for j in after}
    assert {j["status"] for j in after} <= {"success", "failed", "manual"}


def test_cache_writer_waits_for_the_resource_group(small_sim: SimulatedGitLab) -> None:
    with _client(small_sim) as client:
        client.post("/projects/42/pipeline", json={"ref": "main"})
        second = client.post("/projects/42/pipeline", json={"ref": "main"}).json()
        seen: set[str] = set()
        for _ in range(80):
            small_sim.advance(2)
            jobs = client.get(f"/projects/42/pipelines/{second['id']}/jobs").json()
            seen.add(next(j["status"] for j in jobs if j["name"] == "setup"))
    assert {"waiting_for_resource", "running", "success"} <= seen


def test_python_gitlab_managers_for_files_registry_commits(small_sim: SimulatedGitLab) -> None:
    project = _gl(small_sim).projects.get("platform/app")
    head = project.files.head("go.sum", ref="main")
    raw = project.files.raw("go.sum", ref="main")
    assert head["X-Gitlab-Blob-Id"] == hashlib.sha1(b"blob %d\x00" % len(raw) + raw).hexdigest()
    assert project.files.get(".gitlab-ci.yml", ref="main").decode().startswith(b"# platform/app CI")
    repo = project.repositories.list(get_all=True)[0]
    tags = repo.tags.list(get_all=True)
    assert {t.name for t in tags} >= {small_sim.truth.candidate_image_tag, "latest"}
    detail = repo.tags.get(small_sim.truth.candidate_image_tag)
    assert detail.total_size == small_sim.truth.image_tags[detail.name].total_size
    latest = repo.tags.get("latest")
    assert latest.digest.startswith("sha256:")
    commits = project.commits.list(ref_name="main", get_all=True)
    assert commits[0].id == project.branches.get("main").commit["id"]
    assert {b.name for b in project.branches.list(get_all=True)} >= {"main", "feature/legacy-ci"}
    assert project.commits.get(commits[-1].id).parent_ids == []
    groups = project.resource_groups.list(get_all=True)
    assert [g.key for g in groups] == ["cache_updates"]
    assert project.resource_groups.get("cache_updates").upcoming_jobs.list(get_all=True) == []


def test_chunked_request_body_is_read(small_sim: SimulatedGitLab) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"ref": '
        yield b'"main"}'

    headers = {"PRIVATE-TOKEN": small_sim.token, "Content-Type": "application/json"}
    r = httpx.post(small_sim.url + "/api/v4/projects/42/pipeline", content=chunks(), headers=headers)
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 201 and r.json()["ref"] == "main"


def test_links_follow_the_host_the_client_used(small_sim: SimulatedGitLab) -> None:
    url = small_sim.url.replace("127.0.0.1", "localhost")
    r = httpx.get(
        url + "/api/v4/projects/42/pipelines", params={"per_page": 2}, headers={"PRIVATE-TOKEN": small_sim.token}
    )
    assert r.headers["link"].startswith(f"<{url}/api/v4/projects/42/pipelines?")
    assert r.json()[0]["web_url"].startswith(url + "/platform/app/-/pipelines/")


def test_forced_rebuild_pushes_a_new_digest_when_it_finishes(small_sim: SimulatedGitLab) -> None:
    tag = small_sim.truth.candidate_image_tag
    with _client(small_sim) as client:
        before = client.get(f"/projects/42/registry/repositories/1/tags/{tag}").json()
        variables = [{"key": "FORCE_CI_IMAGE_REBUILD", "value": "true"}]
        pipeline = client.post("/projects/42/pipeline", json={"ref": "main", "variables": variables}).json()
        small_sim.advance(30)
        assert client.get(f"/projects/42/registry/repositories/1/tags/{tag}").json()["digest"] == before["digest"]
        small_sim.advance(600)
        jobs = client.get(f"/projects/42/pipelines/{pipeline['id']}/jobs").json()
        build = next(j for j in jobs if j["name"] == "build-ci-image")
        assert build["status"] == "success"
        after = client.get(f"/projects/42/registry/repositories/1/tags/{tag}").json()
        trace = client.get(f"/projects/42/jobs/{build['id']}/trace").text
        lint = next(j for j in jobs if j["name"] == "lint")
        lint_trace = client.get(f"/projects/42/jobs/{lint['id']}/trace").text
    assert "rebuilding" in trace and "anyway" in trace
    assert after["digest"] != before["digest"] and after["created_at"] > before["created_at"]
    assert after["digest"] in lint_trace  # later jobs of the pipeline run in the rebuilt image
    manifest = httpx.head(f"{small_sim.url}/v2/platform/app/ci/manifests/{tag}")
    assert manifest.headers["docker-content-digest"] == after["digest"]


def test_latency_counts_the_time_spent_answering(monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer leaves latency_ms after the request arrived: the simulator's own work is inside that time, not
    added on top (a fake clock: every reading is 20 ms after the last, so answering took 20 ms of the 50)."""
    import time as real_time
    import types

    import cidash.sim.http as sim_http

    ticks = iter(range(0, 10_000, 20))
    slept: list[float] = []
    fake = types.SimpleNamespace(
        monotonic=lambda: next(ticks) / 1000,
        sleep=slept.append,
        time=real_time.time,
        perf_counter=real_time.perf_counter,
    )
    with SimulatedGitLab(Scenario(days=2, pipelines_per_day=2), latency_ms=50) as sim:
        monkeypatch.setattr(sim_http, "time", fake)
        with _client(sim) as client:
            assert client.get("/version").status_code == 200
    assert slept == [pytest.approx(0.030)]


def test_a_capacity_serves_so_many_requests_at_once_and_queues_the_rest() -> None:
    """``capacity=N`` is a GitLab of N request threads: six requests at once are all answered, never more than
    two served at the same time (the others wait their turn); without it nothing is queued or counted."""
    from concurrent.futures import ThreadPoolExecutor

    scenario = Scenario(days=2, pipelines_per_day=2, migration_day=1)
    with SimulatedGitLab(scenario, capacity=2, latency_ms=200) as sim:
        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(lambda _: _client(sim).get(f"/projects/{sim.project_id}").status_code, range(6)))
        assert statuses == [200] * 6
        assert sim.peak_serving == 2  # (the count of those served now drops just after each answer is sent)
    with SimulatedGitLab(scenario, latency_ms=0) as sim:
        assert _client(sim).get(f"/projects/{sim.project_id}").status_code == 200
        assert sim.workers is None and sim.peak_serving == 0
