"""No bad input ends in "internal error": a corpus of bad configurations and options through every command.

Each case must give exit 2 and exactly one line on standard error that names the file or the option, never a
traceback and never "internal error" (the CLI's last line of defence, which a test must never see). Everything
runs in process through :func:`cidash.cli.main`, against files under ``tmp_path`` and, for the commands that would
talk to GitLab, a URL on 127.0.0.1 that nothing is asked of (every case fails before the first request).
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cidash.cli import main
from cidash.config import load_config
from cidash.errors import ConfigError

GOOD_CONFIG = b"""\
[gitlab]
url = "http://127.0.0.1:9"
projects = ["platform/app"]
timeout = 30

[sync]
since = "30d"
registry_refresh_minutes = 60

[criteria]
window_days = 30
min_n = 10
image_size_mb = 215.0

[tui]
refresh_seconds = 60
"""

#: (case id, cidash.toml bytes) that load_config itself must refuse.
LOAD_ERRORS: list[tuple[str, bytes]] = [
    ("not-utf8", b'[gitlab]\nurl = "\xff\xfe"\n'),
    ("latin1", '[image]\nbuild_job = "b\xe9"\n'.encode("latin-1")),
    ("nul", b'[image]\nbuild_job = "a\x00b"\n'),
    ("control-in-string", b'[image]\nbuild_job = "a\\u001b]0;x\\u0007"\n'),
    ("timeout-0", b"[gitlab]\ntimeout = 0\n"),
    ("timeout-negative", b"[gitlab]\ntimeout = -1\n"),
    ("timeout-nan", b"[gitlab]\ntimeout = nan\n"),
    ("timeout-inf", b"[gitlab]\ntimeout = inf\n"),
    ("registry-refresh-inf", b"[sync]\nregistry_refresh_minutes = inf\n"),
    ("registry-refresh-negative", b"[sync]\nregistry_refresh_minutes = -5\n"),
    ("window-days-1e9", b"[criteria]\nwindow_days = 1e9\n"),
    ("window-days-huge", b"[criteria]\nwindow_days = 1000000000\n"),
    ("window-days-0", b"[criteria]\nwindow_days = 0\n"),
    ("window-days-negative", b"[criteria]\nwindow_days = -5\n"),
    ("min-n-negative", b"[criteria]\nmin_n = -1\n"),
    ("image-size-nan", b"[criteria]\nimage_size_mb = nan\n"),
    ("reliability-over-100", b"[criteria]\nimage_build_reliability_pct = 150\n"),
    ("concurrency-0", b"[gitlab]\nconcurrency = 0\n"),
    ("max-rps-inf", b"[gitlab]\nmax_rps = inf\n"),
    ("refresh-negative", b"[tui]\nrefresh_seconds = -1\n"),
    ("deeply-nested", b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n"),
    ("section-as-value", b"gitlab = 1\n"),
    ("number-as-string", b'[gitlab]\ntimeout = "30"\n'),
    ("date-as-url", b"[gitlab]\nurl = 2026-01-01\n"),
    ("unknown-key", b"[gitlab]\ntimeoutt = 3\n"),
    ("token-in-file", b'[gitlab]\ntoken = "glpat-x"\n'),
    ("bad-toml", b"[gitlab\nurl=\n"),
    ("bom-and-junk", b"\xef\xbb\xbf[gitlab]\n\x01\n"),
]

#: (case id, cidash.toml bytes) that load but name a URL no connection can use.
URL_ERRORS: list[tuple[str, bytes]] = [
    ("url-ipv6-unclosed", b'[gitlab]\nurl = "http://[::1"\nprojects = ["a/b"]\n'),
    ("url-port-range", b'[gitlab]\nurl = "http://127.0.0.1:99999"\nprojects = ["a/b"]\n'),
    ("url-no-host", b'[gitlab]\nurl = "http://"\nprojects = ["a/b"]\n'),
    ("url-control", b'[gitlab]\nurl = "http://127.0.0.1\\u001b[2J"\nprojects = ["a/b"]\n'),
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory with the files the commands read (never the developer's own)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-corpus-not-a-real-token")
    (tmp_path / "a.txt").write_text("a\n")
    (tmp_path / "ci.yml").write_text("job:\n  script: [echo]\n")
    yield tmp_path


def config_commands(cfg: Path, db: Path) -> list[list[str]]:
    """Every command that reads a config file, with that file."""
    c = ["--config", str(cfg)]
    d = ["--db", str(db)]
    return [
        ["tui", *c, *d, "--offline"],
        ["key", *c],
        ["lint", "ci.yml", *c],
        ["sync", *c, *d],
        ["prune", "--before", "30d", *c, *d],
        ["check", *c, *d],
        ["compare", "--baseline", "#1..#2", "--candidate", "#3..#4", *c, *d],
        ["export", *c, *d],
        ["rebuild", "--dry-run", *c, *d],
        ["retry", "7", "--dry-run", *c, *d],
    ]


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    _, err = capsys.readouterr()
    return code, err


def assert_one_line(code: int, err: str, argv: list[str], names: tuple[str, ...]) -> None:
    assert "internal error" not in err and "Traceback" not in err, (argv, err)
    assert code == 2, (argv, code, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), (argv, err)
    assert any(name in err for name in names), (argv, err)


@pytest.mark.parametrize(("case", "content"), LOAD_ERRORS, ids=[c for c, _ in LOAD_ERRORS])
def test_bad_config_through_every_command(
    workdir: Path, capsys: pytest.CaptureFixture[str], case: str, content: bytes
) -> None:
    cfg = workdir / f"{case}.toml"
    cfg.write_bytes(content)
    with pytest.raises(ConfigError):
        load_config(cfg)
    for argv in config_commands(cfg, workdir / "store.db"):
        code, err = run(capsys, argv)
        # the dashboard refuses to start without a terminal before it reads anything; the rest name the file
        names = ("terminal",) if argv[0] == "tui" else (cfg.name,)
        assert_one_line(code, err, argv, names)
        assert not (workdir / "store.db").exists() or argv[0] in ("rebuild", "retry", "sync", "prune")


@pytest.mark.parametrize(("case", "content"), URL_ERRORS, ids=[c for c, _ in URL_ERRORS])
def test_bad_url_through_every_command_that_connects(
    workdir: Path, capsys: pytest.CaptureFixture[str], case: str, content: bytes
) -> None:
    cfg = workdir / f"{case}.toml"
    cfg.write_bytes(content)
    c = ["--config", str(cfg), "--db", str(workdir / "store.db")]
    for argv in (["sync", *c], ["check", "--sync", *c], ["rebuild", "--dry-run", *c], ["retry", "7", "--dry-run", *c]):
        code, err = run(capsys, argv)
        assert_one_line(code, err, argv, (cfg.name,))


def _special_files(root: Path) -> dict[str, Path]:
    fifo = root / "fifo"
    os.mkfifo(fifo)
    directory = root / "dir"
    directory.mkdir()
    sock_path = root / "sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(sock_path))
    sock.close()  # the socket file stays
    return {"fifo": fifo, "directory": directory, "socket": sock_path}


def bad_options(root: Path) -> list[tuple[list[str], tuple[str, ...]]]:
    """(argv, what the one line must name)."""
    db = ["--db", str(root / "store.db")]
    url = ["--url", "http://127.0.0.1:9", "--project", "a/b"]
    out: list[tuple[list[str], tuple[str, ...]]] = [
        (["sync", "--url", "http://[::1", "--project", "a/b", *db], ("--url",)),
        (["sync", "--url", "ftp://127.0.0.1", "--project", "a/b", *db], ("http",)),
        (["check", "--sync", "--url", "http://[::1", *db], ("--url",)),
        (["sync", *url, "--since", "99999999d", *db], ("--since",)),
        (["sync", *url, "--since", "1e400d", *db], ("--since",)),
        (["sync", *url, "--since", "yesterday", *db], ("--since",)),
        (["sync", *url, "--max-rps", "nan", *db], ("--max-rps",)),
        (["sync", *url, "--max-rps", "-1", *db], ("--max-rps",)),
        (["sync", *url, "--concurrency", "0", *db], ("--concurrency",)),
        (["sync", *url, "--max-rps", "inf", *db], ("--max-rps",)),
        (["export", "--since", "99999999d", *db], ("--since",)),
        (["export", "--since", "99999999h", *db], ("--since",)),
        (["export", "--now", "not-a-date", *db], ("--now",)),
        (["check", "--now", "2026-13-45", *db], ("--now",)),
        (["check", "--criterion", "nope", *db], ("criterion",)),
        (["check", "--format", "yaml", *db], ("--format",)),
        (["prune", "--before", "999999999999d", *db], ("--before",)),
        (["prune", "--before", "all", *db], ("--before",)),
        (["prune", "--before", "nan", *db], ("--before",)),
        (["compare", "--baseline", "#1..#2", "--candidate", "#3..#4", "--resamples", "nan", *db], ("--resamples",)),
        (["compare", "--baseline", "#1..#2", "--candidate", "#3..#4", "--resamples", "0", *db], ("--resamples",)),
        (["compare", "--baseline", "garbage!!", "--candidate", "#3..#4", *db], ("garbage",)),
        (["tui", "--refresh", "nan", *db], ("--refresh",)),
        (["tui", "--refresh", "inf", *db], ("--refresh",)),
        (["demo", "--time-scale", "nan"], ("--time-scale",)),
        (["demo", "--time-scale", "0"], ("--time-scale",)),
        (["simulate", "--port", "99999"], ("--port",)),
        (["simulate", "--days", "-1"], ("--days",)),
        (["rebuild", *url, "--follow-timeout", "nan", *db], ("--follow-timeout",)),
        (["rebuild", *url, "--follow-timeout", "-1", *db], ("--follow-timeout",)),
        (["rebuild", *url, "--var", "no-equals-sign", *db], ("no-equals-sign",)),
        (["retry", "-5", *url, *db], ("JOB_ID", "job")),
        (["trace", str(root / "missing.log")], ("missing.log",)),
        (["trace", str(root)], (str(root),)),
        (["key", "missing.txt"], ("missing.txt",)),
        (["lint", str(root / "missing.yml")], ("missing.yml",)),
        (["--no-such-option"], ("--no-such-option",)),
    ]
    for kind, path in _special_files(root).items():
        out.append((["export", "--output", str(path), *db], (str(path), kind)))
        out.append((["key", "a.txt", "--write", str(path)], (str(path),)))
    out.append((["export", "--output", str(root / "no" / "such" / "dir.json"), *db], ("--output",)))
    return out


def test_bad_options_through_every_command(
    workdir: Path, capsys: pytest.CaptureFixture[str], synced_store: Path
) -> None:
    db_args = ["--db", str(synced_store)]
    for argv, names in bad_options(workdir):
        if argv[0] in ("export",) and "--output" in argv:
            argv = [*argv[:-2], *db_args]  # a store with data: the refusal is about the target, not the store
        code, err = run(capsys, argv)
        assert_one_line(code, err, argv, names)
    # nothing was replaced: the FIFO, directory and socket are still what they were
    assert (workdir / "fifo").is_fifo() and (workdir / "dir").is_dir() and (workdir / "sock").is_socket()


def test_control_characters_in_ci_yaml(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        "bell.yml": b'job:\n  script: ["a\x07b"]\n',
        "escape.yml": b'job:\n  cache:\n    key:\n      files: ["\x1b]0;pwned\x07"]\n',
        "nul.yml": b"job:\n  script: x\x00\n",
        "latin1.yml": b"job:\n  script: caf\xe9\n",
        "nested.yml": b"a: " + b"[" * 3000 + b"]" * 3000 + b"\n",
    }
    for name, content in cases.items():
        (workdir / name).write_bytes(content)
        code, err = run(capsys, ["lint", name])
        assert_one_line(code, err, ["lint", name], (name,))
        assert "\x1b" not in err and "\x07" not in err


def test_fuzzed_config_files_never_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """1,500 seeded mutations of a valid cidash.toml (bytes flipped, inserted, cut; non-UTF-8, control bytes):
    load_config returns a Config or raises ConfigError, nothing else; a sample goes through the CLI too."""
    rng = random.Random(12)
    alphabet = [b"\xff", b"\xfe", b"\x00", b"\x1b", b"\x07", b"\x9b", b"\xc3", b"\x80", b"[", b"]", b'"', b"=", b"\n"]
    alphabet += [b"nan", b"inf", b"-1", b"1e999", b"0", b"'''", b'"""', b"\\u0000", b"\\"]
    path = tmp_path / "fuzz.toml"
    refused = 0
    for i in range(1500):
        data = bytearray(GOOD_CONFIG)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data) + 1)
            op = rng.random()
            if op < 0.4:
                data[pos:pos] = rng.choice(alphabet)
            elif op < 0.7 and pos < len(data):
                data[pos] = rng.randrange(256)
            elif op < 0.85:
                del data[pos : pos + rng.randint(1, 8)]
            else:
                data = data[:pos]
        path.write_bytes(bytes(data))
        try:
            load_config(path)
        except ConfigError as exc:
            refused += 1
            assert "fuzz.toml" in exc.one_line() and "\n" not in exc.one_line()
        if i % 50 == 0:
            code, err = run(capsys, ["check", "--config", str(path), "--db", str(tmp_path / "none.db")])
            assert "internal error" not in err and "Traceback" not in err, (bytes(data), err)
            assert code == 2 and len(err.splitlines()) == 1, (bytes(data), err)
    assert refused > 500  # the corpus really is bad input


@pytest.fixture(scope="module")
def synced_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small store with one synced project (for the cases that get as far as writing an export)."""
    from cidash.config import Config
    from cidash.connection import Connection, Secret
    from cidash.remote import GitLabClient
    from cidash.sim import Scenario, SimulatedGitLab
    from cidash.store import Store
    from cidash.sync import SyncOptions, sync_project

    scenario = Scenario(days=2, pipelines_per_day=2, migration_day=2, with_docs_project=False)
    db = tmp_path_factory.mktemp("corpus") / "store.db"
    with SimulatedGitLab(scenario) as sim, Store.open(db) as store:
        conn = Connection(url=sim.url, token=Secret(sim.token), max_rps=0, projects=(sim.project_path,))
        with GitLabClient(conn) as client:
            options = SyncOptions.from_config(Config(), since="all", now=scenario.end)
            sync_project(client, store, sim.project_path, options=options, now=scenario.end)
        store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db
