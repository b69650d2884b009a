"""Structural proof that this repository's own CI does what issue 8 asks (README: "This repository's CI").

Reads `.gitlab-ci.yml`, `Dockerfile.ci`, `.mise/config.toml`, `.cache-key`, `.pre-commit-config.yaml` and
`ci/*.sh` read-only and checks each property on the parsed structure: the single cache writer, the image
build's rules/retry/resource group, pinned images, the tool versions stated once. The tool-based proof
(GitLab's schema, hadolint, `cidash lint`, `sha256sum -c`) is in `test_repo_ci_tools.py`.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from paths import REPO_ROOT

ROOT = REPO_ROOT
CI_FILE = ROOT / ".gitlab-ci.yml"
KEY_FILES = ("pyproject.toml", "requirements.lock", ".gitlab-ci.yml", "Dockerfile.ci", ".mise/config.toml")
IMAGE_INPUTS = ("Dockerfile.ci", "requirements.lock", ".mise/config.toml")
INFRA_RETRY = {"runner_system_failure", "stuck_or_timeout_failure", "api_failure", "scheduler_failure"}
FIX = "sh ci/update-keys.sh"

# Top-level keywords of .gitlab-ci.yml that are not jobs.
RESERVED = {"default", "include", "stages", "variables", "workflow", "image", "services", "cache", "before_script"}
RESERVED |= {"after_script", "spec"}
# Keywords a job takes from `default:` when it does not set them itself.
DEFAULT_INHERITED: tuple[str, ...] = ("image", "cache", "before_script", "after_script", "retry", "interruptible")
DEFAULT_INHERITED += ("artifacts", "tags", "timeout", "services", "hooks", "id_tokens")


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """GitLab's `extends:` merge: hashes deep-merged, everything else (lists included) replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@cache
def ci() -> dict[str, Any]:
    data = yaml.safe_load(CI_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _resolve(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    assert name not in seen, f"extends cycle through {name}"
    raw = ci()[name]
    assert isinstance(raw, dict), name
    parents = raw.get("extends", [])
    merged: dict[str, Any] = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = _merge(merged, _resolve(parent, (*seen, name)))
    return _merge(merged, {k: v for k, v in raw.items() if k != "extends"})


@cache
def jobs() -> dict[str, dict[str, Any]]:
    """Every job with extends: and default: applied, as GitLab sees it."""
    default = ci().get("default", {})
    out = {}
    for name in ci():
        if name in RESERVED or name.startswith("."):
            continue
        job = _resolve(name)
        for key in DEFAULT_INHERITED:
            if key not in job and key in default:
                job[key] = default[key]
        out[name] = job
    return out


def caches(job: dict[str, Any]) -> list[dict[str, Any]]:
    value = job.get("cache", [])
    return [value] if isinstance(value, dict) else list(value)


def key_identity(entry: dict[str, Any]) -> str:
    key = entry.get("key", "default")
    if isinstance(key, dict):
        return f"files={sorted(key.get('files', []))} prefix={key.get('prefix')}"
    return str(key)


def script_text(job: dict[str, Any]) -> str:
    parts: list[Any] = []
    for section in ("before_script", "script", "after_script"):
        value = job.get(section, [])
        parts.extend([value] if isinstance(value, str) else value)
    return "\n".join(str(p) for p in parts)


def read(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8")


def mise_tools() -> dict[str, str]:
    tools = tomllib.loads(read(".mise/config.toml"))["tools"]
    assert isinstance(tools, dict)
    return {str(k): str(v) for k, v in tools.items()}


def locked_version(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)", read("requirements.lock"), re.MULTILINE)
    assert match, f"{package} is not in requirements.lock"
    return match.group(1)


def image_tag_for(root: Path) -> str:
    """What ci/image-tag.sh computes: SHA-256 of `sha256sum <image inputs>`' output, first 16 hex digits."""
    listing = "".join(f"{hashlib.sha256((root / f).read_bytes()).hexdigest()}  {f}\n" for f in IMAGE_INPUTS)
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


# --- cache key --------------------------------------------------------------------------------------------


def test_cache_key_lists_the_five_files_in_order() -> None:
    names = [line[66:] for line in read(".cache-key").splitlines()]
    assert names == list(KEY_FILES)
    for line in read(".cache-key").splitlines():
        assert re.fullmatch(r"[0-9a-f]{64}  \S+", line), line


def test_every_files_cache_key_is_the_committed_cache_key_with_a_prefix() -> None:
    entries = [entry for job in jobs().values() for entry in caches(job) if isinstance(entry.get("key"), dict)]
    assert entries, "no job uses the cache:key:files cache"
    for entry in entries:
        assert entry["key"]["files"] == [".cache-key"]
        assert entry["key"].get("prefix"), "a prefix keeps the key readable and apart from other caches"


def test_exactly_one_writer_per_cache_key_in_resource_group_cache_updates() -> None:
    writers: dict[str, list[str]] = {}
    readers: dict[str, list[str]] = {}
    for name, job in jobs().items():
        for entry in caches(job):
            policy = entry.get("policy", "pull-push")
            target = writers if policy in ("pull-push", "push") else readers
            target.setdefault(key_identity(entry), []).append(name)
            if policy not in ("pull-push", "push"):
                assert policy == "pull", f"{name}: unexpected cache policy {policy!r}"
    assert writers, "nobody writes the cache"
    for key, names in writers.items():
        assert len(names) == 1, f"cache key {key} has several writers: {names}"
        assert jobs()[names[0]].get("resource_group") == "cache_updates", f"writer {names[0]} not serialised"
    files_keys = [k for k in writers if k.startswith("files=")]
    assert len(files_keys) == 1
    assert len(readers.get(files_keys[0], [])) >= 3, "the other jobs must read the same key"


def test_fallback_keys_reach_a_cache_someone_writes() -> None:
    written = {
        key_identity(e) for job in jobs().values() for e in caches(job) if e.get("policy") in ("pull-push", "push")
    }
    for name, job in jobs().items():
        for entry in caches(job):
            if not isinstance(entry.get("key"), dict):
                continue
            fallbacks = entry.get("fallback_keys", [])
            assert "deps-$CI_DEFAULT_BRANCH" in fallbacks, f"{name}: branches need the default branch's cache"
            assert "deps-$CI_COMMIT_REF_SLUG" in fallbacks, name
            # deps-$CI_COMMIT_REF_SLUG is written per branch; on the default branch it *is* deps-<default>.
            assert "deps-$CI_COMMIT_REF_SLUG" in written


def test_jobs_outside_the_ci_image_carry_no_cache() -> None:
    for name in ("check-cache-key", "build-ci-image", "verify-ci-image"):
        assert caches(jobs()[name]) == [], name


# --- CI image build ---------------------------------------------------------------------------------------


def test_build_ci_image_rules_are_changes_schedule_or_forced() -> None:
    rules = jobs()["build-ci-image"]["rules"]
    conditions = [rule.get("if", "") for rule in rules]
    assert '$FORCE_CI_IMAGE_REBUILD == "true"' in conditions
    assert '$CI_PIPELINE_SOURCE == "schedule"' in conditions
    changes = [rule["changes"] for rule in rules if "changes" in rule]
    assert len(changes) == 1
    paths = changes[0]["paths"] if isinstance(changes[0], dict) else changes[0]
    assert tuple(paths) == IMAGE_INPUTS
    for rule in rules:
        assert "if" in rule or "changes" in rule, f"unconditional rule {rule}: the build would run every time"
        assert rule.get("when", "on_success") != "always"


def test_build_ci_image_retries_only_infrastructure_failures() -> None:
    retry = jobs()["build-ci-image"]["retry"]
    assert set(retry["when"]) == INFRA_RETRY
    assert 1 <= retry["max"] <= 2
    for name, job in jobs().items():
        if "retry" in job:
            when = job["retry"]["when"] if isinstance(job["retry"], dict) else []
            assert set(when) <= INFRA_RETRY, f"{name} retries script failures"


def test_build_ci_image_is_serialised_per_tag() -> None:
    assert jobs()["build-ci-image"]["resource_group"] == "ci-image-$CI_IMAGE_TAG"


def test_image_tag_is_the_content_address_of_the_image_inputs() -> None:
    assert tuple(ci()[".ci-image-inputs"]) == IMAGE_INPUTS
    inputs_in_script = re.search(r'^INPUTS="([^"]+)"', read("ci/image-tag.sh"), re.MULTILINE)
    assert inputs_in_script and tuple(inputs_in_script.group(1).split()) == IMAGE_INPUTS
    committed = ci()["variables"]["CI_IMAGE_TAG"]
    assert re.fullmatch(r"[0-9a-f]{16}", committed)
    assert committed == image_tag_for(ROOT), (
        f"CI_IMAGE_TAG {committed} is stale (the image inputs give {image_tag_for(ROOT)}): run `{FIX}` and commit"
    )


def test_every_job_image_is_pinned() -> None:
    for name, job in jobs().items():
        image = job.get("image")
        ref = image["name"] if isinstance(image, dict) else image
        assert isinstance(ref, str) and ref, f"{name} has no image"
        last = ref.rsplit("/", 1)[-1]
        assert ":" in last or "@sha256:" in ref, f"{name}: image {ref} has no tag"
        assert not ref.endswith(":latest"), f"{name}: image {ref} is not pinned"


def test_jobs_use_the_image_built_for_their_inputs() -> None:
    helpers = {"check-cache-key": r"alpine:3\.\d+(\.\d+)?", "build-ci-image": r"quay\.io/buildah/stable:v\d+\.\d+\.\d+"}
    for name, job in jobs().items():
        image = job["image"]["name"] if isinstance(job["image"], dict) else job["image"]
        if name in helpers:
            assert re.fullmatch(helpers[name], image), f"{name}: {image}"
        else:
            assert image == "$CI_REGISTRY_IMAGE/ci:$CI_IMAGE_TAG", name


def test_build_uses_buildah_and_a_manifest_head_never_a_pull() -> None:
    build = read("ci/build-ci-image.sh")
    head = read("ci/registry-head.sh")
    everything = "\n".join([CI_FILE.read_text(), *(p.read_text() for p in (ROOT / "ci").glob("*.sh"))])
    assert "docker pull" not in everything and "buildah pull" not in everything and "podman pull" not in everything
    assert "--head" in head and "/v2/$repo/manifests/$tag" in head
    assert "Docker-Content-Digest" in head.replace("[Dd]ocker-[Cc]ontent-[Dd]igest", "Docker-Content-Digest")
    # Order: existence check, build, push with the digest recorded, HEAD again to verify the pushed digest.
    first_head = build.index('digest=$(sh ci/registry-head.sh "$image")')
    build_call = build.index('build buildah "$image"')
    push = build.index('buildah push --digestfile "$digestfile" "$image"')
    verify = build.index('remote=$(sh ci/registry-head.sh "$image")')
    assert first_head < build_call < push < verify
    assert '[ "$remote" = "$pushed" ]' in build
    # "someone else pushed this tag meanwhile" is success, not failure.
    assert "exists now" in build and "another pipeline" in build
    assert "sh ci/build-ci-image.sh" in script_text(jobs()["build-ci-image"])
    assert jobs()["build-ci-image"]["variables"]["STORAGE_DRIVER"] == "vfs"


def test_verify_ci_image_runs_every_tool_version() -> None:
    job = jobs()["verify-ci-image"]
    assert "sh ci/verify-ci-image.sh" in script_text(job)
    assert {"job": "build-ci-image", "optional": True} in job["needs"]
    script = read("ci/verify-ci-image.sh")
    checked = set(re.findall(r"^(?:\w+=\$\()?version_of (\S+) ", script, re.MULTILINE))
    assert {"python", "uv", "ruff", "mypy", "git", "make"} <= checked
    assert "exit 1" in script


# --- the other jobs ---------------------------------------------------------------------------------------


def test_stages_start_with_the_cache_key_check() -> None:
    assert ci()["stages"][0] == "prepare"
    job = jobs()["check-cache-key"]
    assert job["stage"] == "prepare"
    assert "sh ci/check-cache-key.sh" in script_text(job)
    assert "sha256sum -c" in read("ci/check-cache-key.sh")
    assert "sh ci/image-tag.sh --check" in script_text(job)


def test_lint_test_cidash_lint_and_ci_health_jobs() -> None:
    assert "make lint typecheck" in script_text(jobs()["lint"])
    makefile = read("Makefile")
    assert re.search(r"^lint:.*\n(\t.*\n)*\t\$\(BIN\)/ruff check", makefile, re.MULTILINE)
    assert re.search(r"^typecheck:.*\n\t\$\(BIN\)/mypy", makefile, re.MULTILINE)
    test = jobs()["test"]
    assert "pytest" in script_text(test) and test["artifacts"]["reports"]["junit"] == "pytest-report.xml"
    assert "cidash lint --config ci/cidash.toml .gitlab-ci.yml" in script_text(jobs()["cidash-lint"])
    assert "cidash key --check .cache-key --config ci/cidash.toml" in script_text(jobs()["cidash-lint"])
    health = jobs()["ci-health"]
    match = re.search(r"cidash check --format junit (?:--config \S+ )?> (\S+)", script_text(health))
    assert match, "ci-health must run cidash check --format junit"
    assert health["allow_failure"] is True
    assert health["artifacts"]["reports"]["junit"] == match.group(1)
    assert health["artifacts"]["when"] == "always"


def test_jobs_in_the_ci_image_install_only_the_project_on_top() -> None:
    for name, job in jobs().items():
        if job["image"] == "$CI_REGISTRY_IMAGE/ci:$CI_IMAGE_TAG" and name != "verify-ci-image":
            assert "uv pip install --quiet --no-deps -e ." in script_text(job), name


# --- Dockerfile.ci and the tool versions ------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """Instructions (continuation lines joined, comments dropped) grouped by FROM."""
    text = re.sub(r"\\\n\s*", " ", read("Dockerfile.ci"))
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_alpine_base_multi_stage_no_toolchain() -> None:
    stages = dockerfile_stages()
    assert len(stages) == 2
    for stage in stages:
        assert stage[0].startswith("FROM python:${PYTHON_VERSION}-alpine${ALPINE_VERSION}")
    assert re.search(r"^ARG ALPINE_VERSION=3\.23$", read("Dockerfile.ci"), re.MULTILINE)
    final = "\n".join(stages[-1])
    for toolchain in ("build-base", "gcc", "musl-dev", "g++", "cargo", "rust"):
        assert not re.search(rf"\b{re.escape(toolchain)}\b", final), toolchain
    assert "--no-build" in "\n".join(stages[0]), "a missing wheel must fail, not compile"


def test_dockerfile_cleans_caches_in_the_same_layer() -> None:
    for stage in dockerfile_stages():
        for line in stage:
            if not line.startswith("RUN "):
                continue
            if "apk add" in line:
                assert "apk add --no-cache" in line, line
            if "pip install" in line and "uv pip install" not in line.replace("&& uv pip", "uv pip"):
                assert "--no-cache-dir" in line, line
            if "uv pip install" in line:
                assert "uv pip install --no-cache" in line, line


def test_dockerfile_non_root_labels_and_no_project_source() -> None:
    final = dockerfile_stages()[-1]
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users, "the image must not run as root"
    assert users[-1].split(":")[0] not in ("0", "root")
    labels = " ".join(line for line in final if line.startswith("LABEL "))
    for label in ("title", "description", "source", "revision", "licenses"):
        assert f"org.opencontainers.image.{label}=" in labels, label
    copies = [line for stage in dockerfile_stages() for line in stage if line.startswith(("COPY ", "ADD "))]
    for line in copies:
        assert "--from=" in line or line.split()[-2:] == ["requirements.lock", "/tmp/requirements.lock"], line
    patterns = [line for line in read(".dockerignore").splitlines() if line and not line.startswith("#")]
    assert patterns == ["*", "!requirements.lock"], "the build context must hold nothing but the lock file"


def test_tool_versions_are_stated_once_in_mise_config() -> None:
    tools = mise_tools()
    assert set(tools) >= {"python", "uv", "ruff", "pipx:mypy"}
    hint = "set it in .mise/config.toml, then run `sh ci/update-keys.sh`"
    assert tools["ruff"] == locked_version("ruff"), f"requirements.lock has ruff {locked_version('ruff')}: {hint}"
    assert tools["pipx:mypy"] == locked_version("mypy"), f"requirements.lock has mypy {locked_version('mypy')}: {hint}"
    uv_in_makefile = re.search(r"^UV_VERSION := (\S+)$", read("Makefile"), re.MULTILINE)
    assert uv_in_makefile and tools["uv"] == uv_in_makefile.group(1), f"the Makefile's UV_VERSION differs: {hint}"
    pyproject = tomllib.loads(read("pyproject.toml"))
    assert pyproject["tool"]["mypy"]["python_version"] == tools["python"]
    assert pyproject["project"]["requires-python"] == f">={tools['python']}"
    # Dockerfile.ci states no python/uv version of its own: the build script passes the mise pins.
    dockerfile = read("Dockerfile.ci")
    assert re.search(r"^ARG PYTHON_VERSION$", dockerfile, re.MULTILINE)
    assert re.search(r"^ARG UV_VERSION$", dockerfile, re.MULTILINE)
    build = read("ci/build-ci-image.sh")
    assert "python_version=$(sh ci/mise-version.sh python)" in build
    assert "uv_version=$(sh ci/mise-version.sh uv)" in build
    assert '--build-arg "PYTHON_VERSION=$python_version"' in build
    assert '--build-arg "UV_VERSION=$uv_version"' in build


def test_pre_commit_hook_regenerates_the_keys() -> None:
    config = yaml.safe_load(read(".pre-commit-config.yaml"))
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    keys = hooks["ci-keys"]
    assert keys["entry"] == "sh ci/update-keys.sh"
    assert keys["pass_filenames"] is False
    for path in (*KEY_FILES, ".cache-key"):
        assert re.search(keys["files"], path), path
    assert not re.search(keys["files"], "src/cidash/cli.py")
    assert "cidash" in read("ci/update-keys.sh") and "key --write .cache-key" in read("ci/update-keys.sh")


def test_readme_documents_the_repository_ci() -> None:
    section = read("docs/repository-ci.md")
    for needle in (
        "](cache-keys.md)",
        "215 MB",
        "sh ci/update-keys.sh",
        "### Rolling back the CI image",
        "--committed",
    ):
        assert needle in section, needle
    for job in jobs():
        assert f"`{job}`" in section, f"README does not describe job {job}"


def test_the_five_files_are_listed_the_same_everywhere() -> None:
    config = tomllib.loads(read("ci/cidash.toml"))
    assert tuple(config["cache_key"]["files"]) == KEY_FILES
    assert config["cache_key"]["file"] == ".cache-key"
    assert config["image"]["build_job"] in jobs() and config["image"]["verify_job"] in jobs()
    for script in ("ci/check-cache-key.sh", "ci/update-keys.sh"):
        listed = re.search(r'^FILES="([^"]+)"', read(script), re.MULTILINE)
        assert listed and tuple(listed.group(1).split()) == KEY_FILES, script
    for name, job in jobs().items():
        for command in re.findall(r"cidash (?:key|lint|sync|check)[^\n]*", script_text(job)):
            assert "--config ci/cidash.toml" in command, f"{name}: {command}"
