"""The store's work on an idle sync refresh, at 1k / 10k / 50k pipelines (issue 15: "Sync scales linearly").

An idle refresh (nothing changed on GitLab) asks the store the same questions every time: which pipelines still
need their jobs listed, which are active, the oldest job to re-list, which logs are due, the newest SHA per ref,
and it re-flags retried jobs of the pipelines it watched. This times those calls on stores built like
``bench/tui.py``'s (8 jobs per pipeline, parsed logs), next to the SQL the store ran before (the correlated
per-ref subquery and the unbounded retried update), in one run.

    .venv/bin/python bench/store_scale.py [--pipelines 1000,10000,50000]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cidash.store import Store
from cidash.sync import ACTIVE_JOB_STATUSES, ACTIVE_PIPELINE_STATUSES

sys.path.insert(0, str(Path(__file__).parent))
from tui import build_store

OLD_LATEST_SHA = (
    "SELECT ref, sha FROM pipelines p WHERE project_id = ? AND id = (SELECT max(id) FROM pipelines p2 "
    "WHERE p2.project_id = p.project_id AND p2.ref = p.ref)"
)
OLD_RETRIED = (
    "UPDATE jobs SET retried = CASE WHEN EXISTS (SELECT 1 FROM jobs j2 WHERE j2.pipeline_id = jobs.pipeline_id "
    "AND j2.name = jobs.name AND j2.id > jobs.id) THEN 1 ELSE retried END WHERE pipeline_id IN ({marks})"
)


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def idle_refresh(store: Store, pid: int, watched: list[int]) -> None:
    store.pipelines_needing_jobs(pid)
    store.pipelines(pid, status=ACTIVE_PIPELINE_STATUSES)
    store.min_job_id(pid, statuses=ACTIVE_JOB_STATUSES)
    store.jobs_needing_logs(pid)
    store.latest_sha_per_ref(pid)
    store.recompute_retried(watched)


def measure(db: Path, n: int, old_max: int) -> str:
    build_store(db, n)
    pid = 42
    with Store.open(db) as store:
        # What an earlier sync leaves: every pipeline's jobs listed for its last change.
        store.mark_pipeline_jobs_synced(store.pipelines(pid))
        watched = [p.id for p in store.pipelines(pid, limit=20)]
        refresh = timed(lambda: idle_refresh(store, pid, watched))
        new_sha = timed(lambda: store.latest_sha_per_ref(pid))
        new_retried = timed(lambda: store.recompute_retried(watched))
    con = sqlite3.connect(db)
    try:
        # The old per-ref subquery is quadratic: above --old-max it would take minutes.
        old_sha = timed(lambda: con.execute(OLD_LATEST_SHA, (pid,)).fetchall(), repeat=1) if n <= old_max else None
        marks = ",".join("?" * len(watched))
        old_retried = timed(lambda: con.execute(OLD_RETRIED.format(marks=marks), watched), repeat=1)
        con.rollback()
    finally:
        con.close()
    return (
        f"{n:>9} {refresh * 1000:>18.1f} ms {_ms(old_sha):>19} {new_sha * 1000:>5.1f} ms "
        f"{old_retried * 1000:>9.1f} ms {new_retried * 1000:>5.1f} ms"
    )


def _ms(seconds: float | None) -> str:
    return "(skipped)" if seconds is None else f"{seconds * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", default="1000,10000,50000", help="comma-separated store sizes")
    parser.add_argument("--old-max", type=int, default=10_000, help="time the old per-ref query up to this size")
    args = parser.parse_args()
    print(
        f"{'pipelines':>9} {'idle refresh (store)':>21} {'newest SHA/ref old':>19} {'new':>8} "
        f"{'retried old':>12} {'new':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.pipelines.split(",")):
            print(measure(Path(tmp) / f"store-{n}.db", n, args.old_max), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
