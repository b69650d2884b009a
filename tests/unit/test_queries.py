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


def test_image_history_finds_the_digest_changes_the_dataset_finds(tmp_path: Path) -> None:
    """queries.image_history (one ordered pass over the job_facts_image_order index, schema version 8) gives
    image_digest_changes of the dataset as of any time: digests going back and forth, one image under two raw
    names (``registry@sha256:x`` and ``sha256:x``), jobs that finished after ``now`` (not in the history yet), jobs
    on another ref, a job that ran again under the same id, and jobs stored before their pipeline."""
    from dataclasses import replace

    from cidash.dataset import load_dataset
    from cidash.metrics import image_digest_changes
    from cidash.models import ImageRef
    from cidash.queries import image_history
    from metrics_factories import IMAGE, facts

    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    raw = {"A": f"{IMAGE}@{a}", "a": a, "B": f"{IMAGE}@{b}"}
    plan = "AAaBBABaaBB"  # per pipeline, hourly: the digest (by raw form) its jobs ran
    with Store.open(tmp_path / "cidash.db") as store:
        store.upsert_project(PROJECT)
        pipelines = [pipeline(200 + i, T0 + timedelta(hours=i), ref="main" if i % 5 else "feature") for i in range(11)]
        jobs, logs = [], []
        for i, (p, code) in enumerate(zip(pipelines, plan, strict=True)):
            for k, start in enumerate((30.0, 10.0)):  # the second job starts first
                j = job(1000 + 10 * i + k, p, f"job{k}", start=start, duration=600.0 if i == 7 else 60.0)
                jobs.append(j)
                image = ImageRef(f"{IMAGE}:{'debian' if code == 'A' else 'alpine'}", None, raw[code], None)
                logs.append((j.id, replace(facts(12.0), image=image), None))
        store.upsert_jobs(jobs[:6])
        store.save_many_job_facts(logs, project_id=PROJECT.id)
        store.upsert_jobs(jobs[6:])
        store.upsert_pipelines(pipelines)
        store.upsert_jobs([replace(jobs[-1], started_at=jobs[-1].started_at - timedelta(minutes=50))])  # ran again
        ends = [T0 + timedelta(hours=h, minutes=m) for h in range(12) for m in (0, 5, 20, 40)]
        ends += [j.finished_at for j in jobs if j.finished_at is not None]  # a job ends at now: in the history
        for now in [*ends, None]:
            ds = load_dataset(store, PROJECT, as_of=now)
            for ref in ("main", "feature"):
                history = image_history(store, PROJECT.id, ref, "platform/app/ci", now)
                assert list(history.changes) == image_digest_changes(ds.on_ref(ref), "platform/app/ci"), (now, ref)
        assert len(image_history(store, PROJECT.id, "main", "platform/app/ci", None).changes) == 3  # a->B->a->B
