"""Mutation fuzz of the job-log parser: it must never raise, whatever the bytes (issue 12).

    .venv/bin/python bench/fuzz_logparse.py                  # 100,000 cases, seed 1
    .venv/bin/python bench/fuzz_logparse.py --cases 1000000 --seed 7

Each case takes a seed log (the conformance corpus and fixture logs in tests/data/logs, and their CR-stripped
copies), applies 1-8 random mutations (byte flips, digit changes, inserted tokens such as impossible per-line
timestamps, markers with odd numbers, lone ESC/\\r/\\n, invalid UTF-8; deletions, duplications, truncation,
splices of two logs), feeds it to the parser in random chunks and checks:

- nothing raises;
- the facts hold together: a closed section's duration is its end minus its start, counts stay under the caps,
  the JSON object serialises (no NaN/inf) and reads back to equal facts;
- the facts do not depend on the chunking (compared with one whole parse).

A failing case is written to bench/.fuzz/ (gitignored) with the exception, and the run exits 1.

--against REV also parses every case with src/cidash/logparse.py as it is at git revision REV and counts the
cases whose facts differ (written to bench/.fuzz/ as diff-*.txt): a report for changes to the parser, not a
failure.
`tests/unit/test_logparse_fuzz.py` runs the same cases (a few thousand, fixed seed) in `make test`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterator
from pathlib import Path

from cidash.logparse import (
    MAX_CACHE_EVENTS,
    MAX_SECTIONS,
    TraceParser,
    facts_from_dict,
    facts_to_dict,
    parse_bytes,
)
from cidash.models import TraceFacts

HERE = Path(__file__).resolve().parent
LOGS = HERE.parent / "tests" / "data" / "logs"
OUT = HERE / ".fuzz"
MAX_BYTES = 60_000  # under the parser's 64 KiB line cap, so chunking can never change the facts

TOKENS: tuple[bytes, ...] = (
    b"2026-13-01T10:00:00.000000Z 00O ",
    b"0000-00-00T00:00:00.000000Z 00E ",
    b"2026-02-30T25:61:61.9Z 0fO+",
    b"9999-12-31T23:59:60.999999999Z 01O ",
    b"1969-12-31T23:59:59Z 00O ",
    b"2026-01-01T00:00:00.000000Z 00O+",
    b"section_start:999999999999:step_script\r\x1b[0K",
    b"section_start:0:restore_cache[collapsed=true]\r\x1b[0K",
    b"section_end:1:restore_cache\r\x1b[0K",
    b"section_end:1700000000:step_script\n",
    b"section_start:1700000000:" + b"n" * 300 + b"\r",
    b"section_start:17:x[" + b"o" * 300 + b"]\r",
    b"section_",
    b"\r",
    b"\n",
    b"\r\n",
    b"\x1b",
    b"\x1b[",
    b"\x1b[0K",
    b"\x1b[36;1m",
    b"\x00",
    b"\xff\xfe\xc3",
    b"\xe2\x80\xae",
    b"+",
    b"FATAL: file does not exist",
    b"WARNING: file does not exist",
    b"Failed to extract cache",
    b"Successfully extracted cache",
    b"Checking cache for ",
    b"Checking cache for k (fallback)...",
    b"Creating cache k...",
    b"Skipping cache archiving due to empty cache key",
    b"Not downloading cache  due to policy",
    b'Preparing the "docker+machine" executor',
    b'Preparing the "" executor',
    b"Using Docker executor with image ",
    b"Using Shell (pwsh) executor...",
    b"Pulling docker image ruby:3 for platform linux/arm64 ...",
    b"Using docker image ruby:2.3 ID= for build container...",
    b"Using docker image sha256:1 for ruby:3 with digest ruby@sha256:2 ...",
    b"Using locally found image version",
    b"Cache archive size (99999999999999999999) is too big",
    b"Running with gitlab-runner ",
    b"Job's log exceeded limit",
)


def seed_logs() -> list[bytes]:
    """The logs mutations start from: every *.log under tests/data/logs and its CR-stripped copy."""
    logs = [p.read_bytes() for p in sorted(LOGS.rglob("*.log"))]
    return logs + [data.replace(b"\r", b"\n") for data in logs]


def mutate(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        n = len(buf)
        op = rng.randrange(9)
        at = rng.randint(0, n)
        if op == 0 and n:  # flip a byte
            buf[min(at, n - 1)] = rng.randrange(256)
        elif op == 1:  # insert a token
            buf[at:at] = rng.choice(TOKENS)
        elif op == 2 and n:  # delete a range
            buf[at : at + rng.randint(1, 64)] = b""
        elif op == 3 and n:  # duplicate a range
            piece = buf[at : at + rng.randint(1, 512)]
            buf[at:at] = piece
        elif op == 4:  # truncate
            del buf[at:]
        elif op == 5:  # splice another log in
            other = rng.choice(seeds)
            cut = rng.randint(0, len(other))
            buf[at:] = other[cut:] if rng.random() < 0.5 else other[:cut] + buf[at:]
        elif op == 6 and n:  # change a digit (timestamps, marker times)
            for _ in range(8):
                i = rng.randrange(n)
                if 48 <= buf[i] <= 57:
                    buf[i] = rng.randrange(48, 58)
                    break
        elif op == 7:  # swap line endings
            old, new = rng.choice([(b"\r", b"\n"), (b"\n", b"\r"), (b"\n", b"\r\n"), (b"\x1b[0K", b"")])
            buf = bytearray(bytes(buf).replace(old, new))
        elif op == 8:  # replace a range with a token
            buf[at : at + rng.randint(1, 32)] = rng.choice(TOKENS)
    return bytes(buf[:MAX_BYTES])


def cases(seed: int, count: int) -> Iterator[tuple[int, bytes, list[int]]]:
    """(case number, log bytes, chunk sizes) for ``count`` cases from ``seed``; deterministic."""
    rng = random.Random(seed)
    seeds = seed_logs()
    for i in range(count):
        data = mutate(rng, rng.choice(seeds), seeds)
        sizes = [rng.choice((1, 3, 61, 997, 4096, 1 << 16)) for _ in range(rng.randint(2, 6))]
        yield i, data, sizes


def check(data: bytes, sizes: list[int]) -> str | None:
    """None if the parser coped with ``data`` fed in chunks of ``sizes`` (cycled), else what went wrong."""
    try:
        parser = TraceParser()
        pos = k = 0
        while pos < len(data):
            step = sizes[k % len(sizes)]
            parser.feed(data[pos : pos + step])
            pos += step
            k += 1
        facts = parser.finish()
        whole = parse_bytes(data)
    except Exception:
        return traceback.format_exc()
    return _inconsistency(facts, whole)


def _inconsistency(facts: TraceFacts, whole: TraceFacts) -> str | None:
    if facts != whole:
        return f"chunking changed the facts:\n{facts}\n!=\n{whole}"
    if len(facts.sections) > MAX_SECTIONS or len(facts.cache) > MAX_CACHE_EVENTS:
        return "over the caps"
    for s in facts.sections:
        if (s.end is None) != (s.duration is None) or (s.end is not None and s.duration != round(s.end - s.start, 6)):
            return f"inconsistent section {s}"
    try:
        text = json.dumps(facts_to_dict(facts, detail=True), allow_nan=False)
        back = facts_from_dict(json.loads(text))
    except Exception:
        return traceback.format_exc()
    if back != facts:
        return f"JSON round trip changed the facts:\n{back}\n!=\n{facts}"
    return None


def _load_revision(rev: str) -> Callable[[bytes], TraceFacts]:
    """parse_bytes of src/cidash/logparse.py as it is at git revision ``rev`` (imported as its own module)."""
    source = subprocess.run(
        ["git", "show", f"{rev}:src/cidash/logparse.py"], cwd=HERE.parent, capture_output=True, check=True
    ).stdout
    module = types.ModuleType("cidash_logparse_at_" + re.sub(r"\W", "_", rev))
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{rev}:src/cidash/logparse.py", "exec"), module.__dict__)
    parse: Callable[[bytes], TraceFacts] = module.parse_bytes
    return parse


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000, help="number of cases (default 100,000)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    ap.add_argument("--against", metavar="REV", help="count cases the parser of this git revision reads otherwise")
    args = ap.parse_args()
    other = _load_revision(args.against) if args.against else None
    differ = 0
    began = time.perf_counter()
    failures = 0
    total_bytes = 0
    for i, data, sizes in cases(args.seed, args.cases):
        total_bytes += len(data)
        problem = check(data, sizes)
        if other is not None and problem is None and other(data) != (mine := parse_bytes(data)):
            differ += 1
            OUT.mkdir(exist_ok=True)
            (OUT / f"diff-{args.seed}-{i}.log").write_bytes(data)
            (OUT / f"diff-{args.seed}-{i}.txt").write_text(f"{args.against}: {other(data)}\nnow: {mine}\n")
        if problem is not None:
            failures += 1
            OUT.mkdir(exist_ok=True)
            (OUT / f"case-{args.seed}-{i}.log").write_bytes(data)
            (OUT / f"case-{args.seed}-{i}.txt").write_text(f"chunk sizes {sizes}\n{problem}")
            if failures <= 3:
                print(f"case {i}: {problem.splitlines()[-1] if problem else ''}", file=sys.stderr)
    seconds = time.perf_counter() - began
    print(f"cases:     {args.cases:,} (seed {args.seed}), {total_bytes / 1e6:.1f} MB of mutated logs")
    print(f"failures:  {failures:,}" + (f" (written to {OUT})" if failures else ""))
    print(f"time:      {seconds:.1f} s ({args.cases / seconds:,.0f} cases/s)")
    if other is not None:
        print(f"differ from {args.against}: {differ:,} cases" + (f" (written to {OUT})" if differ else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
