"""The dashboard's fast first screen (issue #16, "Start-up speed at scale"): the Health window holds only the
criteria ref's pipelines of the periods judged, without the start-up phases, and its Health table, report and
later tabs are the ones the whole-history load gives, on a store synced from the simulated GitLab."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from cidash.config import load_config
from cidash.criteria import CRITERIA_IDS, criterion_daily_series
from cidash.export import render_export
from cidash.models import Job
from cidash.snapshot import Snapshot, build_snapshot, load_snapshot
from cidash.specs import parse_spec
from cidash.store import Store
from cidash.tui.data import (
    PENDING,
    caches_view,
    first_health,
    health_rows,
    images_view,
    load_dashboard,
    startup_view,
)
from metrics_factories import SyncedWorld, every_section_snapshot, synced_world

__all__ = ["synced_world"]  # the session fixture


def _narrow_part(job: Job) -> tuple[object, ...]:
    """What a narrow load reads of a job (cidash.dataset._NARROW_COLUMNS)."""
    return (
        job.id,
        job.pipeline_id,
        job.name,
        job.status,
        job.ref,
        job.created_at,
        job.started_at,
        job.finished_at,
        job.queued_duration,
        job.failure_reason,
        job.retried,
    )


def _report(snap: Snapshot) -> str:
    return json.dumps([snap.report.as_dict(), snap.report.period, snap.report.warnings], sort_keys=True)


@pytest.mark.parametrize("days_back", [0, 3, 7])  # after the migration (day 6 of 12), and before it
def test_the_health_window_gives_the_whole_history_health(synced_world: SyncedWorld, days_back: int) -> None:
    config = load_config(synced_world.config_file)
    now = synced_world.now - timedelta(days=days_back)
    with Store.open(synced_world.db, readonly=True) as store:
        project = store.projects()[0]
        fast, health = load_dashboard(store, config, project, now)
        whole = every_section_snapshot(store, config, project, now)
        # the fast path really is the narrow one: the criteria ref only, no start-up phase sections
        assert fast.spans is not None and fast.ref == "main" and not fast.phases and fast.narrow
        refs = {p.ref for p in whole.dataset.pipelines}
        assert len(refs) > 1 and {p.ref for p in fast.dataset.pipelines} == {"main"}
        assert all(
            s.name in ("archive_cache", "archive_cache_on_failure")
            for f in fast.dataset.facts.values()
            for s in f.sections
        )
        assert _report(fast) == _report(whole)
        assert health == health_rows(whole)
        for cid in CRITERIA_IDS:  # the series sliced once for all criteria = one criterion's own series
            assert fast.evidence(cid) == whole.evidence(cid)
            assert fast.daily_series(cid) == criterion_daily_series(whole.dataset, config, cid, days=30, now=now)


@pytest.mark.parametrize("days_back", [0, 3, 7])
def test_the_first_health_is_checks_report_and_the_complete_tables_verdicts(
    synced_world: SyncedWorld, days_back: int
) -> None:
    """A start with no cached Health shows first_health (check's own load and evaluation) before the baselines and
    series: every cell it shows is the complete table's, and check's report formatted."""
    config = load_config(synced_world.config_file)
    now = synced_world.now - timedelta(days=days_back)
    with Store.open(synced_world.db, readonly=True) as store:
        project = store.projects()[0]
        first = first_health(store, config, project, now)
        _, health = load_dashboard(store, config, project, now)
        check = load_snapshot(store, config, now, since="window", phases=False, ref_only=True)
    assert not first.complete and health.complete
    assert len(first.rows) == len(CRITERIA_IDS) and all(r.value and r.status for r in first.rows)
    pending = {"baseline": PENDING, "change": PENDING, "series": ()}
    assert first == replace(health, rows=tuple(replace(r, **pending) for r in health.rows), complete=False)
    assert first == health_rows(check, complete=False)  # check's snapshot, formatted
    assert [(r.id, r.status, r.n, r.evidence) for r in first.rows] == [
        (r.id, r.status, r.n, r.evidence) for r in check.report.criteria
    ]
    if days_back == 0:  # after the migration: baselines left to compute
        assert any(r.baseline not in (PENDING, "—") for r in health.rows)


@pytest.mark.parametrize("days_back", [0, 3, 7])  # after the migration (day 6 of 12), and before it
def test_the_other_tabs_read_the_whole_history_after_the_health(synced_world: SyncedWorld, days_back: int) -> None:
    """widened() brings back the other refs and the phases (the Start-up tab shows them) with the same verdicts,
    held as a window holds them (each job's phases summed, only the upload sections kept: a third of the memory
    of every section); the comparison and the export of the narrow snapshot load what they show."""
    config = load_config(synced_world.config_file)
    now = synced_world.now - timedelta(days=days_back)
    with Store.open(synced_world.db, readonly=True) as store:
        project = store.projects()[0]
        fast, _ = load_dashboard(store, config, project, now)
        whole = every_section_snapshot(store, config, project, now)
        wide = fast.widened()
        assert wide.ref is None and wide.phases and wide.spans is None and wide.report is fast.report
        assert wide.dataset.pipelines == whole.dataset.pipelines
        # its jobs read narrow (the columns no view, metric or evidence table reads left out): the same jobs
        assert wide.narrow and [_narrow_part(j) for j in wide.dataset.jobs] == [
            _narrow_part(j) for j in whole.dataset.jobs
        ]
        assert {(j.stage, j.sha, j.runner) for j in wide.dataset.jobs} == {("", "", None)}
        assert all(j.sha and j.stage for j in whole.dataset.jobs)
        assert wide.dataset.phases_by_job is not None and whole.dataset.phases_by_job is None
        kept = {s.name for f in wide.dataset.facts.values() for s in f.sections}
        assert kept <= {"archive_cache", "archive_cache_on_failure"}
        assert len({s.name for f in whole.dataset.facts.values() for s in f.sections}) > len(kept) + 3
        got, want = wide.periods, whole.periods
        assert (got.description, got.split_at, got.ref) == (want.description, want.split_at, want.ref)
        assert got.candidate.pipelines == want.candidate.pipelines
        assert (got.baseline and got.baseline.pipelines) == (want.baseline and want.baseline.pipelines)
        assert startup_view(wide) == startup_view(whole)
        if days_back == 0:
            assert any(row[1] != "—" for row in startup_view(wide).phase_rows[:-1])  # the phases are back
        assert caches_view(wide, store) == caches_view(whole, store)
        assert images_view(store, wide) == images_view(store, whole)
        for cid in CRITERIA_IDS:  # the dashboard's evidence screens read the widened snapshot (narrow rows)
            assert wide.evidence(cid) == whole.evidence(cid)
        if days_back:
            return
        mig = whole.periods.split_at
        assert mig is not None
        base = parse_spec(f"..{(mig - timedelta(days=1)).date()}")
        cand = parse_spec(f"{mig.date()}..")
        assert fast.compare(base, cand, resamples=50) == whole.compare(base, cand, resamples=50)
        with pytest.raises(RuntimeError):  # no phases: an export would show them empty (as for check's window)
            fast.export_input(store, since=None)
        narrow = build_snapshot(store, config, project, now, since="health", ref_only=True)
        assert narrow.ref == "main" and narrow.phases
        for since in (None, now - timedelta(days=2)):  # the other refs are loaded for the export
            got, want = narrow.export_input(store, since=since), whole.export_input(store, since=since)
            assert got.ds.pipelines == want.ds.pipelines and got.ds.jobs == want.ds.jobs
            # the facts are held as a window holds them (phases summed), so compare what the exports show
            assert [j.id in got.ds.facts for j in got.ds.jobs] == [j.id in want.ds.facts for j in want.ds.jobs]
            for fmt in ("json", "csv", "markdown", "openmetrics"):
                assert render_export(got, fmt) == render_export(want, fmt)
            assert got.report == want.report and len({p.ref for p in got.ds.pipelines}) > 1
