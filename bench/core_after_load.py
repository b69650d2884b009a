"""The Python work of ``check`` and ``export`` after the load, in-process: the criteria report and the export
document of one 50,000-pipeline window, each measured on a fresh copy of the loaded dataset (every memo cold).

    .venv/bin/python bench/core_after_load.py                                  # this worktree, 3 processes
    .venv/bin/python bench/core_after_load.py --before /tmp/core-before/src    # side by side, alternating

``bench/core_scale.py`` times whole commands, whose CPU moves by a third with the machine's load; this times only
what the criteria (:mod:`cidash.criteria`) and the document (:mod:`cidash.export`) compute, so a change there of
a tenth of a second shows. Each child loads the window as the command does (``export``: ``--since`` the criteria
window, narrow rows; ``check``: the criteria ref's window without the start-up phases), then ``--repeat`` times:
``Snapshot.report`` (the periods included) and, for ``export``, ``export_input`` + ``export_document``; the min of
the repeats is printed, per process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SRC = ROOT.parent / "src"
sys.path.insert(0, str(ROOT))

from tui import NOW, store_for, store_for_side  # noqa: E402

CHILD = """
import gc, sys, time
from dataclasses import replace
from cidash.commands.export import parse_since
from cidash.config import Config
from cidash.dataset import resolve_project
from cidash.export import export_document
from cidash.snapshot import build_snapshot
from cidash.store import Store
from datetime import datetime

db, mode, repeat, now = sys.argv[1], sys.argv[2], int(sys.argv[3]), datetime.fromisoformat(sys.argv[4])
config = Config()
since = parse_since(None, now, config.criteria.window_days)
with Store.open(db, readonly=True) as store:
    project = resolve_project(store, None, config.gitlab.projects)
    if mode == "export":
        snap = build_snapshot(store, config, project, now, since=since, narrow=True, evaluate_now=False)
    else:
        snap = build_snapshot(
            store, config, project, now, since="window", phases=False, ref_only=True, narrow=True, evaluate_now=False
        )
    gc.collect()
    gc.freeze()  # (what the commands' gc_paused ends with: the load's objects out of the collector's way)
    gc.disable()
    report, document = [], []
    for _ in range(repeat):
        fresh = replace(snap.dataset)  # no memo: computed anew
        for name in ("_as_of", "_records_at"):
            object.__setattr__(fresh, name, getattr(snap.dataset, name))
        again = replace(snap, dataset=fresh)
        t0 = time.process_time()
        again.report
        t1 = time.process_time()
        if mode == "export":
            export_document(again.export_input(store, since=since))
        report.append(t1 - t0)
        document.append(time.process_time() - t1)
print(f"{min(report) * 1000:.0f} {min(document) * 1000:.0f}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--processes", type=int, default=3, help="children per side (alternating)")
    parser.add_argument("--repeat", type=int, default=5, help="reports and documents per child (min printed)")
    parser.add_argument("--before", type=Path, help="another checkout's src/ to run side by side")
    args = parser.parse_args()
    sides = [("before", args.before.resolve())] if args.before else []
    sides.append(("after", SRC))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    db = store_for(args.size)
    for mode in ("export", "check"):
        for _ in range(args.processes):
            for side, src in sides:
                out = subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        CHILD,
                        str(store_for_side(db, src)),
                        mode,
                        str(args.repeat),
                        NOW.isoformat(),
                    ],
                    env=dict(os.environ, PYTHONPATH=str(src)),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                report, document = out.stdout.split()
                extra = f"  document {document:>4} ms" if mode == "export" else ""
                print(
                    f"{args.size:>6} pipelines  {mode:6s} {side:6s}  criteria report {report:>4} ms{extra}", flush=True
                )
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
