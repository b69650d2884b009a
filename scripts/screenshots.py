"""Regenerate screenshots/*.svg: the dashboard over the simulated GitLab, clock frozen, terminal 120x36.

    .venv/bin/python scripts/screenshots.py [--out screenshots] [--days 20] [--per-day 5]

Starts the simulator on a seeded scenario, syncs it into a throwaway store with the real sync engine, opens the
App with the clock frozen at the scenario's end and saves one SVG per screen (same input, same pictures).

Then the same for a failing project (:data:`FAILING`: the Alpine image grew to 420 MB, its build fails 30 % of
the time, nearly every job pulls the image): its Health (three FAILs), its Caches tab on a stale key (one that
fell back to ``default``) and the dense log of a failed image build on its first error, at 120x36 and 80x24
(``failing-*.svg`` and ``failing-*-80x24.svg``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from textual.pilot import Pilot
from textual.worker import WorkerState

from cidash.config import Config
from cidash.connection import Connection, Secret
from cidash.remote import GitLabClient
from cidash.sim import Scenario, SimulatedGitLab
from cidash.store import Store
from cidash.sync import SyncOptions, sync_project
from cidash.tui.adapters import CoreActions, log_fetcher
from cidash.tui.app import CidashApp

SIZE = (120, 36)
NARROW = (80, 24)


def failing_scenario(days: int, per_day: int) -> Scenario:
    """The knobs of :class:`Scenario` that make the migration fail three criteria."""
    from cidash.sim.scenario import MB

    return Scenario(
        days=days,
        pipelines_per_day=per_day,
        migration_day=days // 2 + 1,
        alpine_size=420 * MB,
        migrated_build_failure_rate=0.3,
        pull_probability=0.95,
        with_docs_project=False,
    )


async def settle(pilot: Pilot[None], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3 and time.monotonic() < deadline:
        busy = any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in pilot.app.workers)
        quiet = 0 if busy else quiet + 1
        await pilot.pause(0.05)


async def shoot(app: CidashApp, out: Path) -> list[Path]:
    written: list[Path] = []

    def save(name: str) -> None:
        path = out / f"{name}.svg"
        path.write_text(app.export_screenshot(title=f"cidash — {name}"), encoding="utf-8")
        written.append(path)

    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key, name in (("1", "health"), ("2", "pipelines"), ("3", "startup"), ("4", "caches"), ("5", "images")):
            await pilot.press(key)
            await settle(pilot)
            save(name)
        await pilot.press("6")
        await settle(pilot)
        save("compare")
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        save("pipeline")
        await pilot.press("down", "down", "down", "enter")
        await settle(pilot)
        save("joblog")
        await pilot.press("escape", "escape", "1", "enter")
        await settle(pilot)
        save("evidence")
        await pilot.press("escape", "b")
        await settle(pilot)
        save("rebuild")
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        save("help")
    return written


async def shoot_failing(app: CidashApp, store: Store, out: Path, size: tuple[int, int], suffix: str) -> list[Path]:
    """The failing project's Health, a stale cache on the Caches tab, a failed build's dense log."""
    written: list[Path] = []

    def save(name: str) -> None:
        path = out / f"failing-{name}{suffix}.svg"
        path.write_text(app.export_screenshot(title=f"cidash — failing {name}"), encoding="utf-8")
        written.append(path)

    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        save("health")
        await pilot.press("4")
        await settle(pilot)
        save("caches")  # the first rows are the keys that fell back to `default`: stale, in red
        project = store.projects()[0]
        failed = store.jobs(project.id, name="build-ci-image", status="failed")[-1]
        app.open_pipeline(failed.pipeline_id)
        await settle(pilot)
        screen = app.screen
        index = next(i for i, r in enumerate(screen.rows) if r.job.id == failed.id)  # type: ignore[attr-defined]
        screen.query_one("#jobs-table").move_cursor(row=index)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("E")  # the first error line
        await settle(pilot)
        save("joblog")
    return written


def synced_app(factory: Callable[[], GitLabClient], store: Store, now: datetime, tmp: str) -> CidashApp:
    return CidashApp(
        store,
        Config(),
        clock=lambda: now,
        actions=CoreActions(factory, store, Config(), clock=lambda: now),
        log_fetcher=log_fetcher(factory),
        poll=False,
        source="demo",
        cache_dir=Path(tmp) / "cache",
    )


@contextlib.contextmanager
def synced(scenario: Scenario) -> Iterator[tuple[Store, Callable[[], GitLabClient], str]]:
    """The scenario served by the simulator and synced into a temporary store: (store, client factory, tmp dir)."""
    now = scenario.end
    with tempfile.TemporaryDirectory() as tmp, SimulatedGitLab(scenario) as sim:
        conn = Connection(url=sim.url, token=Secret(sim.token), max_rps=0, concurrency=6, projects=(sim.project_path,))

        def factory() -> GitLabClient:
            return GitLabClient(conn)

        with Store.open(Path(tmp) / "store.db") as store:
            with factory() as client:
                options = SyncOptions.from_config(Config(), since="all", now=now)
                print(sync_project(client, store, sim.project_path, options=options, now=now).summary())
            yield store, factory, tmp


def failing(out: Path, days: int, per_day: int) -> None:
    scenario = failing_scenario(days, per_day)
    now = scenario.end
    with synced(scenario) as (store, factory, tmp):
        for size, suffix in ((SIZE, ""), (NARROW, "-80x24")):
            app = synced_app(factory, store, now, tmp)
            for path in asyncio.run(shoot_failing(app, store, out, size, suffix)):
                print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="screenshots")
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--per-day", type=int, default=5)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scenario = Scenario(days=args.days, pipelines_per_day=args.per_day, migration_day=args.days // 2 + 1)
    now = scenario.end
    with synced(scenario) as (store, factory, tmp):
        app = synced_app(factory, store, now, tmp)
        for path in asyncio.run(shoot(app, out)):
            print(f"wrote {path}")
    failing(out, args.days, args.per_day)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
