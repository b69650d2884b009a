#!/bin/sh
# Run inside the CI image (the verify-ci-image job): every tool answers --version, the pinned ones at the
# versions .mise/config.toml and requirements.lock state, the user is not root, and the project source is
# not in the image. Lists every problem, exits 1 if there is any. Run from the repository root.
set -u

problems=0
problem() {
    echo "FAIL: $*"
    problems=$((problems + 1))
}

version_of() { # tool name, command... -> first line of `command --version`
    name=$1
    shift
    if out=$("$@" --version 2>&1); then
        line=$(printf '%s\n' "$out" | head -n 1)
        printf '%-18s %s\n' "$name" "$line" >&2
        printf '%s\n' "$line"
    else
        problem "$name: '$* --version' failed: $(printf '%s\n' "$out" | head -n 1)"
        printf '\n'
    fi
}

expect() { # tool, pinned version, --version line
    case "$3" in
    *"$2"*) ;;
    *) problem "$1: expected version $2, got '$3'" ;;
    esac
}

locked() { # package name in requirements.lock -> version
    sed -n "s/^$1==\([^ ]*\).*/\1/p" requirements.lock
}

py=$(version_of python python)
uv=$(version_of uv uv)
ruff=$(version_of ruff ruff)
mypy=$(version_of mypy mypy)
version_of git git >/dev/null
version_of make make >/dev/null
version_of pytest pytest >/dev/null
version_of hadolint hadolint >/dev/null
version_of check-jsonschema check-jsonschema >/dev/null

expect python "Python $(sh ci/mise-version.sh python)." "$py"
expect uv "uv $(sh ci/mise-version.sh uv)" "$uv"
expect ruff "ruff $(sh ci/mise-version.sh ruff)" "$ruff"
expect ruff "ruff $(locked ruff)" "$ruff"
expect mypy "mypy $(sh ci/mise-version.sh pipx:mypy)" "$mypy"
expect mypy "mypy $(locked mypy)" "$mypy"

[ "$(id -u)" != "0" ] || problem "the image runs as root"
if python -c "import cidash" 2>/dev/null; then
    problem "the project itself is installed in the image (every commit would need a new image)"
fi

if [ "$problems" -gt 0 ]; then
    echo "$problems problem(s) in the CI image."
    exit 1
fi
echo "CI image verified: every tool present at its pinned version."
