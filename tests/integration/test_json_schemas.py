"""Every JSON document a command prints matches its schema in docs/schemas/, checked on real outputs."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cidash.cli import main
from cidash.sim import SimulatedGitLab
from gitrepo_helpers import commit, init_repo
from metrics_factories import SyncedWorld, synced_world
from paths import DATA, REPO_ROOT

__all__ = ["synced_world"]

SCHEMAS = REPO_ROOT / "docs" / "schemas"
LOGS = DATA / "logs"
CI = DATA / "ci"


@cache
def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    return loaded


def run_json(capsys: pytest.CaptureFixture[str], *argv: str, expect: tuple[int, ...] = (0,)) -> Any:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code in expect, err
    return json.loads(out)


def validate(name: str, document: Any) -> None:
    jsonschema.Draft202012Validator(schema(name), format_checker=jsonschema.FormatChecker()).validate(document)
    assert document["schema_version"] == 1
    assert next(iter(document)) == "schema_version"  # first, so `head` shows it


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.schema.json")), ids=lambda p: p.name)
def test_every_schema_is_a_valid_draft_2020_12_schema(path: Path) -> None:
    loaded = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(loaded)
    assert loaded["properties"]["schema_version"] == {
        "const": 1,
        "description": "Version of this document's shape; bumped on an incompatible change.",
    }
    assert "schema_version" in loaded["required"]


@pytest.mark.parametrize("name", sorted(p.name for p in LOGS.glob("*.log")))
def test_trace(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    validate("trace", run_json(capsys, "trace", str(LOGS / name), "--format", "json"))
    validate("trace", run_json(capsys, "trace", str(LOGS / name), "--json"))


@pytest.mark.parametrize("name", sorted(p.name for p in CI.glob("*.yml")))
def test_lint(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "lint", str(CI / name), "--format", "json", expect=(0, 1))
    validate("lint", doc)


def test_key_and_key_gitlab(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(tmp_path / "repo")
    commit(
        repo,
        "ci",
        {
            "go.mod": "module x\n",
            ".cache-key": "x\n",
            ".gitlab-ci.yml": "build:\n  script: [make]\n  cache:\n    key:\n      files: [go.mod, go.sum]\n"
            "    paths: [.go]\ntest:\n  script: [make]\n  cache:\n    key:\n      files: [.cache-key]\n"
            "      prefix: deps\n    paths: [.go]\n",
        },
    )
    monkeypatch.chdir(repo)
    doc = run_json(capsys, "key", "--format", "json", "go.mod", ".cache-key")
    validate("key", doc)
    assert [f["path"] for f in doc["files"]] == ["go.mod", ".cache-key"]
    validate("key-gitlab", run_json(capsys, "key", "--gitlab", "--json", expect=(0, 1)))


def test_check_compare_export_prune(synced_world: SyncedWorld, capsys: pytest.CaptureFixture[str]) -> None:
    w = synced_world
    now = w.now.isoformat()
    common = ("--db", w.db, "--config", w.config_file)
    validate("check", run_json(capsys, "check", *common, "--format", "json", "--now", now, expect=(0, 1)))
    validate("check", run_json(capsys, "check", *common, "--json", "--now", now, expect=(0, 1)))
    compare = run_json(
        capsys,
        "compare",
        *common,
        "--json",
        "--baseline",
        f"..{(w.now.date().replace(day=1)).isoformat()}",
        "--candidate",
        f"{(w.now.date().replace(day=1)).isoformat()}..",
        "--resamples",
        "50",
        expect=(0, 1),
    )
    validate("compare", compare)
    validate("export", run_json(capsys, "export", *common, "--now", now))
    validate("export", run_json(capsys, "export", *common, "--json", "--since", "all", "--now", now))
    validate("prune", run_json(capsys, "prune", *common, "--before", "2000-01-01", "--dry-run", "--json"))


def test_sync_and_doctor(
    small_sim: SimulatedGitLab, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITLAB_URL", small_sim.url)
    monkeypatch.setenv("GITLAB_TOKEN", small_sim.token)
    db = str(tmp_path / "s.db")
    doc = run_json(capsys, "sync", "--project", small_sim.project_path, "--db", db, "--since", "all", "--json")
    validate("sync", doc)
    assert doc["projects"][0]["pipelines"] == small_sim.truth.pipelines
    doc = run_json(capsys, "doctor", "--project", small_sim.project_path, "--db", db, "--format", "json")
    validate("doctor", doc)
    assert doc["store"]["schema_version"] and small_sim.token not in json.dumps(doc)
    monkeypatch.delenv("GITLAB_URL")
    validate("doctor", run_json(capsys, "doctor", "--db", db, "--json", expect=(1,)))


def test_every_schema_is_checked_against_a_real_output_here() -> None:
    import re

    checked = set(re.findall(r'validate\("([a-z-]+)"', Path(__file__).read_text(encoding="utf-8")))
    assert checked == {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")}


def test_rebuild_and_retry(
    small_sim: SimulatedGitLab, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITLAB_URL", small_sim.url)
    monkeypatch.setenv("GITLAB_TOKEN", small_sim.token)
    common = ("--project", small_sim.project_path, "--db", str(tmp_path / "s.db"))
    doc = run_json(capsys, "rebuild", *common, "--dry-run", "--var", "SECRET_X=hunter2", "--format", "json")
    validate("action", doc)
    assert doc["dry_run"] and not doc["sent"] and "hunter2" not in json.dumps(doc)
    now = small_sim.world.now()
    failed = [
        j for j in small_sim.world.all_jobs(small_sim.project_id) if j.status_at(now) == "failed" and not j.retried
    ]
    job_id = (failed or list(small_sim.world.all_jobs(small_sim.project_id)))[-1].id
    doc = run_json(capsys, "retry", str(job_id), *common, "--dry-run", "--json")
    validate("action", doc)
    assert doc["action"] == "retry" and doc["target"] == f"job {job_id}" and doc["log"]
    # --format json never asks: without --yes or --dry-run it is a usage error, and nothing is sent
    assert main(["retry", str(job_id), *common, "--json"]) == 2
    assert "--yes" in capsys.readouterr().err
