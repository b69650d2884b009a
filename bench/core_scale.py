"""Core at scale: ``cidash check``, ``compare`` and ``export`` on 10,000 and 50,000-pipeline stores (8 jobs each).

    .venv/bin/python bench/core_scale.py                              # 10k and 50k, this worktree only
    .venv/bin/python bench/core_scale.py --before /tmp/core-before/src   # side by side with another checkout's src/
    .venv/bin/python bench/core_scale.py --sizes 2000 --runs 1        # a quick run

Each command runs in a child process (``python -m cidash``, the same interpreter, ``PYTHONPATH`` set to the
``src/`` measured); the parent reports its wall time, CPU time (user + system) and peak RSS (``ru_maxrss`` of that
child, from ``os.wait4``), the medians of ``--runs``, against issue #15's targets (<= 3 s, <= 300 MB). With
``--before`` both sides alternate in one run (the machine is shared) and the outputs are compared byte for byte:
the verdicts must not move.

The stores are :func:`bench.tui.build_store`'s (120 days, a CI-image migration at day 60, parsed log facts for
every job), cached in ``bench/.corpus/tui-<pipelines>.db``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SRC = ROOT.parent / "src"
sys.path.insert(0, str(ROOT))

from tui import CORPUS, NOW, store_for, store_for_side  # noqa: E402

NOW_TEXT = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
#: Before and after the bench store's migration (day 60 of 120, 2026-09-28), on main.
BASELINE = "2026-08-29..2026-09-27,ref:main"
CANDIDATE = "2026-09-28..2026-10-27,ref:main"
TARGET_SECONDS = 3.0
TARGET_MB = 300.0


def commands(db: Path, out: Path) -> dict[str, list[str]]:
    common = ["--db", str(db)]
    return {
        "check": ["check", "--json", "--now", NOW_TEXT, *common],
        "compare": ["compare", "--json", "--baseline", BASELINE, "--candidate", CANDIDATE, *common],
        "export": ["export", "--format", "json", "--now", NOW_TEXT, "--output", str(out), *common],
    }


def run(src: Path, argv: list[str], out: Path, *, bytecode: bool = True) -> tuple[float, float, float, bytes]:
    """(wall s, CPU s, peak RSS MB, output) of ``python -m cidash argv`` with ``src`` first on the path.

    ``bytecode``: the child runs from compiled bytecode, as installed Python code runs (in
    ``bench/.corpus/pycache``, never next to the sources); false (``--compile-each-run``): every import compiles
    its source, as with PYTHONDONTWRITEBYTECODE set (which added ~0.2-0.3 s of CPU to every command of the runs
    before 2026-12-03 09:00, both sides)."""
    env = dict(os.environ, PYTHONPATH=str(src))
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(CORPUS / "pycache")
    if out.exists():
        out.unlink()
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cidash", *argv], env=env, stdout=stdout, stderr=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{src}: cidash {' '.join(argv)} exited {proc.returncode}")
        stdout.seek(0)
        text = stdout.read()
    if out.exists():
        text = out.read_bytes()
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another checkout's src/ to run side by side")
    parser.add_argument("--only", nargs="+", choices=("check", "compare", "export"))
    parser.add_argument(
        "--compile-each-run", action="store_true", help="no bytecode cache: every child compiles its imports"
    )
    args = parser.parse_args()
    bytecode = not args.compile_each_run
    sides = [("after", SRC)] + ([("before", args.before.resolve())] if args.before else [])
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "export.json"
        for size in args.sizes:
            db = store_for(size)
            dbs = {side: store_for_side(db, src) for side, src in sides}  # older code: at its schema
            if bytecode:  # one untimed run per side writes its bytecode
                for side, src in sides:
                    run(src, commands(dbs[side], out)["check"], out)
            for name in commands(db, out):
                if args.only and name not in args.only:
                    continue
                got: dict[str, list[tuple[float, float, float]]] = {side: [] for side, _ in sides}
                outputs: dict[str, bytes] = {}
                for _ in range(args.runs):
                    for side, src in sides:
                        wall, cpu, rss, text = run(src, commands(dbs[side], out)[name], out, bytecode=bytecode)
                        got[side].append((wall, cpu, rss))
                        outputs[side] = text
                for side, _ in sides:
                    w = statistics.median(x[0] for x in got[side])
                    c = statistics.median(x[1] for x in got[side])
                    m = statistics.median(x[2] for x in got[side])
                    ok = "ok" if w <= TARGET_SECONDS and m <= TARGET_MB else "over target"
                    print(
                        f"{size:>6} pipelines  {name:8s} {side:6s}  {w:6.2f} s wall  {c:6.2f} s CPU  {m:7.0f} MB peak"
                        f"  ({ok}: <= {TARGET_SECONDS:g} s, <= {TARGET_MB:g} MB)",
                        flush=True,
                    )
                if len(outputs) == 2:
                    same = outputs["after"] == outputs["before"]
                    print(f"{'':>6}            {name:8s} outputs {'identical' if same else 'DIFFER'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
