"""Key recompute: the local plan/write of the committed checksum file, and a ref's key status on GitLab."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cidash.actions import plan_key_recompute_local, remote_key_status, write_key
from cidash.actions.keys import key_matches, key_specs_from_ci
from cidash.cachekey import GitLabVersion, checksum_lines
from cidash.config import CacheKeySettings, Config
from cidash.connection import Connection, Secret
from cidash.errors import ActionRefused
from cidash.models import AuditRecord, CacheEvent, CiConfig, Job, TraceFacts
from cidash.remote import GitLabClient
from cidash.remote.mutations import ActionsRemote
from cidash.sim.scenario import Scenario
from cidash.sim.server import SimulatedGitLab
from cidash.store import Store

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
V18_6 = GitLabVersion(18, 6)
SCENARIO = Scenario(days=20, pipelines_per_day=2, migration_day=3, with_docs_project=False)


class Sink:
    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def add_audit(self, record: AuditRecord) -> None:
        self.records.append(record)


# ---------------------------------------------------------------------------------------------------------------
# local
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, Config]:
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / "go.mod").write_text("module example.com/app\n")
    (root / "sub" / "deps.lock").write_text("a==1\n")
    config = Config(cache_key=CacheKeySettings(files=("go.mod", "sub/deps.lock"), file=".cache-key"))
    return root, config


def test_first_plan_and_write(checkout: tuple[Path, Config]) -> None:
    root, config = checkout
    plan = plan_key_recompute_local(root, config)
    assert not plan.exists and not plan.up_to_date and plan.current is None
    assert plan.content == checksum_lines(["go.mod", "sub/deps.lock"], root)
    sha = hashlib.sha256(b"module example.com/app\n").hexdigest()
    assert plan.content.splitlines()[0] == f"{sha}  go.mod"
    assert "+" + plan.content.splitlines()[1] in plan.diff()
    sink = Sink()
    result = write_key(plan, sink, actor="me", now=NOW)
    assert result.written and (root / ".cache-key").read_text() == plan.content
    assert [r.result for r in sink.records] == ["ok: wrote .cache-key"]
    assert sink.records[0].action == "write_cache_key" and sink.records[0].target == "file .cache-key"
    again = plan_key_recompute_local(root, config)
    assert again.up_to_date and again.lines() == [".cache-key is up to date (2 files)"]


def test_changed_file_shows_per_file_diff_and_the_git_commands(checkout: tuple[Path, Config]) -> None:
    root, config = checkout
    write_key(plan_key_recompute_local(root, config), None, actor="me", now=NOW)
    (root / "sub" / "deps.lock").write_text("a==2\n")
    plan = plan_key_recompute_local(root, config)
    assert not plan.up_to_date and [c.path for c in plan.changed] == ["sub/deps.lock"]
    old = hashlib.sha256(b"a==1\n").hexdigest()
    new = hashlib.sha256(b"a==2\n").hexdigest()
    assert f"-{old}  sub/deps.lock" in plan.diff() and f"+{new}  sub/deps.lock" in plan.diff()
    assert plan.git_commands == ("git add .cache-key && git commit -m 'Recompute .cache-key (sub/deps.lock changed)'",)
    text = "\n".join(plan.lines())
    assert f"changed  sub/deps.lock  {old[:12]} -> {new[:12]}" in text and "cidash never commits" in text


def test_dry_run_read_only_and_race_write_nothing(checkout: tuple[Path, Config]) -> None:
    root, config = checkout
    target = root / ".cache-key"
    target.write_text("old\n")
    plan = plan_key_recompute_local(root, config)
    sink = Sink()
    assert write_key(plan, sink, actor="me", now=NOW, dry_run=True).dry_run
    assert target.read_text() == "old\n"
    with pytest.raises(ActionRefused, match="read-only"):
        write_key(plan, sink, actor="me", now=NOW, read_only=True)
    assert target.read_text() == "old\n"
    (root / "go.mod").write_text("module example.com/other\n")  # changed after the plan was shown
    with pytest.raises(ActionRefused, match="changed since the plan"):
        write_key(plan, sink, actor="me", now=NOW)
    assert target.read_text() == "old\n"
    assert [r.result.split(":")[0] for r in sink.records] == ["dry-run", "refused", "refused"]
    assert sink.records[0].dry_run


# ---------------------------------------------------------------------------------------------------------------
# remote
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[SimulatedGitLab]:
    with SimulatedGitLab(SCENARIO) as server:
        yield server


def remote_for(sim: SimulatedGitLab) -> ActionsRemote:
    return ActionsRemote(GitLabClient(Connection(url=sim.url, token=Secret(sim.token), max_rps=0)))


def store_with_restore(tmp_path: Path, *, ref: str, sha: str, key: str, job_id: int = 5) -> Store:
    store = Store.open(tmp_path / "s.db")
    job = Job(
        project_id=SCENARIO.project_id,
        id=job_id,
        pipeline_id=1,
        name="test",
        stage="test",
        status="success",
        ref=ref,
        sha=sha,
        created_at=NOW - timedelta(hours=1),
        finished_at=NOW,
    )
    store.upsert_jobs([job])
    facts = TraceFacts(
        runner_version="19.1.0",
        executor="docker",
        truncated=False,
        sections=(),
        startup_seconds=None,
        image=None,
        cache=(CacheEvent("restore", key, "hit"),),
    )
    store.save_job_facts(job_id, facts, project_id=SCENARIO.project_id)
    return store


def _main_job_key(sim: SimulatedGitLab) -> tuple[str, str]:
    project = sim.world.main
    head = project.heads["main"]
    for job in sorted(project.jobs.values(), key=lambda j: -j.id):
        pipeline = project.pipelines[job.pipeline_id]
        if job.cache_key and pipeline.sha == head:
            return job.cache_key, head
    raise AssertionError("no cache job on main's head")


def test_remote_status_matches_the_latest_log(sim: SimulatedGitLab, tmp_path: Path) -> None:
    key, head = _main_job_key(sim)
    remote = remote_for(sim)
    project = remote.project(sim.project_path)
    with store_with_restore(tmp_path, ref="main", sha=head, key=key) as store:
        status = remote_key_status(remote, project, "main", Config(), store)
    assert status.sha == head and status.missing == ()
    files = sim.world.main.commits[head].files
    expected_lines = "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in Config().cache_key.files)
    assert status.checksum == expected_lines and status.committed == files[".cache-key"].decode()
    assert status.committed_ok is True
    assert status.verdict == "ok" and status.seen_key == key and status.seen_job == 5
    assert any(key_matches(key, k) for k in status.expected_keys)
    assert sim.stats.mutating_requests == 0
    assert sim.stats.by_endpoint["HEAD /projects/:id/repository/files/:file_path"] == len(Config().cache_key.files) + 1


def test_remote_status_finds_a_stale_committed_file(sim: SimulatedGitLab) -> None:
    head = sim.world.main.heads["main"]
    sim.world.main.commits[head].files[".cache-key"] = b"0" * 64 + b"  go.mod\n"
    remote = remote_for(sim)
    status = remote_key_status(remote, remote.project(sim.project_path), "main", Config(), None)
    assert status.committed_ok is False and status.verdict == "stale_file"
    assert any("cidash key --write .cache-key" in e for e in status.explanation)


def test_remote_status_on_the_legacy_branch_falls_back_to_default(sim: SimulatedGitLab) -> None:
    remote = remote_for(sim)
    project = remote.project(sim.project_path)
    status = remote_key_status(remote, project, SCENARIO.legacy_branch, Config(), None, gitlab_version=V18_6)
    assert status.committed is None and status.verdict == "default_key"
    assert status.expected_keys == ("0_-default",)  # GitLab >= 16.0: '0_' + the stem of '.cache-key'
    unknown = remote_key_status(remote, project, SCENARIO.legacy_branch, Config(), None)
    assert unknown.verdict == "default_key" and unknown.version is None
    assert unknown.expected_keys == ("0_-default", "0-default", "default")
    assert any("GitLab version unknown" in e for e in unknown.explanation)


def test_remote_status_behind_and_mismatch(sim: SimulatedGitLab, tmp_path: Path) -> None:
    _, head = _main_job_key(sim)
    remote = remote_for(sim)
    project = remote.project(sim.project_path)
    with store_with_restore(tmp_path, ref="main", sha="f" * 40, key="0-" + "1" * 40 + "-protected") as store:
        behind = remote_key_status(remote, project, "main", Config(), store)
    assert behind.verdict == "behind" and "not the head" in behind.explanation[-1]
    with store_with_restore(tmp_path / "b", ref="main", sha=head, key="0-" + "1" * 40 + "-protected") as store:
        mismatch = remote_key_status(remote, project, "main", Config(), store)
    assert mismatch.verdict == "mismatch"


def test_key_specs_from_a_stored_ci_file() -> None:
    text = (
        "test:\n  script: [true]\n  cache:\n    - key:\n        files: [go.sum, Dockerfile.ci]\n        prefix: deps\n"
    )
    specs = key_specs_from_ci(CiConfig(42, "a" * 40, ".gitlab-ci.yml", "main", text), ".cache-key")
    assert [(s.files, s.prefix, s.index) for s in specs] == [(("go.sum", "Dockerfile.ci"), "deps", 0)]
    default = key_specs_from_ci(None, ".cache-key")
    assert [(s.files, s.prefix) for s in default] == [((".cache-key",), None)]


def test_key_matches_suffixes() -> None:
    assert key_matches("0_-abc-2-protected", "0_-abc")
    assert key_matches("0_-abc", "0_-abc")
    assert key_matches("0_-abc-non_protected", "0_-abc")
    assert not key_matches("0_-abcd-protected", "0_-abc")
    assert not key_matches("0_-abc-protected-x", "0_-abc")


def test_the_key_check_uses_the_recorded_version_and_explains_the_suffixes(
    sim: SimulatedGitLab, tmp_path: Path
) -> None:
    key, head = _main_job_key(sim)
    base = key.removesuffix("-protected")
    remote = remote_for(sim)
    project = remote.project(sim.project_path)
    with store_with_restore(tmp_path, ref="main", sha=head, key=base + "-3-protected") as store:
        store.set_instance_version(SCENARIO.project_id, "18.6.0", None, NOW)
        status = remote_key_status(remote, project, "main", Config(), store)
    assert status.version == "18.6.0" and status.expected_keys == (base,)
    assert status.verdict == "ok" and status.match is not None and status.match.clear_index == 3
    assert any("Clear runner caches" in e and "-protected" in e for e in status.explanation)
    # GitLab 15.9 would compute '0-<per-entry commit digest>': the same log is then a mismatch, and the
    # explanation names the suffixes GitLab could have added.
    with store_with_restore(tmp_path / "old", ref="main", sha=head, key=base + "-protected") as store:
        store.set_instance_version(SCENARIO.project_id, "15.9.1", None, NOW)
        old = remote_key_status(remote, project, "main", Config(), store)
    assert old.verdict == "mismatch" and old.expected_keys[0].startswith("0-")
    assert "-non_protected: an unprotected ref" in old.explanation[-1]
    # A separated-caches project that turned the setting off: no suffix at all is accepted, and said why.
    with store_with_restore(tmp_path / "off", ref="main", sha=head, key=base) as store:
        off = remote_key_status(remote, project, "main", Config(), store, gitlab_version=V18_6)
    assert off.verdict == "ok" and any("separate caches for protected branches" in e for e in off.explanation)


def test_sync_records_the_instance_version(sim: SimulatedGitLab, tmp_path: Path) -> None:
    from cidash.sync import SyncOptions, sync_project

    options = SyncOptions(fetch_logs=False, fetch_registry=False, fetch_checksums=False)
    with (
        GitLabClient(Connection(url=sim.url, token=Secret(sim.token), max_rps=0)) as client,
        Store.open(tmp_path / "s.db") as store,
    ):
        sync_project(client, store, sim.project_path, options=options, now=NOW)
        assert store.instance_version(SCENARIO.project_id) == "18.6.0" == store.instance_version()
        assert sim.stats.by_endpoint["GET /version"] == 1


def test_sync_records_unknown_when_version_is_forbidden(
    sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cidash.errors import NotFound, PermissionDenied
    from cidash.remote.http import HttpClient
    from cidash.sync import SyncOptions, sync_project

    options = SyncOptions(fetch_logs=False, fetch_registry=False, fetch_checksums=False)
    real = HttpClient.get_json
    for error in (PermissionDenied("GET /version: 403 Forbidden"), NotFound("GET /version: 404 Not Found")):

        def refuse(self: HttpClient, path: str, *a: object, _e: Exception = error, **k: object) -> object:
            if path == "/version":
                raise _e
            return real(self, path, *a, **k)  # type: ignore[arg-type]

        monkeypatch.setattr(HttpClient, "get_json", refuse)
        db = tmp_path / f"{type(error).__name__}.db"
        with (
            GitLabClient(Connection(url=sim.url, token=Secret(sim.token), max_rps=0)) as client,
            Store.open(db) as store,
        ):
            store.set_instance_version(SCENARIO.project_id, "17.0.0", None, NOW)
            sync_project(client, store, sim.project_path, options=options, now=NOW)
            assert store.instance_version(SCENARIO.project_id) is None


def test_a_failing_version_endpoint_keeps_the_recorded_version(sim: SimulatedGitLab, tmp_path: Path) -> None:
    from cidash.remote import RetryPolicy
    from cidash.sim import FaultPlan, FaultRule
    from cidash.sync import SyncOptions, sync_project

    sim.set_faults(FaultPlan(rules=(FaultRule(endpoint="GET /version", status=503),)))
    options = SyncOptions(fetch_logs=False, fetch_registry=False, fetch_checksums=False)
    connection = Connection(url=sim.url, token=Secret(sim.token), max_rps=0)
    with (
        GitLabClient(connection, retry=RetryPolicy(attempts=2, base_delay=0.01)) as client,
        Store.open(tmp_path / "s.db") as store,
    ):
        store.set_instance_version(SCENARIO.project_id, "18.3.1", None, NOW)
        report = sync_project(client, store, sim.project_path, options=options, now=NOW)
        assert store.instance_version(SCENARIO.project_id) == "18.3.1"  # kept: checked again next time
        assert any("GitLab version not checked" in w for w in report.warnings)
