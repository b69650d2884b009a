"""Shared set-up for the ``cidash serve`` tests: a recent simulated group, its config, an in-process server."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cidash.config import load_config
from cidash.connection import resolve_connection
from cidash.serve.app import ServeApp, ServeOptions
from cidash.serve.eventlog import EventLog
from cidash.sim import Scenario, SimulatedGitLab

SECRET = "webhook-s3cret-value"


def recent_scenario(**kw: Any) -> Scenario:
    """4 days x 5 pipelines ending at today's midnight: inside every default window of the real clock."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    base: dict[str, Any] = {
        "days": 4,
        "pipelines_per_day": 5,
        "migration_day": 3,
        "start": midnight - timedelta(days=4),
    }
    return Scenario(**{**base, **kw})


def write_config(tmp_path: Path, sim: SimulatedGitLab) -> Path:
    token = tmp_path / "token"
    token.write_text(sim.token + "\n", encoding="utf-8")
    config = tmp_path / "cidash.toml"
    config.write_text(
        "[gitlab]\n"
        f'url = "{sim.url}"\n'
        f'token_file = "{token}"\n'
        "max_rps = 0\n"
        "\n[store]\n"
        f'path = "{tmp_path / "serve.db"}"\n'
        '\n[sync]\nsince = "all"\n',
        encoding="utf-8",
    )
    return config


@dataclass
class Running:
    app: ServeApp
    url: str
    log: io.StringIO
    db: Path


@contextmanager
def serving(
    sim: SimulatedGitLab,
    tmp_path: Path,
    *,
    group: str | None = "platform",
    projects: tuple[str, ...] = (),
    db: str | None = None,
    **kw: Any,
) -> Iterator[Running]:
    config_file = write_config(tmp_path, sim)
    config = load_config(str(config_file))
    connection = resolve_connection(config, projects=projects, group=group, env={})
    opts: dict[str, Any] = {
        "listen": ("127.0.0.1", 0),
        "interval": 0.5,
        "max_interval": 2.0,
        "debounce": 0.05,
        "webhook_secret": SECRET,
        "stop_timeout": 20.0,
    }
    opts.update(kw)
    stream = io.StringIO()
    store = db or str(tmp_path / "serve.db")
    app = ServeApp(config, connection, store, ServeOptions(**opts), EventLog("json", stream))
    app.start()
    try:
        yield Running(app, f"http://127.0.0.1:{app.port}", stream, tmp_path / "serve.db")
    finally:
        app.stop()


def request(
    url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None, method: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``predicate`` (a bound for a hung test, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_ready(url: str, timeout: float = 90.0) -> None:
    wait_for(lambda: request(url + "/readyz")[0] == 200, timeout, "/readyz")


def pipeline_hook(project_id: int, path: str) -> bytes:
    """A GitLab ``Pipeline Hook`` body (the fields GitLab's pipeline data builder sends that matter here)."""
    return json.dumps(
        {
            "object_kind": "pipeline",
            "object_attributes": {"id": 99999, "ref": "main", "status": "success", "sha": "0" * 40},
            "project": {"id": project_id, "name": path.rsplit("/", 1)[-1], "path_with_namespace": path},
            "builds": [],
        }
    ).encode()


def job_hook(project_id: int, path: str) -> bytes:
    """A GitLab ``Job Hook`` body (``object_kind: build``, ``project_id``, ``project_name``)."""
    return json.dumps(
        {
            "object_kind": "build",
            "build_id": 12345,
            "build_name": "test",
            "build_status": "success",
            "project_id": project_id,
            "project_name": path.replace("/", " / "),
        }
    ).encode()


def log_lines(running: Running) -> list[dict[str, Any]]:
    return [json.loads(line) for line in running.log.getvalue().splitlines() if line.strip()]
