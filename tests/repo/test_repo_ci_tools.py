"""Tool-based proof for this repository's CI: GitLab's published schema, hadolint, `cidash lint`/`cidash key`,
the real `sha256sum -c`, and the ci/ scripts run for real on copies in tmp_path (the repository is only read).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from paths import REPO_ROOT

ROOT = REPO_ROOT
BIN = Path(sys.executable).parent
KEY_FILES = ("pyproject.toml", "requirements.lock", ".gitlab-ci.yml", "Dockerfile.ci", ".mise/config.toml")
FIX = "sh ci/update-keys.sh"


def run(args: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, env=env, check=False)


def tool_env() -> dict[str, str]:
    """The venv's tools first on PATH (as in the CI image), nothing else changed."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def sha256sum_lines(root: Path, files: tuple[str, ...]) -> str:
    return "".join(f"{hashlib.sha256((root / f).read_bytes()).hexdigest()}  {f}\n" for f in files)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The five key files, .cache-key and ci/ copied to a scratch checkout."""
    for name in (*KEY_FILES, ".cache-key"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "ci", tmp_path / "ci")
    return tmp_path


# --- GitLab schema, hadolint, cidash ----------------------------------------------------------------------


def test_gitlab_ci_matches_gitlabs_published_schema() -> None:
    result = run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", ".gitlab-ci.yml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_has_no_findings_and_no_unjustified_ignores() -> None:
    result = run([str(BIN / "hadolint"), "--no-color", "Dockerfile.ci"])
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr
    lines = (ROOT / "Dockerfile.ci").read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            reason = line.split("hadolint ignore=", 1)[1].split(maxsplit=1)[1:] or [lines[number - 1]]
            assert reason[0].strip("# ").strip(), f"Dockerfile.ci:{number + 1}: ignore without a reason"


def test_cidash_lint_reports_nothing_on_our_ci_file() -> None:
    for config in (["--config", "ci/cidash.toml"], []):
        result = run([str(BIN / "cidash"), "lint", "--format", "json", *config, ".gitlab-ci.yml"])
        report = json.loads(result.stdout)
        problems = [f for f in report["findings"] if f["severity"] in ("error", "warning")]
        assert result.returncode == 0 and problems == [], json.dumps(report, indent=2)


def _lint_repo(root: Path, ci: dict[str, Any]) -> list[dict[str, Any]]:
    """Commit `ci` (with a matching .cache-key) in a scratch git repo and lint it."""
    (root / ".gitlab-ci.yml").write_text(yaml.safe_dump(ci, sort_keys=False))
    (root / ".cache-key").write_text(sha256sum_lines(root, KEY_FILES))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "ci"]):
        assert run([*git, *args], cwd=root).returncode == 0
    result = run(
        [str(BIN / "cidash"), "lint", "--format", "json", "--config", "ci/cidash.toml", ".gitlab-ci.yml"], cwd=root
    )
    findings: list[dict[str, Any]] = json.loads(result.stdout)["findings"]
    return [f for f in findings if f["severity"] in ("error", "warning")]


def _no_retry(ci: dict[str, Any]) -> None:
    del ci["build-ci-image"]["retry"]
    del ci["default"]["retry"]  # else the job inherits it


def _pull_to_check(ci: dict[str, Any]) -> None:
    ci["build-ci-image"]["script"].insert(0, 'docker pull "$CI_IMAGE_REPO:$CI_IMAGE_TAG" || echo missing')


def _second_writer(ci: dict[str, Any]) -> None:
    ci["test"]["cache"] = [{**ci["lint"]["cache"][0], "policy": "pull-push"}]
    del ci["lint"]["resource_group"]


def _latest(ci: dict[str, Any]) -> None:
    ci["check-cache-key"]["image"] = "alpine:latest"


@pytest.mark.parametrize(
    ("mutate", "rule"),
    [(None, None), (_no_retry, "IM003"), (_pull_to_check, "IM002"), (_second_writer, "CK008"), (_latest, "IM001")],
)
def test_cidash_lint_catches_each_design_property_being_broken(copy: Path, mutate: Any, rule: str | None) -> None:
    """The clean result above is meaningful: break one property of our file and `cidash lint` says so."""
    ci = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    if mutate is not None:
        mutate(ci)
    problems = _lint_repo(copy, ci)
    assert {f["rule_id"] for f in problems} == ({rule} if rule else set()), problems


# --- sha256sum -c .cache-key ------------------------------------------------------------------------------


def test_committed_cache_key_is_current() -> None:
    """The one "is .cache-key current" check: the script the CI's first job runs (`sha256sum -c` plus the file
    list); its failure output names the changed file and the fix."""
    script = run(["sh", "ci/check-cache-key.sh"])
    assert script.returncode == 0 and ".cache-key is up to date." in script.stdout, script.stdout


@pytest.mark.parametrize("changed", KEY_FILES)
def test_changing_one_file_fails_naming_that_file(copy: Path, changed: str) -> None:
    assert run(["sha256sum", "-c", ".cache-key"], cwd=copy).returncode == 0
    with (copy / changed).open("a") as handle:
        handle.write("\n# changed\n")
    plain = run(["sha256sum", "-c", ".cache-key"], cwd=copy)
    assert plain.returncode != 0
    assert f"{changed}: FAILED" in plain.stdout
    script = run(["sh", "ci/check-cache-key.sh"], cwd=copy)
    assert script.returncode == 1
    changed_lines = [line.strip() for line in script.stdout.splitlines() if line.strip().startswith("changed:")]
    assert changed_lines == [f"changed: {changed}"], script.stdout
    assert f"fix: {FIX}" in script.stdout


def test_missing_file_and_dropped_line_fail(copy: Path) -> None:
    (copy / "Dockerfile.ci").unlink()
    script = run(["sh", "ci/check-cache-key.sh"], cwd=copy)
    assert script.returncode == 1 and "missing: Dockerfile.ci" in script.stdout
    shutil.copy2(ROOT / "Dockerfile.ci", copy / "Dockerfile.ci")
    # Without the .mise/config.toml line `sha256sum -c` still passes, so the script checks the list itself.
    lines = (copy / ".cache-key").read_text().splitlines(keepends=True)
    (copy / ".cache-key").write_text("".join(lines[:-1]))
    assert run(["sha256sum", "-c", ".cache-key"], cwd=copy).returncode == 0
    script = run(["sh", "ci/check-cache-key.sh"], cwd=copy)
    assert script.returncode == 1 and "expected exactly, in order" in script.stdout, script.stdout


# --- the content-addressed image tag and ci/update-keys.sh ------------------------------------------------


def _tag(root: Path) -> str:
    listing = sha256sum_lines(root, ("Dockerfile.ci", "requirements.lock", ".mise/config.toml"))
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def test_image_tag_script_matches_its_definition() -> None:
    result = run(["sh", "ci/image-tag.sh"])
    assert result.returncode == 0 and result.stdout.strip() == _tag(ROOT)
    check = run(["sh", "ci/image-tag.sh", "--check"])
    assert check.returncode == 0, f"{check.stdout}: run `{FIX}` and commit"


def test_image_tag_follows_the_image_inputs_only(copy: Path) -> None:
    before = run(["sh", "ci/image-tag.sh"], cwd=copy).stdout
    with (copy / "pyproject.toml").open("a") as handle:
        handle.write("\n# not an image input\n")
    assert run(["sh", "ci/image-tag.sh"], cwd=copy).stdout == before
    with (copy / "requirements.lock").open("a") as handle:
        handle.write("\n# an image input\n")
    assert run(["sh", "ci/image-tag.sh"], cwd=copy).stdout != before
    check = run(["sh", "ci/image-tag.sh", "--check"], cwd=copy)
    assert check.returncode == 1 and FIX in check.stdout


def test_update_keys_regenerates_tag_then_cache_key(copy: Path) -> None:
    with (copy / "Dockerfile.ci").open("a") as handle:
        handle.write("\n# changed\n")
    assert run(["sh", "ci/check-cache-key.sh"], cwd=copy).returncode == 1
    result = run(["sh", "ci/update-keys.sh"], cwd=copy, env=tool_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cidash key --write .cache-key" in result.stdout  # the hook uses cidash key when it is installed
    assert run(["sh", "ci/image-tag.sh", "--check"], cwd=copy).returncode == 0
    assert f'CI_IMAGE_TAG: "{_tag(copy)}"' in (copy / ".gitlab-ci.yml").read_text()
    # .cache-key covers the .gitlab-ci.yml that step 1 rewrote, byte-identical to sha256sum.
    assert (copy / ".cache-key").read_text() == sha256sum_lines(copy, KEY_FILES)
    assert run(["sh", "ci/check-cache-key.sh"], cwd=copy).returncode == 0


def test_image_tag_committed_at_a_git_ref(copy: Path) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        assert run([*git, *args], cwd=copy).returncode == 0
    result = run(["sh", "ci/image-tag.sh", "--committed", "HEAD"], cwd=copy)
    assert result.stdout.strip() == _tag(ROOT)


# --- the scripts themselves -------------------------------------------------------------------------------


@pytest.mark.parametrize("tool", ["python", "uv", "ruff", "pipx:mypy"])
def test_mise_version_script_reads_the_mise_pins(tool: str) -> None:
    pins = tomllib.loads((ROOT / ".mise/config.toml").read_text())["tools"]
    result = run(["sh", "ci/mise-version.sh", tool])
    assert result.returncode == 0 and result.stdout == f"{pins[tool]}\n"
    assert run(["sh", "ci/mise-version.sh", "nonexistent"]).returncode == 1


def test_verify_ci_image_script_against_this_venv() -> None:
    """Run for real with the venv's tools: every version must match; only root/installed-project may differ."""
    result = run(["sh", "ci/verify-ci-image.sh"], env=tool_env())
    output = result.stdout + result.stderr
    for tool in ("python", "uv", "ruff", "mypy", "git", "make", "pytest", "hadolint", "check-jsonschema"):
        assert any(line.startswith(f"{tool} ") for line in result.stderr.splitlines()), output
    expected = set()
    if os.geteuid() == 0:
        expected.add("FAIL: the image runs as root")
    if importlib.util.find_spec("cidash") is not None:
        expected.add("FAIL: the project itself is installed in the image (every commit would need a new image)")
    fails = {line for line in result.stdout.splitlines() if line.startswith("FAIL")}
    assert fails == expected, output
    assert result.returncode == (1 if expected else 0)


def test_ci_scripts_are_posix_sh_and_shellcheck_clean() -> None:
    """Alpine and the buildah image run them with their own sh: each says `#!/bin/sh`, so shellcheck checks it as
    POSIX sh (a parse error, `[[`, `local`, `function`, `source`, `$'...'` or `set -o pipefail` is a finding)."""
    scripts = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "ci").glob("*.sh"))
    assert scripts
    for script in scripts:
        assert (ROOT / script).read_text().startswith("#!/bin/sh\n"), script
    result = run([str(BIN / "shellcheck"), *scripts])
    assert result.returncode == 0, result.stdout
