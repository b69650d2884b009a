"""The same ``cidash check`` on SQLite and on PostgreSQL, side by side (issue 17, "Measured").

Builds one store per backend with ``bench/tui.py``'s generator (one project, 8 jobs per pipeline, parsed logs,
same seed: the same rows), then times, per backend: writing the store, and ``cidash check --format json`` run
in-process (best of ``--repeat``). It also checks that both backends print the same report. PostgreSQL is a
throw-away server started like the test suite's (``tests/pgserver.py``: Debian's ``postgresql`` package,
127.0.0.1, ``fsync=off``), so the numbers compare the query engines and the driver, not durable commits.

    .venv/bin/python bench/store_backends.py [--pipelines 1000,5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

from cidash.cli import main as cidash_main

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from pgserver import new_schema_name, running_server  # noqa: E402
from tui import NOW, build_store  # noqa: E402


def run_check(target: str) -> tuple[float, str]:
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = cidash_main(["check", "--db", target, "--now", NOW.isoformat(), "--format", "json"])
    elapsed = time.perf_counter() - start
    if code not in (0, 1):
        raise SystemExit(f"cidash check on {target.split('?', maxsplit=1)[0]} exited {code}")
    text = "\n".join(line for line in out.getvalue().splitlines() if '"generated_at"' not in line)
    return elapsed, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", default="1000,5000", help="comma-separated store sizes")
    parser.add_argument("--repeat", type=int, default=3, help="check runs per store (the best is shown)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.pipelines.split(",") if s.strip()]
    print(f"{'pipelines':>9}  {'backend':<10} {'build':>9} {'check (best)':>13} {'check (median)':>15}  same report")
    with tempfile.TemporaryDirectory(prefix="cidash-bench-") as tmp, running_server() as server:
        for n in sizes:
            reports: dict[str, str] = {}
            for backend in ("sqlite", "postgresql"):
                target = str(Path(tmp) / f"s{n}.db") if backend == "sqlite" else server.schema_url(new_schema_name())
                start = time.perf_counter()
                build_store(target, n)  # type: ignore[arg-type]  # Store.open takes a path or a URL
                build = time.perf_counter() - start
                times = []
                for _ in range(args.repeat):
                    elapsed, reports[backend] = run_check(target)
                    times.append(elapsed)
                times.sort()
                same = "" if backend == "sqlite" else ("yes" if reports["sqlite"] == reports["postgresql"] else "NO")
                print(
                    f"{n:>9}  {backend:<10} {build:>8.1f}s {times[0] * 1000:>11.0f}ms "
                    f"{times[len(times) // 2] * 1000:>13.0f}ms  {same}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
