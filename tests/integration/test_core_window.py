"""The window load (issue #15): ``check``, ``compare`` and ``export`` load only the periods the criteria judge, and
their reports are the ones the whole-history load gives, byte for byte, as of any ``--now``."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from cidash.cli import main
from cidash.config import Config, CriteriaSettings
from cidash.criteria import CRITERIA_IDS, choose_periods, criteria_ref
from cidash.dataset import load_dataset, merge_spans
from cidash.formatting import tidy
from cidash.metrics import ci_image_jobs, image_digest_changes
from cidash.queries import image_history
from cidash.snapshot import Snapshot, build_snapshot, load_snapshot
from cidash.store import Store
from cidash.tui.data import caches_view, images_view, startup_view
from metrics_factories import SyncedWorld, every_section_snapshot, synced_world  # noqa: F401 (the session fixture)
from paths import REPO_ROOT

BENCH = REPO_ROOT / "bench" / "tui.py"
REBUILT = "sha256:" + "e" * 64


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_tui", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, datetime]:
    """bench/tui.py's store at 480 pipelines over 120 days (a migration at day 60), then: the last 40 pipelines
    on a rebuilt digest of the same tag (a later, smaller change), a feature branch's jobs on another image, and
    the newest pipeline's jobs still running at its end (what ``--now`` has to rewind)."""
    bench = _bench()
    db = tmp_path_factory.mktemp("window") / "bench.db"
    bench.build_store(db, 480)
    con = sqlite3.connect(db)
    with con:
        last = [r[0] for r in con.execute("SELECT id FROM pipelines ORDER BY created_at DESC LIMIT 40")]
        marks = ",".join("?" * len(last))
        con.execute(
            f"UPDATE job_facts SET image_digest = ? WHERE image_name LIKE '%/ci:%' AND job_id IN "
            f"(SELECT id FROM jobs WHERE pipeline_id IN ({marks}))",
            [f"registry.example.com/platform/app/ci@{REBUILT}", *last],
        )
        con.execute(
            "UPDATE job_facts SET image_name = 'registry.example.com/other/tools:1', "
            "image_digest = 'sha256:' || printf('%064d', 7) WHERE job_id IN "
            "(SELECT j.id FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id WHERE p.ref = 'feature/3')"
        )
    con.close()
    return db, bench.NOW


def _report(
    db: Path,
    config: Config,
    now: datetime,
    *,
    window: bool,
    phases: bool = True,
    ref_only: bool = False,
    narrow: bool = False,
    reference: bool = False,
) -> str:
    with Store.open(db, readonly=True) as store:
        if reference:
            return _json(every_section_snapshot(store, config, store.projects()[0], now))
        snap = load_snapshot(
            store, config, now, since="window" if window else None, phases=phases, ref_only=ref_only, narrow=narrow
        )
        assert snap.narrow is (narrow and window)
        # configured SPECs or a migration named by digest may reach anywhere: the whole history is loaded
        whole = not window or bool(config.criteria.baseline) or config.criteria.migration.startswith("sha256:")
        assert (snap.spans is None) is whole
        return _json(snap)


def _json(snap: Snapshot) -> str:
    return json.dumps([snap.report.as_dict(), snap.report.period, snap.report.warnings], sort_keys=True)


NOWS = (0, 45, 59, 61, 100)  # days before the bench store's end: across the migration and before it


@pytest.mark.parametrize("days_back", NOWS)
def test_the_window_load_gives_the_whole_history_report(bench_store: tuple[Path, datetime], days_back: int) -> None:
    db, end = bench_store
    now = end - timedelta(days=days_back, hours=3)
    whole = _report(db, Config(), now, window=False, reference=True)  # every section of every log
    assert _report(db, Config(), now, window=False) == whole
    assert _report(db, Config(), now, window=True) == whole
    assert _report(db, Config(), now, window=True, phases=False, ref_only=True) == whole
    assert _report(db, Config(), now, window=True, phases=False, ref_only=True, narrow=True) == whole  # check's load
    assert _report(db, Config(), now, window=True, phases=False) == whole


@pytest.mark.parametrize(
    "criteria",
    [
        CriteriaSettings(window_days=7),
        CriteriaSettings(window_days=90),
        CriteriaSettings(migration="2026-10-01T00:00:00Z", window_days=14),
        CriteriaSettings(migration="2027-01-01T00:00:00Z"),  # after now: no baseline
        CriteriaSettings(ref="feature/3"),  # a ref whose jobs ran another image
        CriteriaSettings(migration="sha256:" + "a" * 12),  # by digest: the whole history (no window)
        CriteriaSettings(baseline="2026-09-01..2026-09-20", candidate="2026-10-01..2026-10-20"),
    ],
)
def test_the_window_load_agrees_for_every_way_of_choosing_periods(
    bench_store: tuple[Path, datetime], criteria: CriteriaSettings
) -> None:
    db, end = bench_store
    config = Config(criteria=criteria)
    for now in (end, end - timedelta(days=50)):
        whole = _report(db, config, now, window=False, reference=True)
        assert _report(db, config, now, window=False) == whole
        assert _report(db, config, now, window=True) == whole
        assert _report(db, config, now, window=True, phases=False, ref_only=True) == whole  # check's load


def test_the_window_holds_fewer_pipelines_than_the_history(bench_store: tuple[Path, datetime]) -> None:
    db, end = bench_store
    with Store.open(db, readonly=True) as store:
        whole = build_snapshot(store, Config(), store.projects()[0], end)
        window = build_snapshot(store, Config(), store.projects()[0], end, since="window")
    assert window.spans is not None and whole.spans is None
    # 120 days of history; the baseline (30 days before day 60) and the candidate (the last 30 days) are judged
    assert len(window.dataset.pipelines) < 0.6 * len(whole.dataset.pipelines)
    assert window.report == whole.report


def test_the_database_finds_the_digest_changes_the_dataset_finds(bench_store: tuple[Path, datetime]) -> None:
    db, end = bench_store
    with Store.open(db, readonly=True) as store:
        project = store.projects()[0]
        for now in (end, end - timedelta(days=30), end - timedelta(days=100)):
            ds = load_dataset(store, project, as_of=now)
            hint = f"{project.path}/ci"
            for ref in ("main", "feature/3", "feature/7"):
                history = image_history(store, project.id, ref, hint, now)
                assert list(history.changes) == image_digest_changes(ds.on_ref(ref), hint)
            expected = [c.new for c in image_digest_changes(ds.on_ref("main"), hint)]
            assert expected[-1:] == ([REBUILT] if now == end else expected[-1:])
            assert history.last_digest() is not None


def test_the_periods_chosen_from_the_database_are_the_periods_of_the_history(
    bench_store: tuple[Path, datetime],
) -> None:
    db, end = bench_store
    config = Config()
    with Store.open(db, readonly=True) as store:
        project = store.projects()[0]
        ds = load_dataset(store, project, as_of=end)
        whole = choose_periods(ds, config, end)
        with_history = load_dataset(
            store,
            project,
            as_of=end,
            spans=[(end - timedelta(days=200), None)],
            image_history=image_history(store, project.id, criteria_ref(ds, config), f"{project.path}/ci", end),
        )
        assert choose_periods(with_history, config, end).description == whole.description
    assert "split at the CI-image digest change on main" in whole.description


def test_merge_spans_joins_what_overlaps() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    d = timedelta(days=1)
    assert merge_spans([(t + 5 * d, None), (t, t + d), (t + d, t + 2 * d), (t + 4 * d, t + 6 * d)]) == [
        (t, t + 2 * d),
        (t + 4 * d, None),
    ]
    assert merge_spans([(None, t), (t + d, t + 2 * d)]) == [(None, t), (t + d, t + 2 * d)]
    assert merge_spans([(t, None), (None, t - d)]) == [(None, t - d), (t, None)]


def test_the_commands_give_the_whole_history_answers(
    synced_world: SyncedWorld,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """check (window) and the whole-history snapshot agree on a synced store; export --since all and --since 3d
    count only the pipelines since then (their jobs' log facts too); compare of two date slices loads them."""
    from cidash.config import load_config

    config = load_config(synced_world.config_file)
    now = synced_world.now
    common = ["--db", synced_world.db, "--config", synced_world.config_file]
    main(["check", "--json", "--now", now.isoformat(), *common])
    check = json.loads(capsys.readouterr().out)
    with Store.open(synced_world.db, readonly=True) as store:
        whole = every_section_snapshot(store, config, store.projects()[0], now)
        assert load_snapshot(store, config, now).report.as_dict() == whole.report.as_dict()
        assert check["criteria"] == tidy(whole.report.as_dict())["criteria"]  # as printed: 12 digits
        every = whole.dataset
        recent = every.between(now - timedelta(days=3), None)
    for since, ds in (("all", every), ("3d", recent)):
        out = tmp_path / f"export-{since}.json"
        assert (
            main(
                [
                    "export",
                    "--format",
                    "json",
                    "--now",
                    now.isoformat(),
                    "--since",
                    since,
                    "--output",
                    str(out),
                    *common,
                ]
            )
            == 0
        )
        counts = json.loads(out.read_text(encoding="utf-8"))["counts"]
        assert counts == {
            "pipelines": len(ds.pipelines),
            "jobs": len(ds.jobs),
            "jobs_with_log_facts": sum(j.id in ds.facts for j in ds.jobs),
        }
    assert 0 < counts["jobs_with_log_facts"] < len(every.facts)
    day = now.astimezone(UTC).date()
    base, cand = f"{day - timedelta(days=11)}..{day - timedelta(days=6)}", f"{day - timedelta(days=5)}.."
    assert main(["compare", "--json", "--baseline", base, "--candidate", cand, *common]) in (0, 1)
    windowed = json.loads(capsys.readouterr().out)
    assert windowed.pop("schema_version") == 1
    with Store.open(synced_world.db, readonly=True) as store:
        from cidash.specs import parse_spec

        snap = load_snapshot(store, config, now, evaluate_now=False, as_of=False)
        assert snap.spans is None
        expected = snap.compare(parse_spec(base), parse_spec(cand)).as_dict()
        reference = every_section_snapshot(store, config, store.projects()[0], now, as_of=False)
        assert reference.compare(parse_spec(base), parse_spec(cand)).as_dict() == expected
    assert windowed == json.loads(json.dumps(tidy(expected)))  # as printed: 12 significant digits


@pytest.mark.parametrize("days_back", [0, 45, 100])
def test_the_dashboard_paints_the_whole_history_health_from_the_window(
    bench_store: tuple[Path, datetime], days_back: int
) -> None:
    """The dashboard's first screen is made from the window (with the baseline in full, for the baseline
    column); its other tabs read the whole history, loaded once the Health is painted."""
    from cidash.tui.data import health_rows, load_dashboard

    db, end = bench_store
    now = end - timedelta(days=days_back)
    with Store.open(db, readonly=True) as store:
        project = store.projects()[0]
        snap, health = load_dashboard(store, Config(), project, now)
        whole = build_snapshot(store, Config(), project, now)
        assert snap.spans is not None and not snap.startup_only
        assert health == health_rows(whole)
        wide = snap.widened()
        assert wide.spans is None and wide.report is snap.report
        assert wide.dataset.pipelines == whole.dataset.pipelines and wide.narrow and not whole.narrow
        assert [j.id for j in wide.dataset.jobs] == [j.id for j in whole.dataset.jobs]
        assert startup_view(wide) == startup_view(whole)
        assert caches_view(wide, store) == caches_view(whole, store)
        assert images_view(store, wide) == images_view(store, whole)


def test_a_check_window_refuses_the_baseline_column(bench_store: tuple[Path, datetime]) -> None:
    """check's window holds only the baseline's start-ups: a current-state criterion's baseline value would be
    wrong there, so asking for one is a programming error, not a silent 0."""
    db, end = bench_store
    with Store.open(db, readonly=True) as store:
        snap = build_snapshot(store, Config(), store.projects()[0], end, since="window")
        assert snap.startup_only
        with pytest.raises(RuntimeError):
            snap.baseline("stale_caches")
        lean = build_snapshot(store, Config(), store.projects()[0], end, since="window", phases=False)
        assert not lean.phases and lean.report == snap.report
        with pytest.raises(RuntimeError):  # its start-ups have no phases: the exports would show them empty
            lean.export_input(store, since=None)


def test_reading_in_chunks_gives_the_same_dataset(
    bench_store: tuple[Path, datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A span's jobs and facts are read a few thousand pipelines at a time (the peak memory of the rows): small
    chunks, and pipelines created at the same instant across a chunk boundary, give the dataset of one read."""
    import cidash.dataset as dataset

    db, end = bench_store
    con = sqlite3.connect(db)
    with con:  # three pipelines created at one instant, where a chunk of 7 ends
        ids = [r[0] for r in con.execute("SELECT id FROM pipelines ORDER BY created_at DESC LIMIT 12")]
        at = con.execute("SELECT created_at FROM pipelines WHERE id = ?", [ids[6]]).fetchone()[0]
        con.execute(f"UPDATE pipelines SET created_at = ? WHERE id IN ({ids[5]}, {ids[6]}, {ids[7]})", [at])
    con.close()
    spans = [(end - timedelta(days=10), None)]
    with Store.open(db, readonly=True) as store:
        project = store.projects()[0]
        one = load_dataset(store, project, spans=spans, as_of=end)
        monkeypatch.setattr(dataset, "_PIPELINES_PER_READ", 7)
        chunked = load_dataset(store, project, spans=spans, as_of=end)
        whole = load_dataset(store, project, as_of=end).between(end - timedelta(days=10), None)
    assert chunked.pipelines == one.pipelines == whole.pipelines
    assert chunked.jobs == one.jobs == whole.jobs
    assert dict(chunked.facts) == dict(one.facts)
    assert len(chunked.pipelines) > 7 * 3


@pytest.mark.parametrize(
    ("base", "cand", "only_ref"),
    [
        ("2026-08-29..2026-09-27,ref:main", "2026-09-28..2026-10-27,ref:main", "main"),
        ("ref:main,2026-08-29..2026-09-27", "2026-09-28..2026-10-27,ref:main", "main"),
        ("2026-08-29..2026-09-27,ref:main", "2026-09-28..2026-10-27,ref:feature/3", None),
        ("2026-08-29..2026-09-27,ref:main", "2026-09-28..2026-10-27", None),
        ("2026-08-29..2026-09-27", "2026-09-28..2026-10-27", None),
    ],
)
def test_a_comparison_on_one_ref_loads_that_ref_only(
    bench_store: tuple[Path, datetime], base: str, cand: str, only_ref: str | None
) -> None:
    """Two date slices on the same ref load only that ref's pipelines in those dates (the other refs' are all
    they could not select); the comparison is the whole history's, value for value."""
    from cidash.specs import parse_spec

    db, end = bench_store
    specs = (parse_spec(base), parse_spec(cand))
    with Store.open(db, readonly=True) as store:
        narrow = load_snapshot(store, Config(), end, evaluate_now=False, as_of=False, since="window", specs=specs)
        whole = load_snapshot(store, Config(), end, evaluate_now=False, as_of=False)
        assert narrow.ref == only_ref
        assert narrow.spans is not None and whole.spans is None
        refs = {p.ref for p in narrow.dataset.pipelines}
        assert refs == {"main"} if only_ref else len(refs) > 1
        got = narrow.compare(*specs).as_dict()
        assert narrow.__dict__.get("_whole") is None  # answered from what it loaded
        assert got == whole.compare(*specs).as_dict()
        assert got["baseline"]["pipelines"] > 0 and any(m["n_baseline"] for m in got["metrics"])


def test_the_images_chosen_from_the_history_when_the_indexed_ones_never_ran_on_the_ref(
    bench_store: tuple[Path, datetime], tmp_path: Path
) -> None:
    """image_history takes the CI image's names from the index of the images the project's logs named; on a ref
    whose jobs never ran one of them (feature/3 runs other/tools, whose digest changes halfway), with no hint or
    a hint nothing matches, it falls back to the repository most jobs ran, as the dataset does."""
    import shutil

    db, end = bench_store
    copy = tmp_path / "fallback.db"
    shutil.copy(db, copy)
    con = sqlite3.connect(copy)
    with con:
        ids = [
            r[0]
            for r in con.execute(
                "SELECT j.id FROM jobs j JOIN pipelines p ON p.id = j.pipeline_id WHERE p.ref = 'feature/3' "
                "ORDER BY j.started_at, j.id"
            )
        ]
        later = ids[len(ids) // 2 :]
        con.execute(
            f"UPDATE job_facts SET image_name = 'registry.example.com/other/tools:2', "
            f"image_digest = 'sha256:' || printf('%064d', 8) WHERE job_id IN ({','.join('?' * len(later))})",
            later,
        )
    con.close()
    with Store.open(copy, readonly=True) as store:
        project = store.projects()[0]
        for now in (end, end - timedelta(days=100)):
            ds = load_dataset(store, project, as_of=now)
            for ref in ("feature/3", "main"):
                for hint in (f"{project.path}/ci", None, "nothing/matches"):
                    history = image_history(store, project.id, ref, hint, now)
                    assert list(history.changes) == image_digest_changes(ds.on_ref(ref), hint), (ref, hint)
                    used = ci_image_jobs(ds, hint)
                    assert history.last_digest() == (used[-1][1] if used else None)
            if now == end:
                assert image_digest_changes(ds.on_ref("feature/3"), f"{project.path}/ci")  # the fallback's change


def test_the_baseline_read_for_its_start_ups_holds_the_criteria_ref_only(bench_store: tuple[Path, datetime]) -> None:
    """export's window (every ref, with the phases) reads the baseline, which only the start-up criterion judges,
    on the criteria ref only; the last 30 days keep every ref (the export shows them)."""
    db, end = bench_store
    with Store.open(db, readonly=True) as store:
        snap = load_snapshot(store, Config(), end, since="window")
        assert snap.startup_only and snap.ref is None
        (start, stop), *_ = snap.startup_only
        assert start is not None and stop is not None
        baseline = snap.dataset.between(start, stop)
        recent = snap.dataset.between(end - timedelta(days=30), None)
        assert baseline.pipelines and {p.ref for p in baseline.pipelines} == {"main"}
        assert len({p.ref for p in recent.pipelines}) > 1
        assert json.dumps(snap.report.as_dict(), sort_keys=True) == json.dumps(
            load_snapshot(store, Config(), end).report.as_dict(), sort_keys=True
        )


@pytest.mark.parametrize(("as_of", "include_retried"), [(False, False), (True, False), (False, True)])
def test_a_comparison_window_without_the_upload_sections(
    bench_store: tuple[Path, datetime], as_of: bool, include_retried: bool
) -> None:
    """compare's window leaves out the cache-upload sections (no compared metric reads a writer's upload
    window) and the job columns no comparison reads (stage, SHA, runner, URL, ...): the same comparison as the
    whole history's, and the criteria, their evidence and the exports, which would read those, are refused
    rather than answered without them."""
    from cidash.specs import parse_spec

    db, end = bench_store
    base, cand = parse_spec("2026-08-29..2026-09-27,ref:main"), parse_spec("2026-09-28..2026-10-27")
    with Store.open(db, readonly=True) as store:
        project = store.projects()[0]
        kw = {"evaluate_now": False, "as_of": as_of, "include_retried": include_retried}
        lean = build_snapshot(
            store, Config(), project, end, since="window", specs=(base, cand), uploads=False, narrow=True, **kw
        )
        whole = build_snapshot(store, Config(), project, end, **kw)  # type: ignore[arg-type]
        assert lean.spans is not None and not lean.uploads and whole.uploads
        assert not any(s.name.startswith("archive") for f in lean.dataset.facts.values() for s in f.sections)
        assert any(s.name.startswith("archive") for f in whole.dataset.facts.values() for s in f.sections)
        assert lean.compare(base, cand) == whole.compare(base, cand)
        assert {(j.stage, j.sha, j.web_url, j.runner) for j in lean.dataset.jobs} == {("", "", None, None)}
        assert all(j.sha and j.stage for j in whole.dataset.jobs)
        ids = {j.id for j in lean.dataset.jobs}
        assert ids and ids <= {j.id for j in whole.dataset.jobs}
        with pytest.raises(RuntimeError):
            _ = lean.report
        with pytest.raises(RuntimeError):
            lean.evidence("cache_writers")
        with pytest.raises(RuntimeError):
            lean.export_input(store, since=None)
        assert lean.widened().uploads


@pytest.mark.parametrize(("days_back", "include_retried"), [(0, False), (45, True), (100, False)])
def test_a_narrow_window_gives_the_same_report_and_exports(
    bench_store: tuple[Path, datetime], days_back: int, include_retried: bool
) -> None:
    """export's window (JSON, CSV, Markdown) reads only the job columns a metric reads (narrow): the same
    criteria, the same evidence and the same documents as the window with every column; the dashboard's widened
    snapshot reads the whole history narrow too, and its tabs and evidence are the full history's."""
    from cidash.export import export_document, to_csv, to_markdown

    db, end = bench_store
    now = end - timedelta(days=days_back)
    since = now - timedelta(days=30)
    with Store.open(db, readonly=True) as store:
        project = store.projects()[0]
        kw = {"since": since, "include_retried": include_retried}
        lean = build_snapshot(store, Config(), project, now, narrow=True, **kw)  # type: ignore[arg-type]
        full = build_snapshot(store, Config(), project, now, **kw)  # type: ignore[arg-type]
        assert lean.narrow and not full.narrow
        assert {(j.stage, j.sha, j.runner) for j in lean.dataset.jobs} == {("", "", None)}
        assert all(j.sha and j.stage for j in full.dataset.jobs)
        assert [j.id for j in lean.dataset.jobs] == [j.id for j in full.dataset.jobs]
        assert lean.report == full.report
        a, b = lean.export_input(store, since=since), full.export_input(store, since=since)
        assert export_document(a) == export_document(b)
        assert to_csv(a) == to_csv(b) and to_markdown(a) == to_markdown(b)
        for cid in CRITERIA_IDS:
            assert lean.evidence(cid) == full.evidence(cid)
        wide = lean.widened()
        every = build_snapshot(store, Config(), project, now, include_retried=include_retried)  # every column
        assert wide.narrow and every.spans is None and not every.narrow
        assert [j.id for j in wide.dataset.jobs] == [j.id for j in every.dataset.jobs]
        assert startup_view(wide) == startup_view(every)
        assert caches_view(wide, store) == caches_view(every, store)
        assert images_view(store, wide) == images_view(store, every)
        for cid in CRITERIA_IDS:
            assert wide.evidence(cid) == every.evidence(cid)


@pytest.mark.parametrize(
    "criteria",
    [
        CriteriaSettings(),  # export --since all: the whole history
        CriteriaSettings(baseline="2026-08-29..2026-09-27", candidate="2026-09-28.."),  # configured SPECs
        CriteriaSettings(migration="sha256:" + "a" * 12),  # a migration named by digest
    ],
)
def test_the_whole_history_read_narrow_gives_what_every_column_gives(
    bench_store: tuple[Path, datetime], criteria: CriteriaSettings
) -> None:
    """check, compare and export read only the job columns a metric reads in the whole history too (configured
    SPECs, a digest migration, export --since all load it whole): the same report, evidence, comparison and
    documents as with every column."""
    from cidash.export import export_document, to_csv, to_markdown
    from cidash.specs import parse_spec

    db, end = bench_store
    config = Config(criteria=criteria)
    with Store.open(db, readonly=True) as store:
        project = store.projects()[0]
        since = None if criteria == CriteriaSettings() else "window"
        lean = build_snapshot(store, config, project, end, since=since, narrow=True)  # type: ignore[arg-type]
        full = build_snapshot(store, config, project, end, since=since)  # type: ignore[arg-type]
        assert lean.spans is None and full.spans is None  # the whole history, both
        assert lean.narrow and not full.narrow
        assert {(j.stage, j.sha, j.runner) for j in lean.dataset.jobs} == {("", "", None)}
        assert [j.id for j in lean.dataset.jobs] == [j.id for j in full.dataset.jobs]
        assert lean.report == full.report
        for cid in CRITERIA_IDS:
            assert lean.evidence(cid) == full.evidence(cid)
        a, b = lean.export_input(store, since=None), full.export_input(store, since=None)
        assert export_document(a) == export_document(b)
        assert to_csv(a) == to_csv(b) and to_markdown(a) == to_markdown(b)
        specs = parse_spec("2026-08-29..2026-09-27,ref:main"), parse_spec("2026-09-28..,ref:main")
        assert lean.compare(*specs, resamples=100) == full.compare(*specs, resamples=100)
