"""Shared test set-up: nothing here may touch the developer's own config, store or the network."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point every platformdirs location and GitLab variable away from the real user."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    for var in (
        "GITLAB_URL",
        "GITLAB_TOKEN",
        "CI_SERVER_URL",
        "CI_JOB_TOKEN",
        "PYTHON_GITLAB_CFG",
        "CIDASH_DEBUG",
        "GITLAB_HOST",
        "GL_HOST",
        "GLAB_CONFIG_DIR",
        "CIDASH_CONFIG",
        "CIDASH_DB",
        "NO_COLOR",
    ):
        monkeypatch.delenv(var, raising=False)
    # System-wide files and the checkout's own glab config are never read by tests.
    monkeypatch.setattr("cidash.connection.SYSTEM_PYTHON_GITLAB_CFG", tmp_path / "etc" / "python-gitlab.cfg")
    monkeypatch.setattr("cidash.connection.GLAB_REPOSITORY", tmp_path / "repository")
    yield


# --- simulated GitLab (cidash.sim) -----------------------------------------------------------------------------
# `sim`: the default 30-day scenario (~360 pipelines), fresh per test (mutations do not leak between tests).
# `small_sim`: 4 days x 5 pipelines (migration on day 3): quick to sync, same story.
from typing import TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:
    from cidash.sim import SimulatedGitLab


@pytest.fixture
def sim() -> Iterator[SimulatedGitLab]:
    from cidash.sim import SimulatedGitLab

    with SimulatedGitLab() as server:
        yield server


@pytest.fixture
def small_sim() -> Iterator[SimulatedGitLab]:
    from cidash.sim import Scenario, SimulatedGitLab

    with SimulatedGitLab(Scenario(days=4, pipelines_per_day=5, migration_day=3)) as server:
        yield server


# --- PostgreSQL (tests/pgserver.py) ----------------------------------------------------------------------------
# `pg_server`: one throw-away server per test process (skips without PostgreSQL; fails instead when CI is set).
# `pg_url`: a fresh, empty schema on it per test, as a store URL. `store_target`: an SQLite file or `pg_url`,
# for tests parametrised over both backends with `@pytest.mark.parametrize("backend", BACKENDS, indirect=True)`.
if TYPE_CHECKING:
    from pgserver import PgServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    from pgserver import require_bin_dir, start_server

    server = start_server(require_bin_dir())
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    from pgserver import new_schema_name

    schema = new_schema_name()
    url = pg_server.schema_url(schema)
    yield url
    pg_server.drop_schema(schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where a test's store lives: a new SQLite file, or a new PostgreSQL schema (per ``backend``)."""
    if backend == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return str(tmp_path / "store.db")
