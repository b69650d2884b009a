"""Dashboard benchmark: time to a populated Health screen on a 10,000-pipeline store, next to a bare Textual app.

    .venv/bin/python bench/tui.py                      # 10,000 pipelines x 8 jobs (80,000 jobs), 3 runs each
    .venv/bin/python bench/tui.py --pipelines 2000 --runs 1   # a quick run

What it measures (see bench/README.md, section "TUI"):

1. **Start-up**: wall time from spawning a process to the Health table showing the criteria, headless, for
   (a) a bare Textual app (one Static, exits when ready), (b) ``cidash`` with a cold Health cache (the criteria are
   computed from the store, as ``cidash`` starts: by a helper process forked before Textual is imported,
   ``cidash.tui.prefetch``: every criterion's verdict and value on screen), (b'') the same computed in the
   dashboard's own process ("cold, one process": ``CIDASH_FIRST_HEALTH_PROCESS=0``), (b') the same until the
   computed table also shows its baselines and series ("cold, complete") and (c) with a warm cache (the last
   Health is shown at once, then recomputed in the background). CPU time and peak RSS are the child's own
   (``getrusage`` at that moment) plus those of its reaped children (the helper). Medians of ``--runs``.
2. **Filter**: on the Pipelines tab, time from applying a filter (``status:failed``, ``ref:main``,
   ``source:schedule``, a pipeline id, clearing it) to the new first page being on screen, measured inside the App
   (``PipelinesView.last_filter_ms``).

The store is generated with the Store API directly (no HTTP): pipelines over 120 days, a CI-image migration at day
60 (807 MB Debian -> 215 MB Alpine, start-up 25 s -> 15 s), parsed log facts for every job. It is cached in
``bench/.corpus/tui-<pipelines>.db`` while the parameters match.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CORPUS = ROOT / ".corpus"
NOW = datetime(2026, 11, 27, tzinfo=UTC)
JOBS = (
    ("build-ci-image", "image"),
    ("setup", "prepare"),
    ("verify-ci-image", "verify"),
    ("lint", "test"),
    ("test 1/2", "test"),
    ("test 2/2", "test"),
    ("build", "build"),
    ("release", "release"),
)
CI_YML = """\
default:
  image: registry.example.com/platform/app/ci:latest
setup:
  stage: prepare
  resource_group: cache-writers
  cache:
    key:
      files: [.cache-key]
    paths: [.go/]
    policy: pull-push
  script: [make deps]
test:
  stage: test
  cache:
    key:
      files: [.cache-key]
    paths: [.go/]
    policy: pull
  script: [make test]
"""


def build_store(path: Path, pipelines: int, seed: int = 1) -> None:
    from cidash.models import (
        CacheEvent,
        CiConfig,
        ImageRef,
        ImageTag,
        Job,
        Pipeline,
        Project,
        Section,
        TraceFacts,
    )
    from cidash.store import Store

    rng = random.Random(seed)
    days = 120
    start = NOW - timedelta(days=days)
    migration = start + timedelta(days=60)
    debian = "sha256:" + "d" * 64
    alpine = "sha256:" + "a" * 64
    with Store.open(path) as store:
        project = Project(42, "platform/app", "https://gitlab.example.com/platform/app", "main")
        store.upsert_project(project)
        store.upsert_image_tags(
            [
                ImageTag(42, "platform/app/ci", "debian-1", debian, 807_000_000, start, None),
                ImageTag(42, "platform/app/ci", "alpine-1", alpine, 214_600_000, migration, None),
                ImageTag(42, "platform/app/ci", "latest", alpine, 214_600_000, migration, None),
            ],
            seen_at=NOW,
        )
        step = timedelta(days=days) / pipelines
        job_id = 100_000
        batch_p: list[Pipeline] = []
        batch_j: list[Job] = []
        facts: list[tuple[int, TraceFacts]] = []

        def flush() -> None:
            with store.transaction():
                store.upsert_pipelines(batch_p)
                store.upsert_jobs(batch_j)
                for jid, f in facts:
                    store.save_job_facts(jid, f, project_id=42, log_bytes=20_000, parsed_at=NOW)
            batch_p.clear()
            batch_j.clear()
            facts.clear()

        for i in range(pipelines):
            created = start + step * i
            migrated = created >= migration
            ref = "main" if rng.random() < 0.6 else f"feature/{rng.randrange(40)}"
            source = "schedule" if rng.random() < 0.05 else ("web" if rng.random() < 0.05 else "push")
            failed = rng.random() < 0.04
            pid = 10_000 + i
            sha = f"{pid:040x}"
            dur = rng.uniform(240, 480) * (0.7 if migrated else 1.0)
            batch_p.append(
                Pipeline(
                    42,
                    pid,
                    i + 1,
                    ref,
                    sha,
                    "failed" if failed else "success",
                    source,
                    created,
                    created + timedelta(seconds=dur),
                    created + timedelta(seconds=5),
                    created + timedelta(seconds=dur),
                    dur,
                    rng.uniform(2, 10),
                )
            )
            t = created + timedelta(seconds=5)
            for k, (name, stage) in enumerate(JOBS):
                job_failed = failed and k == len(JOBS) - 2
                startup = rng.gauss(15 if migrated else 25, 2)
                jdur = startup + rng.uniform(20, 120)
                job_id += 1
                batch_j.append(
                    Job(
                        42,
                        job_id,
                        pid,
                        name,
                        stage,
                        "failed" if job_failed else "success",
                        ref,
                        sha,
                        t,
                        t,
                        t + timedelta(seconds=jdur),
                        jdur,
                        rng.uniform(1, 8),
                        "script_failure" if job_failed else None,
                    )
                )
                s0 = t.timestamp()
                prep = startup * 0.55
                secs = (
                    Section("prepare_executor", s0, s0 + prep, prep),
                    Section("get_sources", s0 + prep, s0 + prep + startup * 0.3, startup * 0.3),
                    Section("restore_cache", s0 + startup * 0.85, s0 + startup, startup * 0.15),
                    Section("step_script", s0 + startup, s0 + jdur - 3, jdur - 3 - startup),
                    Section("archive_cache", s0 + jdur - 3, s0 + jdur, 3.0),
                )
                digest = alpine if migrated else debian
                key = "0-" + ("%040x" % (i // 50)) + ("-protected" if ref == "main" else "-non_protected")
                cache = (CacheEvent("restore", key, "hit" if rng.random() < 0.9 else "miss"),)
                if name == "setup":
                    cache += (CacheEvent("archive", key, "created"),)
                image = ImageRef(
                    f"registry.example.com/platform/app/ci:{'alpine-1' if migrated else 'debian-1'}",
                    None,
                    f"registry.example.com/platform/app/ci@{digest}",
                    rng.random() < 0.7,
                )
                if name == "build-ci-image":
                    image = ImageRef("docker:27.3", None, "docker@sha256:" + "b" * 64, False)
                facts.append((job_id, TraceFacts("19.1.0", "docker", False, secs, startup, image, cache)))
                t += timedelta(seconds=jdur * 0.3)
            if len(batch_p) >= 500:
                flush()
        flush()
        head = f"{10_000 + pipelines - 1:040x}"
        store.save_ci_config(CiConfig(42, head, ".gitlab-ci.yml", "main", CI_YML), fetched_at=NOW)
        store.set_cursor(42, "last_sync", NOW.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        if store.backend == "sqlite":  # bench/store_backends.py builds a PostgreSQL store with this too
            store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# -- child processes ---------------------------------------------------------------------------------------------


def _measure(t0: float) -> None:
    """Report seconds since the parent spawned us, the CPU time (user + system, all threads) of this process and
    of the children it has reaped (the dashboard's first-Health helper, ``cidash.tui.prefetch``), and the peak RSS
    (MB) so far: this process's plus its largest reaped child's (both at once at worst)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime + children.ru_utime + children.ru_stime
    rss = (usage.ru_maxrss + children.ru_maxrss) / 1024
    print(f"{time.time() - t0:.4f} {cpu:.4f} {rss:.1f}", flush=True)


def _done(t0: float) -> None:
    """Report (:func:`_measure`), and leave at once (workers still computing are not waited for)."""
    _measure(t0)
    os._exit(0)


def child_bare(t0: float) -> None:
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Static("hello")

        def on_ready(self) -> None:
            self.call_after_refresh(_done, t0)

    Bare().run(headless=True)


def child_cidash(db: str, cache: str, t0: float, until: str = "populated") -> None:
    """``until`` populated: done when the Health table shows every criterion's verdict and value (cached or
    computed); complete: when it shows a computed Health with its baselines and series too, after which the child
    waits (unmeasured) for the Health cache to be written, so the next run starts warm."""
    from cidash.config import Config
    from cidash.store import Store

    store = Store.open(db, readonly=True)
    helper = None
    try:  # as `cidash` starts: the cold start's first Health in a helper process, before Textual is imported
        from cidash.tui.prefetch import start_first_health
    except ImportError:  # code from before it (--before)
        pass
    else:
        helper = start_first_health(store, Config(), wanted=None, cache_dir=Path(cache), now=NOW)

    from cidash.tui.app import CidashApp
    from cidash.tui.screens.health import HealthView

    class Bench(CidashApp):
        def on_ready(self) -> None:
            self._check()

        def _check(self) -> None:
            health = self.query_one(HealthView).health
            if until == "populated" and health is not None:
                self.call_after_refresh(_done, t0)
            elif until == "complete" and self.snapshot is not None and getattr(health, "complete", True):
                self.call_after_refresh(self._complete)
            else:
                self.set_timer(0.02, self._check)

        def _complete(self) -> None:
            _measure(t0)
            self._cached(time.monotonic() + 60)

        def _cached(self, deadline: float) -> None:
            if any(Path(cache).glob("health-*.json")) or time.monotonic() > deadline:
                os._exit(0)
            self.set_timer(0.02, lambda: self._cached(deadline))  # the views worker writes it

    extra = {} if helper is None else {"first_health": helper}
    with store:
        Bench(store, Config(), clock=lambda: NOW, poll=False, cache_dir=Path(cache), **extra).run(headless=True)


def child_bare_tty() -> None:
    """The bare app in a real terminal (``--cli``): it shows ``hello`` and waits to be killed."""
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Static("hello")

    Bare().run()


# -- the real command in a terminal (--cli): wall clock only ------------------------------------------------------

#: What the Health's verdict says once it is on screen (Health.verdict), escape sequences stripped.
VERDICT = re.compile(rb"criteria (?:pass|fail)|PASS with gaps")
_ESCAPES = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]")


def tty_run(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    done: re.Pattern[bytes],
    timeout: float = 60.0,
    until: Callable[[], bool] | None = None,
) -> float:
    """Seconds from starting ``argv`` in a new 80x24 pseudo-terminal until its screen shows ``done`` (escape
    sequences stripped; with ``until``, also until it says true); then its whole process group (the dashboard and
    any helper) is killed."""
    import fcntl
    import pty
    import select
    import signal
    import struct
    import termios

    t0 = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # a new session: its own process group
        columns, lines = TERMINAL_SIZE or (80, 24)
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        os.chdir(cwd)
        os.execve(argv[0], argv, env)
    out = b""
    try:
        while time.perf_counter() - t0 < timeout:
            ready, _, _ = select.select([fd], [], [], 0.01)
            if ready:
                try:
                    out += os.read(fd, 1 << 16)
                except OSError:
                    break  # it exited
            if done.search(_ESCAPES.sub(b"", out)) and (until is None or until()):
                return time.perf_counter() - t0
        raise SystemExit(f"{argv[1:4]}: {done.pattern!r} not on screen after {timeout} s: {out[-500:]!r}")
    finally:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)


def cli_start(db: Path, n_runs: int, sides: list[tuple[str, Path | None]]) -> None:
    """``--cli``: the real ``cidash tui --offline`` in a pseudo-terminal, cold (with its helper, and in one
    process) and warm, next to the bare app in one, alternating; the wall clock until the Health's verdict is on
    the terminal (no CPU time: the process runs on until killed)."""
    runs: dict[str, list[float]] = {"bare": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = dict(os.environ, TERM="xterm-256color", XDG_CONFIG_HOME=str(Path(tmp) / "config"))
        for var in ("GITLAB_URL", "GITLAB_TOKEN", "CIDASH_CONFIG", "CIDASH_DB", "CI"):
            base.pop(var, None)
        if TERMINAL_SIZE is not None:
            base["COLUMNS"], base["LINES"] = (str(n) for n in TERMINAL_SIZE)
        if BYTECODE_CACHE:
            base.pop("PYTHONDONTWRITEBYTECODE", None)
            base["PYTHONPYCACHEPREFIX"] = str(CORPUS / "pycache")
        bare = [sys.executable, str(Path(__file__).resolve()), "--child-bare-tty"]

        def dash(side: str, src: Path | None, kind: str, until: Callable[[], bool] | None = None) -> float:
            env = dict(base, XDG_CACHE_HOME=str(Path(tmp) / f"cache-{side}"))
            if src is not None:
                env["PYTHONPATH"] = str(src)
            if kind == "cold1":
                env["CIDASH_FIRST_HEALTH_PROCESS"] = "0"
            argv = [sys.executable, "-m", "cidash", "tui", "--offline", "--no-checkout", "--refresh", "0"]
            return tty_run([*argv, "--db", str(dbs[side])], env, tmp, VERDICT, until=until)

        def warm_up(side: str) -> None:
            """Leave the Health cache: a start that runs until its views worker wrote it."""
            cache = Path(tmp) / f"cache-{side}"
            dash(side, dict(sides)[side], "warm", until=lambda: any(cache.rglob("health-*.json")))

        dbs = {side: store_for_side(db, src) for side, src in sides}
        tty_run(bare, base, tmp, re.compile(b"hello"))  # not measured: bytecode
        for side, _ in sides:
            runs[f"cold {side}"], runs[f"cold1 {side}"], runs[f"warm {side}"] = [], [], []
        for _ in range(n_runs):
            runs["bare"].append(tty_run(bare, base, tmp, re.compile(b"hello")))
            for side, src in sides:
                cache = Path(tmp) / f"cache-{side}"
                for kind in ("cold", "cold1"):
                    shutil.rmtree(cache, ignore_errors=True)
                    runs[f"{kind} {side}"].append(dash(side, src, kind))
        for side, _ in sides:
            shutil.rmtree(Path(tmp) / f"cache-{side}", ignore_errors=True)
            warm_up(side)
        for _ in range(n_runs):
            for side, src in sides:
                runs[f"warm {side}"].append(dash(side, src, "warm"))
    med = {k: statistics.median(v) for k, v in runs.items()}
    print(f"`cidash tui --offline` in an 80x24 pseudo-terminal, until the verdict shows (median of {n_runs}, wall):")
    print(f"  bare Textual app               {med['bare']:6.2f} s")
    for side, _ in sides:
        for kind, text in (("warm", "warm"), ("cold", "cold"), ("cold1", "cold, one process")):
            label = f"{text} {side if len(sides) > 1 else ''}".rstrip()
            wall = med[f"{kind} {side}"]
            print(f"  cidash, {label:22s} {wall:6.2f} s  ({wall / med['bare']:.2f}x bare)")


#: The children's terminal (``COLUMNS``/``LINES``); None: unset, as before 2026-12-03 (``--size none``).
TERMINAL_SIZE: tuple[int, int] | None = (80, 24)

#: Children run from compiled bytecode (``--compile-each-run`` turns it off: every import compiles the source, as
#: it does with PYTHONDONTWRITEBYTECODE set and no ``__pycache__``).
BYTECODE_CACHE = True


def run_child(
    args: list[str], src: Path | None = None, extra_env: dict[str, str] | None = None
) -> tuple[str, resource.struct_rusage]:
    """Run this script as a child (``src``: another checkout's ``src/`` first on its path, ``--before``); its
    standard output and its own rusage (``os.wait4``: CPU and peak RSS of that child only)."""
    env = dict(os.environ, **(extra_env or {}))
    if src is not None:
        env["PYTHONPATH"] = str(src)
    if TERMINAL_SIZE is not None:
        # One terminal size, as a terminal has: headless, Rich's console (the App's size until the driver reports)
        # says 80x25 and the headless driver 80x24, so every app got a resize right after its first layout (one
        # more layout and full repaint: nothing for the bare app's one Static, ~0.03 s of CPU for the dashboard).
        env["COLUMNS"], env["LINES"] = (str(n) for n in TERMINAL_SIZE)
    if BYTECODE_CACHE:
        # As installed Python code runs: from compiled bytecode (compiling textual, rich and cidash from source
        # costs more CPU than starting the app); in bench/.corpus/pycache, never next to the sources.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(CORPUS / "pycache")
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [sys.executable, __file__, *args, repr(time.time())], stdout=stdout, stderr=stderr, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            stderr.seek(0)
            raise SystemExit(
                f"child {args[0]} exited {proc.returncode}: {stderr.read().decode(errors='replace')[-2000:]}"
            )
        stdout.seek(0)
        return stdout.read().decode(), usage


def spawn(
    args: list[str], src: Path | None = None, extra_env: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of a child from its spawn to what it waits for (its populated first screen):
    the child measures them at that moment (:func:`_measure`: wall time since the spawn; CPU time, user + system
    of all its threads, and peak resident set size from its own ``getrusage``) and prints them."""
    out, _ = run_child(args, src, extra_env)
    wall, cpu, rss = (float(x) for x in out.strip().splitlines()[-1].split())
    return wall, cpu, rss


# -- filter ------------------------------------------------------------------------------------------------------


FILTERS = ("status:failed", "ref:main", "source:schedule", "ref:feature/7 status:success", "15000", "")


async def filter_times(db: Path, cache: Path) -> dict[str, float]:
    from textual.worker import WorkerState

    from cidash.config import Config
    from cidash.store import Store
    from cidash.tui.app import CidashApp
    from cidash.tui.screens.pipelines import PipelinesView

    out: dict[str, float] = {}
    with Store.open(db, readonly=True) as store:
        app = CidashApp(store, Config(), clock=lambda: NOW, poll=False, cache_dir=cache)
        async with app.run_test(size=(120, 36)) as pilot:

            async def settle() -> None:
                quiet = 0
                while quiet < 3:
                    busy = any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers)
                    quiet = 0 if busy else quiet + 1
                    await pilot.pause(0.001)

            await settle()
            await pilot.press("2")
            await settle()
            view = app.query_one(PipelinesView)
            for text in FILTERS:
                samples = []
                for _ in range(5):
                    view.apply_filter(text)
                    await settle()
                    assert view.last_filter_ms is not None
                    samples.append(view.last_filter_ms)
                out[text or "(cleared)"] = statistics.median(samples)
    return out


def child_filter(db: str, cache: str, t0: float) -> None:
    times = asyncio.run(filter_times(Path(db), Path(cache)))
    print(json.dumps(times), flush=True)
    print(f"{time.time() - t0:.4f}", flush=True)


def filter_run(db: Path, src: Path | None) -> tuple[dict[str, float], float]:
    """The filter timings (ms) measured in a child (``src`` first on its path), and its peak RSS (MB)."""
    with tempfile.TemporaryDirectory() as cache:
        out, usage = run_child(["--child-filter", str(db), cache], src)
    return json.loads(out.strip().splitlines()[-2]), usage.ru_maxrss / 1024


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-bare":
        child_bare(float(sys.argv[2]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--child-cidash":
        child_cidash(sys.argv[2], sys.argv[3], float(sys.argv[-1]), *sys.argv[4:-1])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--child-bare-tty":
        child_bare_tty()
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--child-filter":
        child_filter(sys.argv[2], sys.argv[3], float(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipelines", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--filter-only", action="store_true", help="skip the start-up measurement")
    parser.add_argument("--no-filter", action="store_true", help="skip the filter measurement")
    parser.add_argument(
        "--cli",
        action="store_true",
        help="the start-up of the real `cidash tui --offline` in a pseudo-terminal instead (wall clock only)",
    )
    parser.add_argument(
        "--filter-pipelines", type=int, help="measure the filter on this store instead (e.g. 50000; built if missing)"
    )
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help="the cidash starts to measure, comma-separated (default: all: " + ",".join(KINDS) + ")",
    )
    parser.add_argument("--before", type=Path, help="another checkout's src/ to run side by side (alternating)")
    parser.add_argument(
        "--compile-each-run",
        action="store_true",
        help="no bytecode cache: every child compiles its imports from source (PYTHONDONTWRITEBYTECODE)",
    )
    parser.add_argument(
        "--size",
        default="80x24",
        help="the children's terminal, COLUMNSxLINES (default 80x24, the headless default); 'none' leaves "
        "COLUMNS/LINES unset (Rich and the headless driver then disagree on the height: a resize at start)",
    )
    args = parser.parse_args()
    global BYTECODE_CACHE, TERMINAL_SIZE  # noqa: PLW0603 (the children's environment, set once from the command line)
    BYTECODE_CACHE = not args.compile_each_run
    if args.size == "none":
        TERMINAL_SIZE = None
    else:
        columns, _, lines = args.size.partition("x")
        TERMINAL_SIZE = (int(columns), int(lines))
    print("children run " + ("from cached bytecode" if BYTECODE_CACHE else "compiling every import"), flush=True)
    print(f"children's terminal: {'unset' if TERMINAL_SIZE is None else args.size}", flush=True)
    sides: list[tuple[str, Path | None]] = [("after", None)]
    if args.before:
        sides.append(("before", args.before.resolve()))
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    db = store_for(args.pipelines)
    if args.cli:
        cli_start(db, args.runs, sides)
    elif not args.filter_only:
        start_up(db, args.runs, sides, tuple(k for k in KINDS if k in args.kinds.split(",")))
    if not args.no_filter:
        fdb = store_for(args.filter_pipelines) if args.filter_pipelines else db
        for side, src in sides:
            times, rss = filter_run(store_for_side(fdb, src), src)
            label = f" ({side})" if len(sides) > 1 else ""
            print(f"filter on Pipelines{label}, {fdb.name} (apply -> first page on screen, median of 5):")
            for name, ms in times.items():
                print(f"  {name:30s} {ms:7.1f} ms  (target <= 100 ms)")
            print(f"  peak RSS of that App        {rss:7.0f} MB")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    return 0


def store_for(pipelines: int) -> Path:
    """``bench/.corpus/tui-<pipelines>.db``, built when missing."""
    CORPUS.mkdir(exist_ok=True)
    db = CORPUS / f"tui-{pipelines}.db"
    if not db.exists():
        t0 = time.perf_counter()
        tmp = db.with_suffix(".tmp.db")
        for leftover in CORPUS.glob(tmp.name + "*"):
            leftover.unlink()
        build_store(tmp, pipelines)
        tmp.rename(db)
        print(f"built {db} in {time.perf_counter() - t0:.1f} s", flush=True)
    from cidash.store import Store

    with Store.open(db) as store:  # read-write: a store built by older code is migrated first
        counts = store.counts()
    print(
        f"store {db.name}: {counts.get('pipelines')} pipelines, {counts.get('jobs')} jobs, "
        f"{counts.get('job_facts')} parsed logs",
        flush=True,
    )
    return db


def schema_of(src: Path | None) -> int:
    """The store schema version the cidash at ``src`` (None: this checkout's) reads."""
    if src is None:
        from cidash.store import SCHEMA_VERSION

        return SCHEMA_VERSION
    env = dict(os.environ, PYTHONPATH=str(src))
    code = "from cidash.store import SCHEMA_VERSION; print(SCHEMA_VERSION)"
    return int(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True, text=True).stdout)


def store_for_side(db: Path, src: Path | None) -> Path:
    """``db`` as the cidash at ``src`` reads it: ``db`` itself, or (``--before`` code older than a migration made
    only of indexes and added columns, which it would refuse as "newer than this cidash understands") a copy at
    its schema, the later indexes dropped (the added columns stay: older code does not read them), kept next to it
    as ``tui-<N>.v<version>.db``."""
    import re
    import sqlite3

    from cidash.store import MIGRATIONS

    version = schema_of(src)
    if version >= schema_of(None):
        return db
    out = db.with_name(f"{db.stem}.v{version}.db")
    if out.exists() and out.stat().st_mtime >= db.stat().st_mtime:
        return out
    drops = []
    remakes = []  # the indexes of its schema a later migration dropped (replaced): made again, as it made them
    made_by = {
        m[1]: statement
        for _, _, sql in MIGRATIONS
        for statement in (part.strip() for part in sql.split(";"))
        if (m := re.fullmatch(r"CREATE INDEX (\w+) ON .*", statement, re.DOTALL))
    }
    for number, _, sql in MIGRATIONS:
        if number <= version:
            continue
        for statement in filter(None, (part.strip() for part in sql.split(";"))):
            if re.match(r"(ALTER TABLE \w+ ADD COLUMN|UPDATE) ", statement):
                continue  # an added column (and its backfill): older code does not read it
            if dropped := re.fullmatch(r"DROP INDEX (\w+)", statement):
                remakes.append(made_by[dropped[1]])
                continue
            made = re.fullmatch(r"CREATE INDEX (\w+) ON .*", statement, re.DOTALL)
            if made is None:
                raise SystemExit(f"{src}: its store schema {version} is older than migration {number}, not an index")
            drops.append(made[1])
    tmp = out.with_suffix(".tmp.db")
    source, copy = sqlite3.connect(db), sqlite3.connect(tmp)
    with copy:
        source.backup(copy)
        for name in drops:
            copy.execute(f"DROP INDEX {name}")
        for statement in remakes:
            copy.execute(statement)
        copy.execute(f"PRAGMA user_version = {version}")
    source.close()
    copy.close()
    tmp.rename(out)
    return out


TARGET_MB = 150.0
#: The cidash starts ``start_up`` measures (``--kinds``), in the order of its table.
KINDS = ("warm", "cold", "cold1", "complete")


def start_up(db: Path, n_runs: int, sides: list[tuple[str, Path | None]], kinds: tuple[str, ...] = KINDS) -> None:
    """Bare, then each side's cold start, cold start to the complete Health (baselines and series; the same
    moment for code that shows no Health before it is complete) and warm start, alternating, ``n_runs`` times;
    medians. ``kinds``: which of the cidash starts to measure (the bare app always)."""
    runs: dict[str, list[tuple[float, float, float]]] = {"bare": []}
    for side, _ in sides:
        for kind in kinds:
            runs[f"{kind} {side}"] = []
    with tempfile.TemporaryDirectory() as tmp:
        spawn(["--child-bare"])  # not measured: compiles the bytecode the measured runs read
        dbs = {side: store_for_side(db, src) for side, src in sides}
        for side, src in sides:
            spawn(["--child-cidash", str(dbs[side]), str(Path(tmp) / "warm-up")], src)
            if "warm" in kinds and "complete" not in kinds:  # not measured: leaves the Health cache warm runs read
                spawn(["--child-cidash", str(dbs[side]), str(Path(tmp) / f"cache-{side}"), "complete"], src)
        for _ in range(n_runs):
            runs["bare"].append(spawn(["--child-bare"]))
            for side, src in sides:
                cache = Path(tmp) / f"cache-{side}"
                for kind in ("cold", "cold1", "complete"):
                    if kind not in kinds:
                        continue
                    for f in cache.glob("*"):
                        f.unlink()
                    until = ["complete"] if kind == "complete" else []
                    # cold1: the first Health computed in the dashboard's own process (no helper process)
                    env = {"CIDASH_FIRST_HEALTH_PROCESS": "0"} if kind == "cold1" else None
                    runs[f"{kind} {side}"].append(
                        spawn(["--child-cidash", str(dbs[side]), str(cache), *until], src, env)
                    )
                if "warm" not in kinds:
                    continue
                if not any(cache.glob("health-*.json")):
                    raise SystemExit(f"{side}: no Health cache after a complete start: the warm run would be cold")
                runs[f"warm {side}"].append(spawn(["--child-cidash", str(dbs[side]), str(cache)], src))
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in runs.items()}
    bw, bc, bm = med["bare"]
    print(f"start-up to a populated Health screen (median of {n_runs}, headless, process spawn included):")
    print(f"  bare Textual app             {bw:6.2f} s wall  {bc:6.2f} s CPU  {bm:5.0f} MB peak")
    for side, _ in sides:
        for kind, text in (
            ("warm", "warm Health cache"),
            ("cold", "cold (computed)  "),
            ("cold1", "cold, one process"),
            ("complete", "cold, complete   "),
        ):
            if kind not in kinds:
                continue
            w, c, m = med[f"{kind} {side}"]
            label = f"{text} {side if len(sides) > 1 else ''}".rstrip()
            print(
                f"  cidash, {label:22s} {w:6.2f} s wall  {c:6.2f} s CPU  {m:5.0f} MB peak  "
                f"({w / bw:.2f}x / {c / bc:.2f}x bare; target <= 2x, <= {TARGET_MB:g} MB)"
            )


if __name__ == "__main__":
    raise SystemExit(main())
