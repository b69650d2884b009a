"""cidash.queries: the views' reads over a Store (paging, filters, a pipeline's jobs)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cidash.queries import PipelineFilter, count_pipelines, pipeline_jobs, query_pipelines
from cidash.store import Store
from metrics_factories import PROJECT, T0, job, pipeline


def _store(tmp_path: Path) -> Store:
    store = Store.open(tmp_path / "cidash.db")
    store.upsert_project(PROJECT)
    refs = ["main", "feature_x", "featureAx", "100%done", "1000done"]
    store.upsert_pipelines(
        pipeline(
            100 + i, T0 + timedelta(hours=i), ref=refs[i % len(refs)], status="failed" if i % 4 == 0 else "success"
        )
        for i in range(25)
    )
    return store


def test_pages_newest_first_and_counts(tmp_path: Path) -> None:
    with _store(tmp_path) as store:
        everything = PipelineFilter()
        assert count_pipelines(store, PROJECT.id, everything) == 25
        first = query_pipelines(store, PROJECT.id, everything, limit=10)
        second = query_pipelines(store, PROJECT.id, everything, offset=10, limit=10)
        ids = [r.pipeline.id for r in first + second]
        assert ids == list(range(124, 104, -1))
        failed = PipelineFilter.parse("status:failed")
        assert (
            count_pipelines(store, PROJECT.id, failed)
            == len(query_pipelines(store, PROJECT.id, failed, limit=100))
            == 7
        )


def test_filter_values_match_literally(tmp_path: Path) -> None:
    """``_`` and ``%`` in a filter are the characters themselves, not LIKE wildcards (the escapes were sent without
    an ESCAPE clause, so ``ref:feature_x`` found nothing)."""
    with _store(tmp_path) as store:
        refs = {r.pipeline.ref for r in query_pipelines(store, PROJECT.id, PipelineFilter.parse("ref:feature_x"))}
        assert refs == {"feature_x"}
        refs = {r.pipeline.ref for r in query_pipelines(store, PROJECT.id, PipelineFilter.parse("100%"))}
        assert refs == {"100%done"}
        assert count_pipelines(store, PROJECT.id, PipelineFilter.parse("#103")) == 1


def test_reads_use_the_store_connection(tmp_path: Path) -> None:
    """No second connection: every statement goes through the Store (its trace sees them)."""
    with _store(tmp_path) as store:
        seen: list[str] = []
        store.trace_statements(seen.append)
        p = store.pipelines(PROJECT.id)[0]
        store.upsert_jobs([job(9001, p, "test")])
        seen.clear()
        query_pipelines(store, PROJECT.id, PipelineFilter.parse("ref:main"))
        rows = pipeline_jobs(store, p.id)
        store.trace_statements(None)
        assert any("FROM pipelines" in s for s in seen) and any("FROM jobs" in s for s in seen)
        assert [r.job.name for r in rows] == ["test"]


def test_the_dashboard_pages_beside_the_main_store(tmp_path: Path) -> None:
    """The views' paging reads through a read-only companion Store (never waiting on the main store's lock)."""
    from cidash.tui.data import query_pipelines as view_pipelines
    from cidash.tui.data import reader

    with _store(tmp_path) as store:
        companion = reader(store)
        assert companion is not store and companion.readonly and reader(store) is companion
        assert [r.pipeline.id for r in view_pipelines(store, PROJECT.id, PipelineFilter())] == [
            r.pipeline.id for r in query_pipelines(store, PROJECT.id, PipelineFilter())
        ]
