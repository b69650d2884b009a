"""The package as users get it: build the sdist and wheel (uv build), check their metadata and contents, install
the wheel as a uv tool in a fresh environment, and run `cidash --version` and `cidash demo --headless` from
there, outside the checkout.

Offline: the build backend and every dependency come from uv's cache, which `make venv` filled from
requirements.lock (the lock also pins them here). Build output goes to a temporary directory, never dist/.
"""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import cidash
from paths import REPO_ROOT

ROOT = REPO_ROOT
LOCK = ROOT / "requirements.lock"
#: The environment as it was before the conftest pointed HOME/XDG at a temporary directory: uv finds its cache
#: (and nothing else of the developer's) through it.
_ORIGINAL_ENV = dict(os.environ)

pytestmark = pytest.mark.slow


def _uv() -> str:
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.is_file() else shutil.which("uv")
    assert found, "uv is not installed (make venv installs it into .venv)"
    return found


def _uv_env(tmp: Path) -> dict[str, str]:
    cache = (
        _ORIGINAL_ENV.get("UV_CACHE_DIR")
        or subprocess.run(
            [_uv(), "cache", "dir"], env=_ORIGINAL_ENV, capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(
        UV_CACHE_DIR=cache,
        UV_OFFLINE="1",
        UV_TOOL_DIR=str(tmp / "tools"),
        UV_TOOL_BIN_DIR=str(tmp / "bin"),
        UV_NO_PROGRESS="1",
        UV_PYTHON_DOWNLOADS="never",
    )
    return env


def _run(argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, (
        f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(wheel, sdist, work dir): `uv build` of the checkout into a temporary directory."""
    work = tmp_path_factory.mktemp("packaging")
    out = work / "dist"
    # --build-constraint: the backend version from the lock, so the isolated build needs nothing new.
    _run(
        [_uv(), "build", "--out-dir", str(out), "--build-constraint", str(LOCK), "--python", sys.executable, str(ROOT)],
        env=_uv_env(work),
        cwd=work,
    )
    wheels = list(out.glob("cidash-*.whl"))
    sdists = list(out.glob("cidash-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return wheels[0], sdists[0], work


def test_wheel_metadata(built: tuple[Path, Path, Path]) -> None:
    wheel, _, _ = built
    assert wheel.name == f"cidash-{cidash.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = f"cidash-{cidash.__version__}.dist-info"
        meta = email.parser.Parser().parsestr(zf.read(f"{dist_info}/METADATA").decode())
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    assert meta["Name"] == "cidash" and meta["Version"] == cidash.__version__
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["License-Expression"] == "MIT" and meta["License-File"] == "LICENSE"
    assert meta["Description-Content-Type"] == "text/markdown" and "uv tool install ." in meta.get_payload()
    assert meta["Summary"].startswith("A terminal dashboard for GitLab CI health")
    requires = meta.get_all("Requires-Dist") or []
    base = {Requirement(r).name.lower() for r in requires if "extra ==" not in r}
    assert {"textual", "httpx", "platformdirs", "pyyaml", "argcomplete"} <= base
    # test tools stay in the extra, and so does python-gitlab (cidash sends nothing through it)
    assert not base & {"pytest", "mypy", "ruff", "setuptools", "python-gitlab", "requests"}, base
    assert "cidash = cidash.cli:main" in entry_points
    assert f"{dist_info}/licenses/LICENSE" in names
    for required in ("cidash/py.typed", "cidash/cli.py", "cidash/commands/doctor.py", "cidash/sim/server.py"):
        assert required in names, required
    assert any(n.startswith("cidash/tui/") and n.endswith(".tcss") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "bench/")) or "__pycache__" in n]


def test_sdist_contents(built: tuple[Path, Path, Path]) -> None:
    _, sdist, _ = built
    top = f"cidash-{cidash.__version__}"
    with tarfile.open(sdist) as tf:
        names = set(tf.getnames())
    for required in ("LICENSE", "README.md", "pyproject.toml", "src/cidash/cli.py", "src/cidash/py.typed", "PKG-INFO"):
        assert f"{top}/{required}" in names, required
    assert not [n for n in names if "/.venv/" in n or "/.git/" in n or n.endswith((".db", ".pyc"))]


def test_installed_tool_runs_outside_the_checkout(built: tuple[Path, Path, Path], tmp_path: Path) -> None:
    wheel, _, _ = built
    env = _uv_env(tmp_path)
    _run(
        [_uv(), "tool", "install", "--python", sys.executable, "--constraints", str(LOCK), str(wheel)],
        env=env,
        cwd=tmp_path,
    )
    exe = tmp_path / "bin" / "cidash"
    assert exe.is_file()
    # Only the tool's own directory and the system's on PATH; HOME/XDG point into tmp_path (conftest).
    run_env = {k: v for k, v in env.items() if not k.startswith("UV_")}
    run_env["PATH"] = os.pathsep.join([str(tmp_path / "bin"), "/usr/bin", "/bin"])
    run_env.pop("PYTHONPATH", None)
    away = tmp_path / "elsewhere"
    away.mkdir()
    version = _run([str(exe), "--version"], env=run_env, cwd=away)
    assert version.stdout.strip() == f"cidash {cidash.__version__}"
    tool_python = next((tmp_path / "tools" / "cidash" / "bin").glob("python*"))
    where = _run([str(tool_python), "-c", "import cidash; print(cidash.__file__)"], env=run_env, cwd=away)
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "tools"), where.stdout  # not the checkout
    demo = _run([str(exe), "demo", "--headless"], env=run_env, cwd=away, timeout=600)
    assert "image_size" in demo.stdout or "CI image size" in demo.stdout, demo.stdout[-2000:]
    assert "PASS" in demo.stdout and "Traceback" not in demo.stdout + demo.stderr
    assert not list(away.iterdir())  # the demo's store and config lived in a temporary directory
