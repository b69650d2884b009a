"""Benchmark the job-log parser: throughput against `grep -c section_`, and peak memory on one huge log.

    .venv/bin/python bench/logparse.py                 # 200 MB corpus + a 1 GB single log
    .venv/bin/python bench/logparse.py --size-mb 20 --big-gb 0   # quick run

The corpus is generated deterministically (fixed seed) under bench/.corpus/ (gitignored) and reused while its
parameters match. Files are read once before timing so both tools read from the page cache; each timing is the
best of --repeat runs. grep runs with LC_ALL=C (its fastest mode) on the same files in one process.
Peak memory: a child process parses the big log with parse_stream() and reports VmHWM (peak RSS); another child
only imports cidash.logparse; the delta is what parsing costs.

    .venv/bin/python bench/logparse.py --against main  # also time the parser of a git revision, compare facts

--against REV loads src/cidash/logparse.py as it is at REV (git show), times it in the same alternating runs and
checks that both parsers give the same facts for every file of every corpus (exit 1 if any differ).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from cidash.models import TraceFacts

HERE = Path(__file__).resolve().parent
CORPUS = HERE / ".corpus"
GENERATOR_VERSION = 3
#: Runner generations in the corpus and their share: 10.x (build_script), 13.x (ANSI), 19.x (per-line timestamps),
#: and Windows (CRLF line endings, which defeat the parser's fast \r-to-\r scan).
STYLES = {"old": 0.15, "ansi": 0.35, "timestamped": 0.40, "windows": 0.10}
BLOCK = 64 * 1024

_SCRIPT_LINES = [
    "$ npm ci --prefer-offline",
    "added 1432 packages, and audited 1433 packages in 21s",
    "npm WARN deprecated inflight@1.0.6: This module is not supported, and leaks memory.",
    "gcc -O2 -Wall -Iinclude -c src/{w}.c -o build/{w}.o",
    "tests/test_{w}.py::test_{w}_roundtrip PASSED                                  [ {n}%]",
    "tests/test_{w}.py::test_{w}_edge_cases FAILED                                 [ {n}%]",
    "\x1b[32;1m$ make -j4 all\x1b[0;m",
    "\x1b[0;33mwarning:\x1b[0m unused variable '{w}' [-Wunused-variable]",
    "   Compiling {w} v0.{n}.3",
    "Step {n}/27 : RUN apk add --no-cache {w} git curl",
    " ---> Using cache",
    " ---> 3f2a9c{n}b7e1d",
    "Downloading https://files.pythonhosted.org/packages/{n}/{w}-1.{n}.0-py3-none-any.whl (1.{n} MB)",
    "INFO [{w}] processed {n} records in 0.{n}s",
    "ok   gitlab.example.com/platform/{w}\t0.{n}s\tcoverage: {n}.4% of statements",
    "Uploading artifacts for successful job, 3 files, {n} KiB",
    "{w}: {w} {w} {w} {w} {w} {w} {w} {w} {w} {w} {w} {w} {w} {w} {w} {w} {w} {w} {w} {w}",
    "",
]
_WORDS = ["parser", "cache", "alpine", "runner", "section", "image", "store", "metrics", "criteria", "widget"]


def _script_block(rng: random.Random, style: str, t0: int, block: int = BLOCK, *, markers: bool = True) -> bytes:
    """About ``block`` bytes of script output in one runner generation's style (user sections unless not
    ``markers``)."""
    out: list[str] = []
    size = 0
    usec = 0
    step = 0
    close_in = -1
    while size < block:
        line = rng.choice(_SCRIPT_LINES).format(w=rng.choice(_WORDS), n=rng.randrange(100))
        close_in -= 1
        if close_in == 0:
            line = f"\x1b[0Ksection_end:{t0}:section_script_step_{step}\r\x1b[0K{line}"
        elif markers and close_in < 0 and rng.random() < 0.002:  # a user section inside, closed a bit later
            step += 1
            close_in = rng.randrange(1, 200)
            line = f"\x1b[0Ksection_start:{t0}:section_script_step_{step}[collapsed=true]\r\x1b[0K{line}"
        elif rng.random() < 0.002:
            line = f"Downloading {rng.randrange(100)}%\rDownloading 100%\r{line}"
        if style == "timestamped":
            usec += rng.randrange(1, 5000)
            sec, frac = divmod(usec, 1_000_000)
            stream = "E" if rng.random() < 0.1 else "O"
            line = f"2026-09-30T19:{(sec // 60) % 60:02d}:{sec % 60:02d}.{frac:06d}Z 00{stream} {line}"
        out.append(line)
        size += len(line) + 1
    if close_in > 0:
        out.append(f"\x1b[0Ksection_end:{t0}:section_script_step_{step}\r\x1b[0K")
    text = "\n".join(out) + "\n"
    return (text.replace("\n", "\r\n") if style == "windows" else text).encode()


def _header(style: str, t0: int, key: str) -> bytes:
    ts = style == "timestamped"

    def ln(text: str, sec: int = 0) -> str:
        return f"2026-09-30T19:38:{sec:02d}.213893Z 00O {text}\n" if ts else text + "\n"

    version = {
        "old": "10.8.0 (079aad9e)",
        "ansi": "13.12.0 (7a6612da)",
        "timestamped": "19.1.0 (5eb085ab)",
        "windows": "16.11.1 (535ced5f)",
    }[style]
    script = "build_script" if style == "old" else "step_script"
    parts = [
        ln(f"\x1b[0KRunning with gitlab-runner {version}\x1b[0;m"),
        ln(f"section_start:{t0}:prepare_executor\r\x1b[0K\x1b[0K\x1b[36;1mPreparing the docker executor\x1b[0;m"),
        ln("\x1b[0KUsing Docker executor with image registry.example.com/platform/ci:alpine ...\x1b[0;m"),
        ln("\x1b[0KPulling docker image registry.example.com/platform/ci:alpine ...\x1b[0;m", 1),
        ln(
            "\x1b[0KUsing docker image sha256:9b1f for registry.example.com/platform/ci:alpine with digest "
            "registry.example.com/platform/ci@sha256:77aa ...\x1b[0;m",
            2,
        ),
        ln(f"section_end:{t0 + 3}:prepare_executor\r\x1b[0K", 3),
        ln(f"section_start:{t0 + 3}:get_sources\r\x1b[0K\x1b[0K\x1b[36;1mGetting source from Git\x1b[0;m", 3),
        ln("\x1b[32;1mFetching changes with git depth set to 20...\x1b[0;m", 4),
        ln(f"section_end:{t0 + 5}:get_sources\r\x1b[0K", 5),
        ln(f"section_start:{t0 + 5}:restore_cache\r\x1b[0K\x1b[0K\x1b[36;1mRestoring cache\x1b[0;m", 5),
        ln(f"\x1b[32;1mChecking cache for {key}...\x1b[0;m", 5),
        ln("\x1b[0;33mWARNING: file does not exist                      \x1b[0;m", 6),
        ln("\x1b[31;1mFailed to extract cache\x1b[0;m", 6),
        ln(f"section_end:{t0 + 7}:restore_cache\r\x1b[0K", 7),
        ln(f"section_start:{t0 + 7}:{script}\r\x1b[0K\x1b[0K\x1b[36;1mExecuting the job script\x1b[0;m", 7),
    ]
    text = "".join(parts)
    return (text.replace("\n", "\r\n") if style == "windows" else text).encode()


def _footer(style: str, t1: int, key: str) -> bytes:
    ts = style == "timestamped"

    def ln(text: str) -> str:
        return f"2026-09-30T19:59:59.000001Z 00O {text}\n" if ts else text + "\n"

    script = "build_script" if style == "old" else "step_script"
    parts = [
        ln(f"section_end:{t1}:{script}\r\x1b[0K"),
        ln(f"section_start:{t1}:archive_cache\r\x1b[0K\x1b[0K\x1b[36;1mSaving cache\x1b[0;m"),
        ln(f"\x1b[32;1mCreating cache {key}...\x1b[0;m"),
        ln("node_modules/: found 41234 matching artifact files and directories"),
        ln("\x1b[32;1mCreated cache\x1b[0;m"),
        ln(f"section_end:{t1 + 2}:archive_cache\r\x1b[0K"),
        ln("\x1b[32;1mJob succeeded\x1b[0;m"),
    ]
    text = "".join(parts)
    return (text.replace("\n", "\r\n") if style == "windows" else text).encode()


def _write_log(path: Path, rng: random.Random, blocks: dict[str, list[bytes]], size: int) -> int:
    styles = list(blocks)
    style = rng.choices(styles, weights=[STYLES[s] for s in styles])[0]
    t0 = 1_790_000_000 + rng.randrange(10_000_000)
    key = f"0-{rng.getrandbits(64):016x}-protected"
    written = 0
    with path.open("wb") as fh:
        for part in (_header(style, t0, key),):
            fh.write(part)
            written += len(part)
        while written < size:
            block = rng.choice(blocks[style])
            fh.write(block)
            written += len(block)
        tail = _footer(style, t0 + 60 + rng.randrange(600), key)
        fh.write(tail)
        written += len(tail)
    return written


def _log_bytes(rng: random.Random, style: str, blocks: list[bytes], size: int) -> bytes:
    """One whole job log of about ``size`` bytes in memory (the shapes' logs are small enough)."""
    t0 = 1_790_000_000 + rng.randrange(10_000_000)
    key = f"0-{rng.getrandbits(64):016x}-protected"
    parts = [_header(style, t0, key)]
    written = len(parts[0])
    while written < size:
        parts.append(rng.choice(blocks))
        written += len(parts[-1])
    parts.append(_footer(style, t0 + 60 + rng.randrange(600), key))
    return b"".join(parts)


_MARKER_RE = re.compile(rb"section_(?:start|end):\d+:[A-Za-z0-9_.-]+(?:\[[^\]]*\])?\r\x1b\[0K")

#: Real-shaped corpora besides the mixed one (issue 15): what cidash meets in practice.
SHAPES = {
    "many-small": "2-16 KB logs, every generation (most jobs: per-log overhead dominates)",
    "concatenated": "25 MB files, each many whole job logs one after another",
    "timestamped": "every line with a per-line timestamp (runner 18.7+ default)",
    "no-markers": "no section markers at all (every runner-line marker searched throughout)",
    "cr-stripped": "saved copies whose \\r became newlines",
}


def build_shapes(shape_mb: int) -> dict[str, list[Path]]:
    """Each shape's files (about ``shape_mb`` MB each), regenerated only when missing or of other parameters."""
    root = CORPUS / "shapes"
    manifest = CORPUS / "shapes.json"
    params = {"version": GENERATOR_VERSION, "shape_mb": shape_mb}
    if not _fresh(manifest, params):
        shutil.rmtree(root, ignore_errors=True)
        rng = random.Random(15)
        styles = list(STYLES)
        weights = [STYLES[st] for st in styles]
        small = {st: [_script_block(rng, st, 1_790_000_000, 2048) for _ in range(24)] for st in styles}
        large = {st: [_script_block(rng, st, 1_790_000_000) for _ in range(24)] for st in styles}
        plain = [_script_block(rng, "ansi", 1_790_000_000, markers=False) for _ in range(24)]
        target = shape_mb * 1_000_000

        def lognormal() -> int:
            return min(int(rng.lognormvariate(12.5, 1.0)), 4_000_000)

        makers: dict[str, Callable[[], bytes]] = {
            "many-small": lambda: _log_bytes(
                rng, st := rng.choices(styles, weights)[0], small[st], rng.randrange(2_000, 16_000)
            ),
            "concatenated": lambda: b"".join(
                _log_bytes(rng, st := rng.choices(styles, weights)[0], large[st], lognormal()) for _ in range(64)
            )[:25_000_000],
            "timestamped": lambda: _log_bytes(rng, "timestamped", large["timestamped"], lognormal()),
            "no-markers": lambda: _MARKER_RE.sub(b"", _log_bytes(rng, "ansi", plain, lognormal())),
            "cr-stripped": lambda: _log_bytes(
                rng, st := rng.choices(styles, weights)[0], large[st], lognormal()
            ).replace(b"\r", b"\n"),
        }
        for name, make in makers.items():
            folder = root / name
            folder.mkdir(parents=True)
            total = i = 0
            while total < target:
                data = make()
                (folder / f"log-{i:05d}.log").write_bytes(data)
                total += len(data)
                i += 1
        manifest.write_text(json.dumps(params))
    return {name: sorted((root / name).glob("*.log")) for name in SHAPES}


def _fresh(manifest: Path, params: dict[str, object]) -> bool:
    return manifest.exists() and json.loads(manifest.read_text()) == params


def build_corpus(size_mb: int, big_gb: float) -> tuple[list[Path], Path | None]:
    """The corpus files and the big log, (re)generated only when missing or built with other parameters."""
    CORPUS.mkdir(parents=True, exist_ok=True)
    small_dir, big = CORPUS / "logs", CORPUS / "big.log"
    small_manifest, big_manifest = CORPUS / "logs.json", CORPUS / "big.json"
    small_params = {"version": GENERATOR_VERSION, "size_mb": size_mb}
    big_params = {"version": GENERATOR_VERSION, "big_gb": big_gb}
    blocks: dict[str, list[bytes]] = {}
    if not _fresh(small_manifest, small_params):
        rng = random.Random(20260930)
        blocks = {style: [_script_block(rng, style, 1_790_000_000) for _ in range(24)] for style in STYLES}
        small_dir.mkdir(exist_ok=True)
        for old in small_dir.glob("*.log"):
            old.unlink()
        total, target, i = 0, size_mb * 1_000_000, 0
        while total < target:
            size = min(int(rng.lognormvariate(13.3, 1.0)), 8_000_000, max(target - total, BLOCK))
            total += _write_log(small_dir / f"job-{i:05d}.log", rng, blocks, size)
            i += 1
        small_manifest.write_text(json.dumps(small_params))
    if big_gb > 0 and not _fresh(big_manifest, big_params):
        rng = random.Random(19)
        stamped = [_script_block(rng, "timestamped", 1_790_000_000) for _ in range(24)]
        _write_log(big, rng, {"timestamped": stamped}, int(big_gb * 1_000_000_000))
        big_manifest.write_text(json.dumps(big_params))
    return sorted(small_dir.glob("*.log")), (big if big_gb > 0 else None)


ParseStream = Callable[[BinaryIO, int], "TraceFacts"]


def _load_revision(rev: str) -> ParseStream:
    """parse_stream of src/cidash/logparse.py as it is at git revision ``rev`` (imported as its own module)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:src/cidash/logparse.py"], cwd=HERE.parent, capture_output=True, check=True
    ).stdout
    module = types.ModuleType("cidash_logparse_at_" + re.sub(r"\W", "_", rev))
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:src/cidash/logparse.py", "exec"), module.__dict__)
    parse: ParseStream = module.parse_stream
    return parse


def _compare(
    files: list[Path], chunk: int, repeat: int, results: list[TraceFacts], other: ParseStream | None = None
) -> dict[str, list[float]]:
    """Best [wall, CPU] seconds of cidash and of ``grep -c section_`` over ``files``, ``repeat`` runs each (and of
    ``other``, a parser of another revision, if given: its facts must equal cidash's for every file)."""
    from cidash.logparse import parse_stream

    def run_cidash() -> None:
        results.clear()
        for f in files:
            with f.open("rb") as fh:
                results.append(parse_stream(fh, chunk))

    def run_other() -> None:
        assert other is not None
        for i, f in enumerate(files):
            with f.open("rb") as fh:
                facts = other(fh, chunk)
            if results and facts != results[i]:
                raise SystemExit(f"{f}: the parser of --against gives other facts:\n{facts}\n!=\n{results[i]}")

    def run_grep() -> None:
        for i in range(0, len(files), 2000):  # many small files: stay under the argument-list limit
            subprocess.run(
                ["grep", "-c", "section_", *map(str, files[i : i + 2000])],
                stdout=subprocess.PIPE,  # not DEVNULL: GNU grep stops at the first match when output is /dev/null
                env={**os.environ, "LC_ALL": "C"},
                check=False,
            )

    for f in files:  # warm the page cache for both tools
        with f.open("rb") as fh:
            while fh.read(1 << 22):
                pass
    runs = [("cidash", run_cidash), ("grep", run_grep)] + ([("other", run_other)] if other is not None else [])
    best = {name: [float("inf")] * 2 for name, _ in runs}  # [wall, cpu]
    for _ in range(repeat):  # interleaved, so a busy machine slows all alike
        for name, fn in runs:
            wall, cpu = _timed(fn)
            best[name] = [min(best[name][0], wall), min(best[name][1], cpu)]
    return best


def _io_only(files: list[Path], chunk: int, repeat: int) -> float:
    """Best CPU seconds of opening and reading ``files`` the way parse_stream() reads them, parsing nothing."""

    def run() -> None:
        for f in files:
            with f.open("rb") as fh:
                while fh.read(chunk):
                    pass

    return min(_timed(run)[1] for _ in range(repeat))


def _timed(fn: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children) for one call."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, cpu + (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)


def _peak_rss_kib(code: str) -> int:
    """Run code in a fresh interpreter; return its peak RSS (VmHWM) in KiB."""
    probe = code + (
        "\nimport resource\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
        "print(hwm[0].split()[1] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=200, help="corpus size in MB (default 200)")
    ap.add_argument("--big-gb", type=float, default=1.0, help="size of the single big log in GB, 0 to skip")
    ap.add_argument(
        "--chunk-kib", type=int, default=64, help="parse_stream chunk size in KiB (default 64, the API default)"
    )
    ap.add_argument("--repeat", type=int, default=5, help="timing runs, best kept (default 5)")
    ap.add_argument(
        "--shapes-mb", type=int, default=50, help="size of each real-shaped corpus in MB (default 50, 0 to skip)"
    )
    ap.add_argument(
        "--against",
        metavar="REV",
        help="also time src/cidash/logparse.py of this git revision and check it gives the same facts on every file",
    )
    args = ap.parse_args()

    sys.path.insert(0, str(HERE.parent / "src"))
    other = _load_revision(args.against) if args.against else None

    t = time.perf_counter()
    files, big = build_corpus(args.size_mb, args.big_gb)
    print(f"corpus: {len(files)} logs under {CORPUS} ({time.perf_counter() - t:.1f} s to build or check)")
    total = sum(f.stat().st_size for f in files)
    chunk = args.chunk_kib * 1024

    results: list[TraceFacts] = []
    best = _compare(files, chunk, args.repeat, results, other)
    sane = sum(1 for r in results if not r.truncated and r.startup_seconds is not None and len(r.cache) == 2)
    if sane != len(files):
        print(f"WARNING: only {sane} of {len(files)} logs parsed to complete facts", file=sys.stderr)
    mb = total / 1e6
    print(f"corpus size:          {mb:.1f} MB in {len(files)} files")
    (c_wall, c_cpu), (g_wall, g_cpu) = best["cidash"], best["grep"]
    print(f"load average:         {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (best of {args.repeat} runs)")
    print("                      wall clock          CPU time")
    print(f"cidash logparse:      {mb / c_wall:8.1f} MB/s       {mb / c_cpu:8.1f} MB/s   (chunk {args.chunk_kib} KiB)")
    print(f"grep -c section_:     {mb / g_wall:8.1f} MB/s       {mb / g_cpu:8.1f} MB/s   (LC_ALL=C)")
    print(
        f"ratio cidash/grep:    {g_wall / c_wall * 100:8.1f} %          "
        f"{g_cpu / c_cpu * 100:8.1f} %      (target >= 25 %)"
    )
    if other is not None:
        o_wall, o_cpu = best["other"]
        print(
            f"{args.against + ':':<22}{mb / o_wall:8.1f} MB/s       {mb / o_cpu:8.1f} MB/s   (same facts, every file)"
        )

    if args.shapes_mb > 0:
        print(f"\nreal-shaped corpora ({args.shapes_mb} MB each), CPU time, best of {args.repeat}:")
        against = f"{'MB/s at ' + args.against:>16} {'x':>5}" if other is not None else ""
        print(f"{'shape':<14} {'files':>6} {'cidash MB/s':>12} {'grep MB/s':>10} {'ratio':>7}{against}   what")
        per_file = ""
        for name, shape_files in build_shapes(args.shapes_mb).items():
            shape_mb = sum(f.stat().st_size for f in shape_files) / 1e6
            b = _compare(shape_files, chunk, args.repeat, results, other)
            if name == "many-small":  # where the time of a small log goes, and the best ratio a free parser gets
                n = len(shape_files)
                io_cpu = _io_only(shape_files, chunk, args.repeat)
                per_file = (
                    f"many-small, per file (CPU): cidash {b['cidash'][1] / n * 1e6:.1f} us, of which opening and "
                    f"reading it {io_cpu / n * 1e6:.1f} us; grep {b['grep'][1] / n * 1e6:.1f} us; a parser costing "
                    f"nothing would reach {b['grep'][1] / io_cpu * 100:.0f} %"
                )
            c_cpu, g_cpu = b["cidash"][1], b["grep"][1]
            versus = ""
            if other is not None:  # same facts for every file, or _compare exited
                o_cpu = b["other"][1]
                versus = f" {shape_mb / o_cpu:>16.1f} {o_cpu / c_cpu:>4.1f}x"
            print(
                f"{name:<14} {len(shape_files):>6} {shape_mb / c_cpu:>12.1f} {shape_mb / g_cpu:>10.1f} "
                f"{g_cpu / c_cpu * 100:>6.1f} %{versus}   {SHAPES[name]}"
            )
        if per_file:
            print(per_file)

    if big is not None:
        size = big.stat().st_size
        src = str(HERE.parent / "src")
        base = _peak_rss_kib(f"import sys; sys.path.insert(0, {src!r}); import cidash.logparse")
        t = time.perf_counter()
        peak = _peak_rss_kib(
            f"import sys; sys.path.insert(0, {src!r}); import cidash.logparse as lp\n"
            f"with open({str(big)!r}, 'rb') as fh:\n    facts = lp.parse_stream(fh, {chunk})\n"
            "assert facts.sections, 'big log parsed to nothing'"
        )
        elapsed = time.perf_counter() - t
        print(f"big log:              {size / 1e9:.2f} GB parsed in {elapsed:.1f} s ({size / 1e6 / elapsed:.0f} MB/s)")
        print(f"peak RSS import only: {base / 1024:8.1f} MiB")
        print(f"peak RSS parsing:     {peak / 1024:8.1f} MiB  (delta {(peak - base) / 1024:.1f} MiB, target < 64 MiB)")
        long_line = CORPUS / "long-line.log"  # one pathological 50 MB line: no \n, no \r
        if not long_line.exists() or long_line.stat().st_size != 50 * 2**20 + 35:
            long_line.write_bytes(b"section_start:1:step_script\r\x1b[0K" + b"x" * (50 * 2**20) + b"\n\n\n")
        peak = _peak_rss_kib(
            f"import sys; sys.path.insert(0, {src!r}); import cidash.logparse as lp\n"
            f"with open({str(long_line)!r}, 'rb') as fh:\n    facts = lp.parse_stream(fh, {chunk})\n"
            "assert facts.sections, 'long line parsed to nothing'"
        )
        print(f"peak RSS, 50 MB line: {peak / 1024:8.1f} MiB  (delta {(peak - base) / 1024:.1f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
