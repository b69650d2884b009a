"""What ``cidash serve`` asks the store after every sync for its /metrics running totals (issue 17): which finished
pipelines, finished jobs and parsed logs are not counted yet. Before schema version 6 that read every finished
row of the project and looked each one up in ``metric_counted``; now it reads the ``*_uncounted`` partial indexes.

Stores built like ``bench/tui.py``'s (8 jobs per pipeline, parsed logs), everything counted but the newest three
pipelines, then the old statements and :meth:`Store.uncounted_ids` timed alternately in one run (best of 5, wall
and CPU time).

    .venv/bin/python bench/uncounted.py [--pipelines 1000,10000,50000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cidash.store import Store

sys.path.insert(0, str(Path(__file__).parent))
from tui import build_store

PID = 42
KINDS = ("pipeline", "job", "log")
#: The statements uncounted_ids ran before schema version 6.
OLD = {
    kind: f"SELECT {column} FROM {table} t WHERE project_id = ?{extra} AND NOT EXISTS "
    f"(SELECT 1 FROM metric_counted c WHERE c.kind = ? AND c.item_id = t.{column}) ORDER BY 1"
    for kind, (table, column, extra) in {
        "pipeline": ("pipelines", "id", " AND finished_at IS NOT NULL"),
        "job": ("jobs", "id", " AND finished_at IS NOT NULL"),
        "log": ("job_facts", "job_id", ""),
    }.items()
}


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def measure(db: Path, n: int) -> str:
    build_store(db, n)
    with Store.open(db) as store:
        newest = sorted(p.id for p in store.pipelines(PID))[-3:]
        fresh = {"pipeline": set(newest), "job": set(), "log": set()}
        fresh["job"] = fresh["log"] = {j.id for j in store.jobs(PID, pipeline_ids=newest)}
        items = [(k, i) for k in KINDS for i in store.uncounted_ids(PID, k) if i not in fresh[k]]
        store.add_metric_totals(PID, {}, items)
        old_t: list[tuple[float, float]] = []
        new_t: list[tuple[float, float]] = []
        for _ in range(5):  # alternating, so both sides see the same machine load
            old_t.append(timed(lambda: [store.read(OLD[k], (PID, k)) for k in KINDS]))
            new_t.append(timed(lambda: [store.uncounted_ids(PID, k) for k in KINDS]))
        assert [store.read(OLD[k], (PID, k)) for k in KINDS] == [
            [(i,) for i in store.uncounted_ids(PID, k)] for k in KINDS
        ]
        found = sum(len(store.uncounted_ids(PID, k)) for k in KINDS)
    o, w = min(old_t), min(new_t)
    return (
        f"| {n:,} | {len(items) + found:,} | {found} | {o[0] * 1000:.1f} ms ({o[1] * 1000:.1f} CPU) | "
        f"{w[0] * 1000:.2f} ms ({w[1] * 1000:.2f} CPU) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", default="1000,10000,50000")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| pipelines | items | not counted | before (wall, CPU) | after (wall, CPU) |")
    print("|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.pipelines.split(",")):
            print(measure(Path(tmp) / f"s{n}.db", n), flush=True)


if __name__ == "__main__":
    main()
