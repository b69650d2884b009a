"""Regenerate screenshots/*.svg: the dashboard over the simulated GitLab, clock frozen, terminal 120x36.

    .venv/bin/python scripts/screenshots.py [--out screenshots] [--days 20] [--per-day 5]

Starts the simulator on a seeded scenario, syncs it into a throwaway store with the real sync engine, opens the
App with the clock frozen at the scenario's end and saves one SVG per screen (same input, same pictures).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
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
    with tempfile.TemporaryDirectory() as tmp, SimulatedGitLab(scenario) as sim:
        conn = Connection(url=sim.url, token=Secret(sim.token), max_rps=0, concurrency=6, projects=(sim.project_path,))

        def factory() -> GitLabClient:
            return GitLabClient(conn)

        with Store.open(Path(tmp) / "store.db") as store:
            with factory() as client:
                options = SyncOptions.from_config(Config(), since="all", now=now)
                print(sync_project(client, store, sim.project_path, options=options, now=now).summary())
            app = CidashApp(
                store,
                Config(),
                clock=lambda: now,
                actions=CoreActions(factory, store, Config(), clock=lambda: now),
                log_fetcher=log_fetcher(factory),
                poll=False,
                source="demo",
                cache_dir=Path(tmp) / "cache",
            )
            for path in asyncio.run(shoot(app, out)):
                print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
