"""One core, one answer (issue 14): check, compare, export and the dashboard read one Snapshot, the views only
format it, and the bugs the dashboard's second data path caused stay fixed."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

import pytest

from cidash.cli import main
from cidash.config import Config, load_config
from cidash.criteria import CRITERIA_IDS, REGISTRY, TITLES, evaluate
from cidash.export import ExportInput, export_document
from cidash.formatting import fmt_pct, fmt_seconds
from cidash.metrics import job_startups
from cidash.models import ExitCode
from cidash.snapshot import Snapshot, load_snapshot
from cidash.specs import parse_spec
from cidash.store import Store
from cidash.tui.data import caches_view, health_rows, local_key_status, migration_presets, startup_view
from gitrepo_helpers import commit, init_repo
from metrics_factories import SyncedWorld, synced_world
from paths import REPO_ROOT

__all__ = ["synced_world"]  # the session fixture


@pytest.fixture(scope="module")
def snap(synced_world: SyncedWorld) -> Snapshot:
    config = load_config(synced_world.config_file)
    with Store.open(synced_world.db, readonly=True) as store:
        return load_snapshot(store, config, synced_world.now)


def test_the_registry_is_the_one_list_of_criteria() -> None:
    assert tuple(REGISTRY) == CRITERIA_IDS and len(CRITERIA_IDS) == 7
    for cid, crit in REGISTRY.items():
        assert crit.id == cid and TITLES[cid] == crit.title and crit.short_title and crit.series_unit


def test_the_snapshot_evaluates_once_and_keeps_the_answer(snap: Snapshot) -> None:
    assert snap.report is snap.report and snap.periods is snap.periods
    assert snap.report == evaluate(snap.dataset, snap.config, snap.now, periods=snap.periods)
    assert len(repr(snap)) < 200  # Textual logs worker arguments: never every job


def test_a_verdict_does_not_move(
    snap: Snapshot,
    synced_world: SyncedWorld,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Health, check, export and compare made from one snapshot (and the commands, for the same --now) show the
    same criteria values."""
    report = {c.id: c for c in snap.report.criteria}
    assert list(report) == list(CRITERIA_IDS)
    expected = {cid: (c.status, c.value, c.n) for cid, c in report.items()}

    health = health_rows(snap)
    assert {r.id: r.status for r in health.rows} == {cid: v[0] for cid, v in expected.items()}
    assert {r.id: r.n for r in health.rows} == {cid: v[2] for cid, v in expected.items()}

    doc = export_document(ExportInput(snap.dataset, snap.report, snap.now, None, "build-ci-image", ()))
    assert {c["id"]: (c["status"], c["value"], c["n"]) for c in doc["criteria"]} == {
        cid: (s, None if v is None else round(v, 3), n) for cid, (s, v, n) in expected.items()
    }

    now = synced_world.now.astimezone(UTC).isoformat()
    common = ["--db", synced_world.db, "--config", synced_world.config_file]
    assert isinstance(main(["check", "--json", "--now", now, *common]), ExitCode)
    check = json.loads(capsys.readouterr().out)
    assert {c["id"]: (c["status"], c["value"], c["n"]) for c in check["criteria"]} == {
        cid: (s, None if v is None else round(v, 3), n) for cid, (s, v, n) in expected.items()
    }
    out = tmp_path / "export.json"
    assert main(["export", "--format", "json", "--now", now, "--since", "all", "--output", str(out), *common]) == 0
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert [c["value"] for c in exported["criteria"]] == [c["value"] for c in check["criteria"]]

    # the Compare tab's migration presets give the start-up numbers check gives
    presets = migration_presets(snap)
    assert presets is not None
    comparison = snap.compare(parse_spec(presets[0]), parse_spec(presets[1]))
    row = next(r for r in comparison.rows if r.criterion == "startup_improvement")
    details = report["startup_improvement"].details
    assert (row.n_baseline, row.n_candidate) == (details["n_baseline"], details["n_candidate"])
    assert row.baseline is not None and row.candidate is not None
    assert row.baseline.median == pytest.approx(details["baseline_median"])
    assert row.candidate.median == pytest.approx(details["candidate_median"])
    assert main(["compare", "--json", "--baseline", presets[0], "--candidate", presets[1], *common]) in (0, 1)
    cli_row = next(r for r in json.loads(capsys.readouterr().out)["metrics"] if r["criterion"] == "startup_improvement")
    assert (cli_row["n_baseline"], cli_row["n_candidate"], cli_row["verdict"]) == (
        row.n_baseline,
        row.n_candidate,
        row.verdict,
    )


def test_the_startup_tab_says_what_check_says(snap: Snapshot) -> None:
    """The tab counted the image-build job (it runs in the docker image) and listed its image first, unlabelled;
    now its totals are the criterion's and no digest of that job's image is listed."""
    result = next(r for r in snap.report.criteria if r.id == "startup_improvement")
    d = result.details
    view = startup_view(snap)
    total = next(r for r in view.phase_rows if r[0] == "total")
    assert total[1] == fmt_seconds(d["baseline_median"]) and total[3] == fmt_seconds(d["candidate_median"])
    assert total[6] == f"{d['n_baseline']}/{d['n_candidate']}"
    assert total[5] == fmt_pct(d["change_pct"], signed=True)
    build = snap.config.image.build_job
    build_digests = {s.image_digest for s in job_startups(snap.dataset) if s.name == build and s.image_digest}
    other_digests = {s.image_digest for s in job_startups(snap.dataset) if s.name != build and s.image_digest}
    assert build_digests - other_digests, "the scenario's image-build job runs its own image"
    listed = {row[0] for row in view.digest_rows}
    assert not {dg.removeprefix("sha256:")[:12] for dg in build_digests - other_digests} & listed


def test_health_rows_come_from_the_registry(snap: Snapshot) -> None:
    health = health_rows(snap)
    assert [r.short_title for r in health.rows] == [REGISTRY[c].short_title for c in CRITERIA_IDS]
    startup = next(r for r in health.rows if r.id == "startup_improvement")
    details = next(c for c in snap.report.criteria if c.id == "startup_improvement").details
    assert startup.baseline == fmt_seconds(details["baseline_median"])
    for r in health.rows:
        assert len(r.series) == 30
        assert list(r.series) == [p.value for p in snap.daily_series(r.id)]


def test_evidence_tables_come_from_the_registry(snap: Snapshot) -> None:
    for cid in CRITERIA_IDS:
        cols, rows = snap.evidence(cid)
        assert cols and all(len(row) == len(cols) for row in rows)
    # the start-up evidence lists the jobs the criterion counts: never the image-build job
    _, rows = snap.evidence("startup_improvement")
    assert rows and snap.config.image.build_job not in {row[2] for row in rows}


def test_the_caches_tab_last_seen_key_is_the_key_command_rule(snap: Snapshot, synced_world: SyncedWorld) -> None:
    from cidash.actions.keys import latest_seen_key

    with Store.open(synced_world.db, readonly=True) as store:
        view = caches_view(snap, store)
        assert view.ref is not None
        expected = latest_seen_key(store, snap.project.id, view.ref)[0]
    assert expected is not None and view.last_key_on_ref == expected


def _panel_key(lines: list[str]) -> str:
    (line,) = [ln for ln in lines if ln.startswith("GitLab key for HEAD")]
    return line.split("[bold]", 1)[1].split("[/]", 1)[0]


@pytest.mark.parametrize("kind", ["files", "files_commits"])
def test_the_local_panel_shows_what_key_gitlab_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """The panel read the working-tree CI file and computed the key itself; now it is `cidash key --gitlab`'s
    key for the CI file committed at HEAD, files_commits: included."""
    repo = init_repo(tmp_path / "repo")
    ci = f"test:\n  script: [x]\n  cache:\n    key:\n      {kind}: [package.json, yarn.lock]\n      prefix: old\n"
    commit(repo, "one", {".gitlab-ci.yml": ci, "package.json": "{}\n", "yarn.lock": "y\n"})
    commit(repo, "two", {"yarn.lock": "z\n"})
    (repo / ".gitlab-ci.yml").write_text(ci.replace("old", "uncommitted"), encoding="utf-8")  # not committed
    lines = local_key_status(Config(), repo, None, "main", "18.6.0")
    monkeypatch.chdir(repo)
    assert main(["key", "--gitlab", "--json", "--gitlab-version", "18.6.0"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["caches"]
    assert entry["key"].startswith("old-")
    assert _panel_key(lines) == entry["key"]


def test_commands_take_the_snapshot_door() -> None:
    """check, compare and export build no dataset of their own (the recipe lives in cidash.snapshot)."""
    root = REPO_ROOT / "src" / "cidash"
    for name in ("check", "compare", "export", "tui"):
        text = (root / "commands" / f"{name}.py").read_text(encoding="utf-8")
        assert "load_dataset" not in text and "evaluate(" not in text, name
    data = (root / "tui" / "data.py").read_text(encoding="utf-8")
    assert "sqlite3" not in data and "SELECT" not in data and "eval_" not in data
    for cid in CRITERIA_IDS:  # no criterion id matched outside the registry
        assert f'"{cid}"' not in data
