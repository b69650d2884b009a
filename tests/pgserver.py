"""A throw-away PostgreSQL server for the store tests (and ``bench/store_backends.py``).

Decision: Debian's ``postgresql`` package (PostgreSQL 15; ``.ci/run`` installs it when it runs as root), not a
wheel that bundles server binaries: it is the server people run, it comes from the distribution's registry, and
nothing is downloaded at test time. The binaries are looked up on ``PATH`` (``initdb``, ``postgres``) and in
``/usr/lib/postgresql/<version>/bin`` (where Debian puts them, off ``PATH``); ``CIDASH_PG_BIN`` names another
directory.

The server runs in a new temporary directory, listens on 127.0.0.1 only (a free port; the Unix socket lives in
the data directory), trusts local connections, runs with ``fsync=off`` (throw-away data) and is stopped and
removed at the end. PostgreSQL refuses to run as root, so when the tests run as root (CI does) ``initdb`` and
``postgres`` run as the unprivileged ``nobody`` user (``subprocess``'s ``user=``/``group=``), and the temporary
directory is handed to that user.

Missing binaries: the PostgreSQL tests skip with the reason, except with ``CI`` set, where a skipped store test
would hide a broken CI machine: there they fail.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UNPRIVILEGED_USER = "nobody"


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres`` (None: PostgreSQL is not installed)."""
    override = os.environ.get("CIDASH_PG_BIN")
    candidates = [Path(override)] if override else []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    candidates.extend(Path(p) for p in versions)
    for c in candidates:
        if (c / "initdb").is_file() and (c / "postgres").is_file():
            return c
    return None


MISSING = "PostgreSQL server binaries (initdb, postgres) not found: apt-get install postgresql"


def require_bin_dir() -> Path:
    """The binaries' directory, else skip the test with the reason, or fail it when ``CI`` is set (the project
    rule: in CI a skipped test hides a broken machine)."""
    import pytest

    bin_dir = find_bin_dir()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set and {MISSING}", pytrace=False)
        pytest.skip(MISSING)
    return bin_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    bin_dir: Path
    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"postgresql://cidash@127.0.0.1:{self.port}/cidash"

    def schema_url(self, schema: str) -> str:
        """A URL whose connections use ``schema`` (created here) as their search path: one clean store per test."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        return f"{self.url}?options=-csearch_path%3D{schema}"

    def drop_schema(self, schema: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _as_user() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    return {"user": UNPRIVILEGED_USER, "group": "nogroup", "extra_groups": []}


def start_server(bin_dir: Path) -> PgServer:
    """initdb + postgres in a new temporary directory; returns once it accepts connections."""
    root = Path(tempfile.mkdtemp(prefix="cidash-pg-"))
    data = root / "data"
    data.mkdir()
    who = _as_user()
    if who:
        import pwd

        uid = pwd.getpwnam(UNPRIVILEGED_USER).pw_uid
        for p in (root, data):
            os.chown(p, uid, -1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "cidash", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        cwd=root,
        env=env,
        **who,
    )
    last_error = ""
    for _ in range(5):
        port = _free_port()
        log = open(root / "server.log", "ab")  # noqa: SIM115 (the server writes it until it stops)
        process = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={data}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
            **who,
        )
        log.close()
        server = PgServer(bin_dir, root, port, process)
        if _wait_ready(server):
            _create_database(server)
            return server
        last_error = (root / "server.log").read_text(errors="replace")[-2000:]
        if process.poll() is None:
            process.kill()
            process.wait()
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start: {last_error}")


def _wait_ready(server: PgServer, timeout: float = 60.0) -> bool:
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            psycopg.connect(f"postgresql://cidash@127.0.0.1:{server.port}/postgres", connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            time.sleep(0.1)
    return False


def _create_database(server: PgServer) -> None:
    import psycopg

    with psycopg.connect(f"postgresql://cidash@127.0.0.1:{server.port}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE cidash")


def new_schema_name() -> str:
    return "t_" + uuid.uuid4().hex[:16]


@contextlib.contextmanager
def running_server() -> Iterator[PgServer]:
    """For scripts (the bench): a server for the ``with`` block; RuntimeError when PostgreSQL is not installed."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    server = start_server(bin_dir)
    try:
        yield server
    finally:
        server.stop()
