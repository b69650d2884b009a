"""Actions against the simulated GitLab over real HTTP: rebuild, retry, guards, dry run, read-only, audit, errors."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cidash.actions import (
    ActionPlan,
    HttpCall,
    RebuildPlan,
    execute,
    follow,
    merge_variables,
    parse_variable,
    plan_rebuild,
    plan_retry,
)
from cidash.cli import build_parser, main
from cidash.commands import action_flow as action_cli
from cidash.connection import Connection, Secret
from cidash.errors import ActionRefused, PermissionDenied, RateLimited, RemoteError, UsageError
from cidash.models import Job, Project
from cidash.remote import GitLabClient
from cidash.remote.mutations import ActionsRemote
from cidash.sim.faults import FaultPlan, FaultRule
from cidash.sim.scenario import Scenario
from cidash.sim.server import SimulatedGitLab
from cidash.sim.world import SimJob
from cidash.store import Store

SCENARIO = Scenario(days=20, pipelines_per_day=2, migration_day=3, with_docs_project=False)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def sim() -> Iterator[SimulatedGitLab]:
    with SimulatedGitLab(SCENARIO) as server:
        # a pipeline on main whose image-build job waits to be played (migrated design, Dockerfile unchanged)
        pipeline = server.world.create_pipeline(server.world.main, "main", [], "demo")
        assert latest_build_job(server).pipeline_id == pipeline.id
        yield server


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cidash.db"


def remote_for(sim: SimulatedGitLab, token: str | None = None) -> ActionsRemote:
    conn = Connection(url=sim.url, token=Secret(token or sim.token), max_rps=0)
    return ActionsRemote(GitLabClient(conn))


def cli(sim: SimulatedGitLab, db: Path, *args: str) -> list[str]:
    return [*args, "--url", sim.url, "--project", sim.project_path, "--db", str(db)]


def audit_rows(db: Path) -> list[tuple[str, str, str, bool]]:
    with Store.open(db) as store:
        return [(r.action, r.actor, r.result, r.dry_run) for r in store.audit()]


def latest_build_job(sim: SimulatedGitLab, ref: str = "main") -> SimJob:
    project = sim.world.main
    pipeline = max((p for p in project.pipelines.values() if p.ref == ref), key=lambda p: p.id)
    jobs = [j for j in sim.world.pipeline_jobs(project, pipeline) if j.name == "build-ci-image" and not j.retried]
    return jobs[-1]


def posts(sim: SimulatedGitLab) -> int:
    return sim.stats.by_method.get("POST", 0)


@pytest.fixture(autouse=True)
def _token(sim: SimulatedGitLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITLAB_TOKEN", sim.token)


# ---------------------------------------------------------------------------------------------------------------
# rebuild
# ---------------------------------------------------------------------------------------------------------------


def test_dry_run_prints_exact_call_and_sends_no_mutation(
    sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build = latest_build_job(sim)
    assert build.status_at(sim.world.now()) == "manual"
    assert main(cli(sim, db, "rebuild", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert f"POST /api/v4/projects/{sim.project_id}/jobs/{build.id}/play" in out
    assert "dry run: nothing was sent" in out
    assert sim.stats.mutating_requests == 0
    assert sim.stats.total_requests > 0  # the plan did read
    assert latest_build_job(sim).status_at(sim.world.now()) == "manual"
    assert audit_rows(db) == [("rebuild", "demo", "dry-run: nothing sent", True)]


def test_rebuild_plays_the_manual_build_job_and_the_duplicate_guard_refuses_a_second(
    sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build = latest_build_job(sim)
    assert main(cli(sim, db, "rebuild", "--yes", "--no-follow")) == 0
    assert build.played and build.user == "demo"
    assert build.status_at(sim.world.now()) in ("created", "pending")
    assert sim.stats.by_endpoint["POST /projects/:id/jobs/:job_id/play"] == 1
    out = capsys.readouterr().out
    assert f"job {build.id}" in out and f"/-/jobs/{build.id}" in out

    before = posts(sim)
    assert main(cli(sim, db, "rebuild", "--yes", "--no-follow")) == 2
    err = capsys.readouterr().err
    assert "already" in err and f"{sim.url}/{sim.project_path}/-/jobs/{build.id}" in err and "--force" in err
    assert err.count("\n") == 1
    assert posts(sim) == before
    rows = audit_rows(db)
    assert rows[0][2].startswith(f"ok: job {build.id}")
    assert rows[1][2].startswith("refused: build-ci-image job") and len(rows) == 2


def test_force_creates_a_pipeline_with_the_variables(
    sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a build already on its way: the manual job played by someone else
    build = latest_build_job(sim)
    sim.world.play_job(sim.world.main, build, "someone")
    pipelines_before = set(sim.world.main.pipelines)
    args = cli(sim, db, "rebuild", "--force", "--yes", "--no-follow", "--var", "EXTRA=1")
    assert main([*args, "--var", "FORCE_CI_IMAGE_REBUILD=yes"]) == 0
    new = [p for pid, p in sim.world.main.pipelines.items() if pid not in pipelines_before]
    assert len(new) == 1 and new[0].ref == "main" and new[0].user == "demo"
    assert {(v["key"], v["value"]) for v in new[0].variables} == {("FORCE_CI_IMAGE_REBUILD", "yes"), ("EXTRA", "1")}
    out = capsys.readouterr().out
    assert "warning  --force" in out and "triggering another build anyway" in out
    assert audit_rows(db)[-1][2].startswith(f"ok: pipeline {new[0].id} created on main; build-ci-image job")
    with Store.open(db) as store:
        extra = store.audit()[-1].extra
    assert extra["forced"] == "true" and extra["variables"] == "FORCE_CI_IMAGE_REBUILD,EXTRA"
    assert "yes" not in extra.values()  # variable values are not audited


def test_cli_follows_the_played_job_until_it_runs(
    sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sleeps: list[float] = []
    t = [0.0]

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        t[0] += seconds
        sim.advance(seconds)

    args = build_parser().parse_args(cli(sim, db, "rebuild", "--yes"))
    rc = action_cli.run_action(
        args,
        action="rebuild",
        target="ref main",
        make_plan=lambda remote, project, config: plan_rebuild(remote, project),
        sleep=fake_sleep,
        clock=lambda: t[0],
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "running after" in out and f"/-/jobs/{latest_build_job(sim).id}" in out
    assert sleeps and max(sleeps) <= 10.0 and sum(sleeps) < 120


def test_rebuild_creates_a_pipeline_when_the_image_job_is_not_manual(sim: SimulatedGitLab) -> None:
    remote = remote_for(sim)
    project = remote.project(sim.project_path)
    ref = SCENARIO.legacy_branch
    plan = plan_rebuild(remote, project, ref=ref, variables=(("FORCE_CI_IMAGE_REBUILD", "true"),))
    assert plan.kind == "create_pipeline" and plan.refusal is None
    assert plan.calls == (
        HttpCall(
            "POST",
            f"/api/v4/projects/{sim.project_id}/pipeline",
            {"ref": ref, "variables": [{"key": "FORCE_CI_IMAGE_REBUILD", "value": "true", "variable_type": "env_var"}]},
        ),
    )
    result = execute(plan, remote, None, actor="tester", now=NOW)
    assert result.pipeline is not None and result.pipeline.ref == ref
    created = sim.world.main.pipelines[result.pipeline.id]
    assert created.variables[0]["key"] == "FORCE_CI_IMAGE_REBUILD"
    assert result.job is not None and result.job.name == "build-ci-image"
    # the new build job runs as simulated time passes: follow sees it start, with bounded polling
    t = [0.0]

    def sleep(seconds: float) -> None:
        t[0] += seconds
        sim.advance(seconds)

    updates = list(follow(remote, project.id, result.job.id, timeout=600, sleep=sleep, clock=lambda: t[0]))
    assert updates[-1].final and updates[-1].started and updates[-1].job.status == "running"
    assert sim.stats.by_endpoint["GET /projects/:id/jobs/:job_id"] <= 20


def test_play_variables_are_sent_as_job_variables(sim: SimulatedGitLab) -> None:
    remote = remote_for(sim)
    project = remote.project(sim.project_path)
    plan = plan_rebuild(remote, project, play_variables=(("FORCE_CI_IMAGE_REBUILD", "true"),))
    assert plan.kind == "play"
    assert plan.calls[0].body == {"job_variables_attributes": [{"key": "FORCE_CI_IMAGE_REBUILD", "value": "true"}]}


# ---------------------------------------------------------------------------------------------------------------
# retry
# ---------------------------------------------------------------------------------------------------------------


def _finished_job(sim: SimulatedGitLab, name: str = "lint") -> SimJob:
    project = sim.world.main
    now = sim.world.now()
    return max(
        (j for j in project.jobs.values() if j.name == name and not j.retried and j.status_at(now) == "success"),
        key=lambda j: j.id,
    )


def test_retry_creates_a_new_job_and_a_running_job_is_refused(
    sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _finished_job(sim)
    jobs_before = set(sim.world.main.jobs)
    assert main(cli(sim, db, "retry", str(old.id), "--yes", "--no-follow")) == 0
    new = [j for jid, j in sim.world.main.jobs.items() if jid not in jobs_before]
    assert len(new) == 1 and new[0].name == old.name and new[0].pipeline_id == old.pipeline_id
    assert old.retried
    assert sim.stats.by_endpoint["POST /projects/:id/jobs/:job_id/retry"] == 1
    out = capsys.readouterr().out
    assert f"POST /api/v4/projects/{sim.project_id}/jobs/{old.id}/retry" in out
    assert f"new job {new[0].id}" in out

    # the new attempt is still on its way: retrying it is refused locally, nothing sent
    before = posts(sim)
    assert main(cli(sim, db, "retry", str(new[0].id), "--yes")) == 2
    assert "nothing to retry yet" in capsys.readouterr().err
    assert posts(sim) == before
    # an attempt that was already retried: refused locally (GitLab would answer 403), nothing sent
    assert main(cli(sim, db, "retry", str(old.id), "--yes")) == 2
    assert f"already retried: pipeline #{old.pipeline_id} has a newer attempt (job {new[0].id})" in (
        capsys.readouterr().err
    )
    assert posts(sim) == before
    rows = audit_rows(db)
    assert [r[0] for r in rows] == ["retry", "retry", "retry"]
    assert rows[0][2].startswith(f"ok: job {old.id} retried: new job {new[0].id}")
    assert rows[1][2].startswith("refused:") and rows[2][2].startswith("refused:")


def test_retry_of_a_missing_job_is_one_line(sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(cli(sim, db, "retry", "99999999", "--yes")) == 2
    err = capsys.readouterr().err
    assert err.startswith("cidash: error:") and "404" in err and err.count("\n") == 1
    assert posts(sim) == 0


def test_retry_rejects_a_bad_job_id(sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(cli(sim, db, "retry", "abc")) == 2
    assert "not a job id" in capsys.readouterr().err
    assert sim.stats.total_requests == 0


# ---------------------------------------------------------------------------------------------------------------
# guards: read-only, confirmation, permissions
# ---------------------------------------------------------------------------------------------------------------


def test_read_only_flag_refuses_before_any_request(
    sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli(sim, db, "rebuild", "--yes", "--read-only")) == 2
    err = capsys.readouterr().err
    assert "read-only mode" in err and "--read-only" in err
    assert sim.stats.total_requests == 0
    assert audit_rows(db)[0][2].startswith("refused: read-only mode")


def test_read_only_config_refuses_retry(
    sim: SimulatedGitLab, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cidash.toml"
    config.write_text("[actions]\nread_only = true\n")
    job = _finished_job(sim)
    assert main(cli(sim, db, "retry", str(job.id), "--yes", "--config", str(config))) == 2
    err = capsys.readouterr().err
    assert "read-only" in err and "[actions] read_only" in err
    assert sim.stats.mutating_requests == 0 and not job.retried
    # a dry run is still allowed in read-only mode, and says it would be refused
    assert main(cli(sim, db, "retry", str(job.id), "--dry-run", "--config", str(config))) == 0
    assert "read-only mode: it would be refused" in capsys.readouterr().out
    assert sim.stats.mutating_requests == 0
    assert [r[3] for r in audit_rows(db)] == [False, True]


def test_read_only_in_execute_refuses_for_api_callers(sim: SimulatedGitLab) -> None:
    remote = remote_for(sim)
    plan = plan_rebuild(remote, remote.project(sim.project_path))
    sink: list[object] = []

    class Sink:
        def add_audit(self, record: object) -> None:
            sink.append(record)

    with pytest.raises(ActionRefused, match="read-only"):
        execute(plan, remote, Sink(), actor="t", now=NOW, read_only=True)
    assert sim.stats.mutating_requests == 0 and len(sink) == 1


def test_answering_no_sends_nothing(
    sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    questions: list[str] = []

    def say_no(question: str) -> bool:
        questions.append(question)
        return False

    monkeypatch.setattr(action_cli, "terminal_confirm", say_no)
    assert main(cli(sim, db, "rebuild")) == 1
    assert "nothing was sent" in capsys.readouterr().out
    assert sim.stats.mutating_requests == 0
    assert len(questions) == 1 and sim.project_path in questions[0] and "main" in questions[0]
    assert "play the manual job build-ci-image" in questions[0]
    assert audit_rows(db)[0][2] == "declined: answered no at the prompt"


def test_answering_no_through_stdin(
    sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Tty("n\n"))
    assert main(cli(sim, db, "retry", str(_finished_job(sim).id))) == 1
    captured = capsys.readouterr()
    assert "Proceed? [y/N]" in captured.err and "nothing was sent" in captured.out
    assert sim.stats.mutating_requests == 0


def test_no_terminal_and_no_yes_is_exit_2_without_waiting(
    sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal, like CI
    assert main(cli(sim, db, "rebuild")) == 2
    err = capsys.readouterr().err
    assert "no terminal to confirm" in err and "--yes" in err and err.count("\n") == 1
    assert sim.stats.mutating_requests == 0
    assert audit_rows(db)[0][2].startswith("refused: no terminal")


def test_403_with_the_read_only_token_is_explained(
    sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sim.readonly_token
    monkeypatch.setenv("GITLAB_TOKEN", sim.readonly_token)
    assert main(cli(sim, db, "rebuild", "--yes", "--no-follow")) == 2
    err = capsys.readouterr().err
    assert f"your token lacks the api scope or the Developer role on {sim.project_path}" in err
    assert sim.readonly_token not in err and latest_build_job(sim).status_at(sim.world.now()) == "manual"
    rows = audit_rows(db)
    assert rows[0][1] == "reporter" and rows[0][2].startswith("error: your token lacks the api scope")


def test_audit_rows_never_hold_the_token(sim: SimulatedGitLab, db: Path) -> None:
    main(cli(sim, db, "rebuild", "--dry-run"))
    main(cli(sim, db, "rebuild", "--yes", "--no-follow", "--var", "X=1"))
    with Store.open(db) as store:
        records = store.audit()
    assert len(records) == 2
    for r in records:
        assert sim.token not in repr(r)
        assert r.at.tzinfo is not None and r.project == sim.project_path


# ---------------------------------------------------------------------------------------------------------------
# errors from GitLab, in words
# ---------------------------------------------------------------------------------------------------------------


def test_playing_a_job_that_is_no_longer_manual_says_so(sim: SimulatedGitLab) -> None:
    remote = remote_for(sim)
    plan = plan_rebuild(remote, remote.project(sim.project_path))
    assert plan.kind == "play" and plan.job is not None
    sim.world.play_job(sim.world.main, latest_build_job(sim), "someone")  # a race: played meanwhile
    with pytest.raises(RemoteError, match=rf"job {plan.job.id} is not manual \(status created\): nothing to play"):
        execute(plan, remote, None, actor="t", now=NOW)


def test_429_is_retried_within_limits(sim: SimulatedGitLab) -> None:
    sim.set_faults(
        FaultPlan(rules=(FaultRule(endpoint="*/retry", method="POST", status=429, first=2, retry_after=0.05),))
    )
    remote = remote_for(sim)
    job = _finished_job(sim)
    result = execute(plan_retry(remote, remote.project(sim.project_path), job.id), remote, None, actor="t", now=NOW)
    assert result.job is not None and result.job.id != job.id
    assert sim.stats.by_endpoint["POST /projects/:id/jobs/:job_id/retry"] == 3


def test_429_beyond_the_limit_is_reported(sim: SimulatedGitLab) -> None:
    sim.set_faults(FaultPlan(rules=(FaultRule(endpoint="*/retry", method="POST", status=429, retry_after=0.05),)))
    remote = remote_for(sim)
    job = _finished_job(sim)
    plan = plan_retry(remote, remote.project(sim.project_path), job.id)
    with pytest.raises(RateLimited, match=r"rate-limiting .* nothing was changed"):
        execute(plan, remote, None, actor="t", now=NOW)
    assert sim.stats.by_endpoint["POST /projects/:id/jobs/:job_id/retry"] == 3
    assert not job.retried


@pytest.mark.parametrize(("status", "words"), [(409, "conflict"), (423, "locked")])
def test_conflict_and_lock_are_explained(sim: SimulatedGitLab, status: int, words: str) -> None:
    sim.set_faults(FaultPlan(rules=(FaultRule(endpoint="*/pipeline", method="POST", status=status),)))
    remote = remote_for(sim)
    plan = plan_rebuild(remote, remote.project(sim.project_path), ref=SCENARIO.legacy_branch)
    with pytest.raises(RemoteError, match=f"{status} \\({words}\\).*nothing was changed"):
        execute(plan, remote, None, actor="t", now=NOW)


def test_a_server_error_on_a_post_is_not_retried(sim: SimulatedGitLab) -> None:
    sim.set_faults(FaultPlan(rules=(FaultRule(endpoint="*/pipeline", method="POST", status=502),)))
    remote = remote_for(sim)
    plan = plan_rebuild(remote, remote.project(sim.project_path), ref=SCENARIO.legacy_branch)
    with pytest.raises(RemoteError, match="may or may not have taken effect"):
        execute(plan, remote, None, actor="t", now=NOW)
    assert sim.stats.by_endpoint["POST /projects/:id/pipeline"] == 1


# ---------------------------------------------------------------------------------------------------------------
# pure pieces
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["NOEQUALS", "BAD-KEY=1", "=1", "K\u00e9Y=1", "A" * 256 + "=1", "K=a\nb"])
def test_parse_variable_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_variable(text)


def test_parse_variable_and_merge() -> None:
    assert parse_variable("FORCE_CI_IMAGE_REBUILD=true") == ("FORCE_CI_IMAGE_REBUILD", "true")
    assert parse_variable("A=b=c") == ("A", "b=c")
    assert parse_variable("EMPTY=") == ("EMPTY", "")
    assert merge_variables([("A", "1"), ("B", "2")], [("B", "3"), ("C", "4")]) == (("A", "1"), ("B", "3"), ("C", "4"))


def test_bad_var_on_the_command_line_sends_nothing(
    sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli(sim, db, "rebuild", "--var", "NOT VALID=1", "--yes")) == 2
    assert "--var" in capsys.readouterr().err
    assert sim.stats.total_requests == 0


class _FakeRemote:
    """Just enough of ActionRemote for follow(): a job whose status follows a script."""

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.calls = 0

    def job(self, project_id: int, job_id: int) -> Job:
        status = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        return Job(
            project_id=project_id,
            id=job_id,
            pipeline_id=1,
            name="build-ci-image",
            stage="image",
            status=status,
            ref="main",
            sha="0" * 40,
            created_at=NOW,
        )


def test_follow_backs_off_and_stops_at_the_timeout() -> None:
    remote = _FakeRemote(["pending"])
    t = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        t[0] += s

    updates = list(follow(remote, 1, 7, timeout=60, sleep=sleep, clock=lambda: t[0]))  # type: ignore[arg-type]
    assert updates[-1].timed_out and not updates[-1].started
    assert sum(sleeps) == pytest.approx(60)
    assert sleeps == sorted(sleeps[:-1]) + sleeps[-1:] and max(sleeps) <= 10.0
    assert remote.calls <= 12


def test_follow_reports_changes_and_the_start() -> None:
    remote = _FakeRemote(["created", "created", "pending", "waiting_for_resource", "running"])
    t = [0.0]

    def sleep(s: float) -> None:
        t[0] += s

    updates = list(follow(remote, 1, 7, timeout=600, sleep=sleep, clock=lambda: t[0]))  # type: ignore[arg-type]
    assert [u.job.status for u in updates] == ["created", "pending", "waiting_for_resource", "running"]
    assert updates[-1].started and updates[-1].final and not updates[0].final


def test_plan_lines_and_question_name_project_ref_and_effect() -> None:
    project = Project(id=42, path="platform/app", web_url="http://x/platform/app", default_branch="main")
    plan = RebuildPlan(
        action="rebuild",
        kind="create_pipeline",
        project=project,
        ref="main",
        effect="create a new pipeline on main",
        calls=(HttpCall("POST", "/api/v4/projects/42/pipeline", {"ref": "main"}),),
        target="ref main",
        warnings=("w1",),
    )
    assert isinstance(plan, ActionPlan)
    text = "\n".join(plan.lines())
    assert 'request  POST /api/v4/projects/42/pipeline {"ref": "main"}' in text and "warning  w1" in text
    question = plan.question()
    assert "platform/app" in question and "main" in question and "create a new pipeline" in question


def test_explain_error_maps_403_to_words() -> None:
    from cidash.actions import ActionHttpError, explain_error

    project = Project(id=42, path="platform/app", web_url="", default_branch="main")
    call = HttpCall("POST", "/api/v4/projects/42/pipeline")
    plan = RebuildPlan(
        action="rebuild", kind="create_pipeline", project=project, ref="main", effect="e", calls=(call,), target="t"
    )
    err = explain_error(ActionHttpError("x", status=403, call=call, server_message="403 Forbidden"), plan)
    assert isinstance(err, PermissionDenied)
    assert err.message == "your token lacks the api scope or the Developer role on platform/app"


def test_duplicate_guard_looks_past_the_first_page_and_filters_by_ref(sim: SimulatedGitLab) -> None:
    build = latest_build_job(sim)
    sim.world.play_job(sim.world.main, build, "someone")  # the oldest active job: last in newest-first order
    for _ in range(15):  # > 100 newer active jobs, image builds among them, on another ref
        sim.world.create_pipeline(sim.world.main, SCENARIO.legacy_branch, [], "someone")
    remote = remote_for(sim)
    project = remote.project(sim.project_path)
    plan = plan_rebuild(remote, project)
    assert plan.refused and plan.blocking is not None and plan.blocking.id == build.id
    assert sim.stats.by_endpoint["GET /projects/:id/jobs"] >= 2
    other = plan_rebuild(remote, project, ref=SCENARIO.legacy_branch)
    assert other.refused and other.blocking is not None and other.blocking.ref == SCENARIO.legacy_branch


def test_cancel_plan_for_the_dashboard(sim: SimulatedGitLab) -> None:
    from cidash.actions import plan_cancel

    remote = remote_for(sim)
    project = remote.project(sim.project_path)
    build = latest_build_job(sim)
    assert plan_cancel(remote, project, build.id).refused  # manual: nothing to cancel
    sim.world.play_job(sim.world.main, build, "someone")
    plan = plan_cancel(remote, project, build.id)
    assert (
        plan.refusal is None and plan.calls[0].line == f"POST /api/v4/projects/{sim.project_id}/jobs/{build.id}/cancel"
    )
    result = execute(plan, remote, None, actor="t", now=NOW)
    assert result.job is not None and result.job.status == "canceled"
    assert build.status_at(sim.world.now()) == "canceled"


def test_rebuild_on_a_ref_that_does_not_exist(
    sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli(sim, db, "rebuild", "--ref", "no/such-branch", "--yes")) == 2
    assert "ref 'no/such-branch' does not exist in platform/app" in capsys.readouterr().err
    assert sim.stats.mutating_requests == 0


def test_a_new_branch_without_pipelines_gets_one(sim: SimulatedGitLab) -> None:
    project = sim.world.main
    project.heads["fresh"] = project.heads["main"]
    remote = remote_for(sim)
    plan = plan_rebuild(remote, remote.project(sim.project_path), ref="fresh")
    assert plan.kind == "create_pipeline" and plan.warnings == ("no pipeline on fresh yet",)
    result = execute(plan, remote, None, actor="t", now=NOW)
    assert result.pipeline is not None and sim.world.main.pipelines[result.pipeline.id].ref == "fresh"


def test_gitlab_refusing_a_pipeline_is_said_in_words(sim: SimulatedGitLab) -> None:
    remote = remote_for(sim)
    project = remote.project(sim.project_path)
    plan = plan_rebuild(remote, project, ref=SCENARIO.legacy_branch)
    del sim.world.main.heads[SCENARIO.legacy_branch]  # deleted between plan and execution
    with pytest.raises(RemoteError, match=r"refused to create a pipeline on feature/legacy-ci .*: Reference not found"):
        execute(plan, remote, None, actor="t", now=NOW)


def test_losing_sight_of_the_job_while_following_is_not_a_failure(
    sim: SimulatedGitLab, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.set_faults(FaultPlan(rules=(FaultRule(endpoint="GET /projects/:id/jobs/:job_id", status=404),)))
    args = build_parser().parse_args(cli(sim, db, "rebuild", "--yes"))
    rc = action_cli.run_action(
        args,
        action="rebuild",
        target="ref main",
        make_plan=lambda remote, project, config: plan_rebuild(remote, project),
        sleep=lambda s: None,
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "played" in out and "stopped following job" in out
    assert latest_build_job(sim).played
