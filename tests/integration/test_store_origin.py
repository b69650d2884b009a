"""A store holds one GitLab instance: the first sync records its URL, a sync from another URL is refused before its
first request, and ``--accept-origin`` records a new URL for an instance that moved (cidash.sync.origin)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cidash.cli import main
from cidash.errors import ConfigError
from cidash.models import Project
from cidash.sim import Scenario, SimulatedGitLab
from cidash.store import Store
from cidash.sync.origin import ORIGIN_KIND, ORIGIN_PROJECT, claim_store_origin, instance_url, store_origin


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://GitLab.Example.com", "https://gitlab.example.com"),
        ("https://gitlab.example.com:443/", "https://gitlab.example.com"),
        ("http://gitlab.example.com:80", "http://gitlab.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://gitlab.example.com:8443/gitlab/", "https://gitlab.example.com:8443/gitlab"),
        ("https://gitlab.example.com/api/v4", "https://gitlab.example.com"),
        ("https://user:s3cret@gitlab.example.com/?private_token=s3cret#x", "https://gitlab.example.com"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_instance_url_is_the_instance_only(url: str, expected: str) -> None:
    assert instance_url(url) == expected
    assert "s3cret" not in instance_url(url)


def test_claim_records_keeps_refuses_and_accepts(store_target: str) -> None:
    """On SQLite and on a PostgreSQL store shared by several workers."""
    with Store.open(store_target) as store:
        assert store_origin(store) is None
        assert claim_store_origin(store, "https://a.example.com/") == "https://a.example.com"
        assert claim_store_origin(store, "https://A.example.com:443") == "https://a.example.com"  # same instance
        with pytest.raises(ConfigError) as caught:
            claim_store_origin(store, "https://b.example.com")
        line = caught.value.one_line()
        assert "https://a.example.com" in line and "https://b.example.com" in line and store.location in line
        assert "--accept-origin" in line
        assert store_origin(store) == "https://a.example.com"  # a refusal writes nothing
        assert claim_store_origin(store, "https://b.example.com", accept=True) == "https://b.example.com"
        assert store_origin(store) == "https://b.example.com"
        # the row is not a project's: it never shows up as one, nor as a last sync
        assert store.last_syncs() == {}
        assert store.cursor(ORIGIN_PROJECT, ORIGIN_KIND) == "https://b.example.com"


def test_claim_is_first_writer_wins(store_target: str) -> None:
    with Store.open(store_target) as one, Store.open(store_target) as two:
        assert one.claim_origin(ORIGIN_PROJECT, ORIGIN_KIND, "https://a.example.com") == "https://a.example.com"
        assert two.claim_origin(ORIGIN_PROJECT, ORIGIN_KIND, "https://b.example.com") == "https://a.example.com"


@pytest.fixture
def tiny_sim() -> Iterator[SimulatedGitLab]:
    with SimulatedGitLab(Scenario(days=2, pipelines_per_day=2, migration_day=1)) as server:
        yield server


def _sync(url: str, project: str, db: Path, *extra: str) -> int:
    return main(["sync", "--url", url, "--project", project, "--db", str(db), "--since", "all", *extra])


def _synced_once(sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store synced once from ``sim`` by the CLI (its token in the environment, as a user sets it)."""
    monkeypatch.setenv("GITLAB_TOKEN", sim.token)
    db = tmp_path / "store.db"
    assert _sync(sim.url, sim.project_path, db) == 0
    return db


def _counts(db: Path) -> tuple[int, int]:
    with Store.open(db, readonly=True) as store:
        projects = store._query("SELECT COUNT(*) FROM projects")[0][0]
        pipelines = store._query("SELECT COUNT(*) FROM pipelines")[0][0]
    return int(projects), int(pipelines)


def test_sync_refuses_another_instance_before_any_request(
    tiny_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _synced_once(tiny_sim, tmp_path, monkeypatch)
    with Store.open(db, readonly=True) as store:
        assert store_origin(store) == instance_url(tiny_sim.url)
    before = _counts(db)
    assert before[1] > 0
    capsys.readouterr()

    # The same store pointed at another GitLab (127.0.0.2 stands for another host): refused, nothing asked or written.
    with SimulatedGitLab(Scenario(days=2, pipelines_per_day=3, migration_day=1), host="127.0.0.2") as other:
        requests = other.stats.total_requests
        code = _sync(other.url, other.project_path, db)
        err = capsys.readouterr().err
        assert code == 2
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert instance_url(tiny_sim.url) in err and instance_url(other.url) in err and str(db) in err
        assert other.token not in err and tiny_sim.token not in err
        assert other.stats.total_requests == requests
    assert _counts(db) == before


def test_accept_origin_records_a_moved_instance(
    tiny_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _synced_once(tiny_sim, tmp_path, monkeypatch)
    moved = tiny_sim.url.replace("127.0.0.1", "localhost")  # the same server under another name
    assert _sync(moved, tiny_sim.project_path, db) == 2
    capsys.readouterr()
    assert _sync(moved, tiny_sim.project_path, db, "--accept-origin") == 0
    assert "0 pipelines" in capsys.readouterr().out  # the same instance: nothing new, nothing duplicated
    with Store.open(db, readonly=True) as store:
        assert store_origin(store) == instance_url(moved)
    assert _sync(moved, tiny_sim.project_path, db) == 0  # recorded: no flag needed any more


def test_a_store_synced_before_origins_were_recorded_adopts_the_url(
    tiny_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _synced_once(tiny_sim, tmp_path, monkeypatch)
    with Store.open(db) as store, store.transaction():
        store._write("DELETE FROM sync_state WHERE project_id = ? AND kind = ?", [(ORIGIN_PROJECT, ORIGIN_KIND)])
    assert _sync(tiny_sim.url, tiny_sim.project_path, db) == 0
    with Store.open(db, readonly=True) as store:
        assert store_origin(store) == instance_url(tiny_sim.url)


def test_library_syncs_claim_the_origin_too(tiny_sim: SimulatedGitLab, tmp_path: Path) -> None:
    """The dashboard's refresh and `cidash serve` call sync_project / sync_projects: the same guard applies."""
    from cidash.connection import Connection, Secret
    from cidash.remote import GitLabClient
    from cidash.sync import SyncOptions, sync_project, sync_projects

    now = datetime.now(UTC)
    with Store.open(tmp_path / "s.db") as store:
        claim_store_origin(store, "https://elsewhere.example.com")
        conn = Connection(url=tiny_sim.url, token=Secret(tiny_sim.token), max_rps=0, concurrency=2)
        with GitLabClient(conn) as client:
            with pytest.raises(ConfigError):
                sync_project(client, store, tiny_sim.project_path, options=SyncOptions(), now=now)
            with pytest.raises(ConfigError):
                sync_projects(client, store, projects=[tiny_sim.project_path], options=SyncOptions(), now=now)
            assert client.stats.requests == 0
        assert store._query("SELECT COUNT(*) FROM projects")[0][0] == 0


def test_actions_refuse_a_store_synced_from_another_instance(
    tiny_sim: SimulatedGitLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A retry or rebuild names stored ids: sent to another instance, they would name other records there."""
    from cidash.config import Config
    from cidash.connection import Connection, Secret
    from cidash.remote import GitLabClient
    from cidash.tui.adapters import CoreActions

    monkeypatch.setenv("GITLAB_TOKEN", tiny_sim.token)
    db = tmp_path / "store.db"
    with Store.open(db) as store:
        claim_store_origin(store, "https://elsewhere.example.com")
    requests = tiny_sim.stats.total_requests
    code = main(["retry", "7", "--dry-run", "--url", tiny_sim.url, "--project", tiny_sim.project_path, "--db", str(db)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "https://elsewhere.example.com" in err and "no action is sent" in err
    assert tiny_sim.stats.total_requests == requests

    conn = Connection(url=tiny_sim.url, token=Secret(tiny_sim.token), max_rps=0, concurrency=2)
    with Store.open(db) as store, GitLabClient(conn) as client:
        actions = CoreActions(lambda: client, store, Config(), clock=lambda: datetime.now(UTC))
        project = tiny_sim_project(tiny_sim)
        with pytest.raises(ConfigError, match="no action is sent"):
            actions.plan("retry", project, job_id=7)
        assert client.stats.requests == 0
        # the same store synced from this GitLab: the guard lets the plan through to GitLab
        claim_store_origin(store, tiny_sim.url, accept=True)
        actions.plan("rebuild", project)
        assert client.stats.requests > 0


def tiny_sim_project(sim: SimulatedGitLab) -> Project:
    return Project(
        id=sim.project_id, path=sim.project_path, web_url=f"{sim.url}/{sim.project_path}", default_branch="main"
    )
