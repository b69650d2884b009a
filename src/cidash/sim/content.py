"""Deterministic repository file contents of the simulated ``platform/app`` (a small Go service).

Every function is cached, so equal content is the *same* ``bytes`` object (cheap to share between commit
snapshots and to hash once). A repository state is a handful of revision counters (:class:`RepoState`); the
files are pure functions of it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass, replace

from cidash.sim.gitlab_keys import KeyInput

CRITICAL_FILES: tuple[str, ...] = ("go.mod", "go.sum", ".gitlab-ci.yml", "Dockerfile.ci", ".mise/config.toml")
CACHE_KEY_FILE = ".cache-key"
#: The dependency cache's ``key:`` in both CI designs: ``files: [.cache-key]``, no ``prefix:``, the first (index
#: 0) ``cache:`` entry of every job that has one. GitLab's key for it: :func:`cidash.sim.gitlab_keys.cache_key`.
CI_CACHE_KEY = KeyInput(entries=(CACHE_KEY_FILE,), index=0, prefix=None)
_CI_KEY_FILES = "[" + ", ".join(CI_CACHE_KEY.entries) + "]"
MODULE = "gitlab.example.com/platform/app"

_DEPS: tuple[tuple[str, int, int], ...] = (
    ("github.com/spf13/cobra", 1, 8),
    ("github.com/prometheus/client_golang", 1, 19),
    ("go.uber.org/zap", 1, 27),
    ("golang.org/x/sync", 0, 7),
    ("github.com/stretchr/testify", 1, 9),
)

TOOLS: tuple[str, ...] = ("go", "golangci-lint", "gotestsum", "mise", "git", "jq")


@dataclass(frozen=True, slots=True)
class RepoState:
    """Revision counters: each file's content is a pure function of them."""

    deps: int = 0
    ci: int = 0
    docker: int = 1
    mise: int = 0
    src: int = 0
    migrated: bool = False

    @property
    def flavor(self) -> str:
        return "alpine" if self.migrated else "debian"

    @property
    def image_tag(self) -> str:
        return f"{self.flavor}-{self.docker}"

    def bump(self, **changes: int | bool) -> RepoState:
        return replace(self, **changes)  # type: ignore[arg-type]


def _dep_versions(deps: int) -> list[tuple[str, str]]:
    out = []
    for i, (mod, major, minor) in enumerate(_DEPS):
        step = (deps + i) // (i + 1)
        out.append((mod, f"v{major}.{minor + step // 4}.{step % 4}"))
    return out


@functools.cache
def go_mod(deps: int) -> bytes:
    lines = [f"module {MODULE}", "", "go 1.23", "", "require ("]
    lines += [f"\t{mod} {ver}" for mod, ver in _dep_versions(deps)]
    lines += [")", ""]
    return "\n".join(lines).encode()


def _h1(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


@functools.cache
def go_sum(deps: int) -> bytes:
    lines = []
    for mod, ver in _dep_versions(deps):
        lines.append(f"{mod} {ver} h1:{_h1(mod + '@' + ver)}")
        lines.append(f"{mod} {ver}/go.mod h1:{_h1(mod + '@' + ver + '/go.mod')}")
    return ("\n".join(lines) + "\n").encode()


@functools.cache
def dockerfile(migrated: bool, docker: int) -> bytes:
    if migrated:
        text = f"""# CI image for platform/app (alpine, revision {docker})
FROM golang:1.23-alpine3.20 AS go
FROM alpine:3.20.{docker % 4}
COPY --from=go /usr/local/go /usr/local/go
RUN apk add --no-cache git jq curl bash make mise gotestsum golangci-lint
ENV PATH=/usr/local/go/bin:/root/go/bin:$PATH
"""
    else:
        text = f"""# CI image for platform/app (debian, revision {docker})
FROM debian:12.{docker % 9}
RUN apt-get update && apt-get install -y --no-install-recommends \\
    build-essential ca-certificates curl git jq make python3 unzip wget \\
 && rm -rf /var/lib/apt/lists/*
RUN curl -fsSL https://go.dev/dl/go1.23.{docker % 5}.linux-amd64.tar.gz | tar -C /usr/local -xz
RUN curl -fsSL https://mise.run | sh && go install gotest.tools/gotestsum@latest
ENV PATH=/usr/local/go/bin:/root/go/bin:/root/.local/bin:$PATH
"""
    return text.encode()


@functools.cache
def mise_config(mise: int) -> bytes:
    return (
        f'[tools]\ngo = "1.23.{2 + mise % 6}"\ngolangci-lint = "1.6{1 + mise % 3}.0"\ngotestsum = "1.12.{mise % 3}"\n'
    ).encode()


@functools.cache
def gitlab_ci(migrated: bool, ci: int, image_tag: str) -> bytes:
    if migrated:
        text = f"""# platform/app CI (revision {ci}): committed .cache-key, one serialised cache writer
stages: [image, prepare, verify, test, build, release]

variables:
  CI_IMAGE: "$CI_REGISTRY_IMAGE/ci:{image_tag}"
  GOMODCACHE: "$CI_PROJECT_DIR/.go/pkg/mod"

default:
  image: $CI_IMAGE
  cache:
    key:
      files: {_CI_KEY_FILES}
    fallback_keys: [go-mod-main]
    paths: [.go/pkg/mod/]
    policy: pull

setup:
  stage: prepare
  resource_group: cache_updates
  cache:
    key:
      files: {_CI_KEY_FILES}
    paths: [.go/pkg/mod/]
    policy: pull-push
  script:
    - sha256sum --check --strict .cache-key
    - go mod download

build-ci-image:
  stage: image
  image: docker:27.3
  services: [docker:27.3-dind]
  cache: []
  rules:
    - if: '$FORCE_CI_IMAGE_REBUILD == "true"'
    - changes: [Dockerfile.ci]
    - when: manual
      allow_failure: true
  script:
    - ./scripts/ci-image-exists.sh "$CI_IMAGE" || ./scripts/ci-image-build.sh "$CI_IMAGE"

verify-ci-image:
  stage: verify
  cache: []
  script:
    - ./scripts/verify-tools.sh go golangci-lint gotestsum mise git jq

lint:
  stage: test
  script: [golangci-lint run ./...]

test:
  stage: test
  parallel: 2
  script: [gotestsum -- -race ./...]

build:
  stage: build
  script: [go build -o bin/app ./cmd/app]
  artifacts:
    paths: [bin/]

release:
  stage: release
  cache: []
  rules:
    - if: '$CI_COMMIT_BRANCH == "main"'
  script: [./scripts/release.sh]
"""
    else:
        text = f"""# platform/app CI (revision {ci})
stages: [image, prepare, verify, test, build, release]

variables:
  CI_IMAGE: "$CI_REGISTRY_IMAGE/ci:{image_tag}"
  GOMODCACHE: "$CI_PROJECT_DIR/.go/pkg/mod"

default:
  image: $CI_IMAGE
  cache:
    key:
      files: {_CI_KEY_FILES}
    paths: [.go/pkg/mod/]

setup:
  stage: prepare
  script:
    - sha256sum go.mod go.sum .gitlab-ci.yml Dockerfile.ci .mise/config.toml > .cache-key
    - go mod download

build-ci-image:
  stage: image
  image: docker:27.3
  services: [docker:27.3-dind]
  cache: []
  script:
    - docker pull "$CI_IMAGE" || true
    - docker build --cache-from "$CI_IMAGE" -f Dockerfile.ci -t "$CI_IMAGE" .
    - docker push "$CI_IMAGE"

verify-ci-image:
  stage: verify
  cache: []
  script:
    - go version
    - golangci-lint --version

lint:
  stage: test
  script: [golangci-lint run ./...]

test:
  stage: test
  parallel: 2
  script: [gotestsum -- -race ./...]

build:
  stage: build
  script: [go build -o bin/app ./cmd/app]
  artifacts:
    paths: [bin/]

release:
  stage: release
  cache: []
  rules:
    - if: '$CI_COMMIT_BRANCH == "main"'
  script: [./scripts/release.sh]
"""
    return text.encode()


@functools.cache
def main_go(src: int) -> bytes:
    return (
        "package main\n\n"
        'import "gitlab.example.com/platform/app/internal/server"\n\n'
        f"// revision {src}\n"
        "func main() { server.Run() }\n"
    ).encode()


README = b"# app\n\nThe platform team's service. CI: see .gitlab-ci.yml.\n"


def cache_key_file(files: dict[str, bytes]) -> bytes:
    """The committed ``.cache-key``: byte-identical to ``sha256sum go.mod go.sum .gitlab-ci.yml ...``."""
    lines = [f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in CRITICAL_FILES if p in files]
    return "".join(lines).encode()


_CACHE_KEY_CACHE: dict[tuple[int, ...], bytes] = {}


def snapshot(state: RepoState) -> dict[str, bytes]:
    """All files of the repository in this state."""
    files: dict[str, bytes] = {
        ".gitlab-ci.yml": gitlab_ci(state.migrated, state.ci, state.image_tag),
        "Dockerfile.ci": dockerfile(state.migrated, state.docker),
        "README.md": README,
        "cmd/app/main.go": main_go(state.src),
        "go.mod": go_mod(state.deps),
        "go.sum": go_sum(state.deps),
        ".mise/config.toml": mise_config(state.mise),
    }
    if state.migrated:
        ident = tuple(id(files[p]) for p in CRITICAL_FILES)
        content = _CACHE_KEY_CACHE.get(ident)
        if content is None:
            content = cache_key_file(files)
            _CACHE_KEY_CACHE[ident] = content
        files[CACHE_KEY_FILE] = content
    return dict(sorted(files.items()))


def critical_checksum(files: dict[str, bytes]) -> str:
    """One digest of the critical files' contents (what a correct cache key must follow)."""
    h = hashlib.sha256()
    for path in CRITICAL_FILES:
        h.update(path.encode() + b"\0" + files.get(path, b"") + b"\0")
    return h.hexdigest()
