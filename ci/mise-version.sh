#!/bin/sh
# Print the version .mise/config.toml pins for one tool, e.g. `sh ci/mise-version.sh uv` or
# `sh ci/mise-version.sh pipx:mypy`; exit 1 if the tool is not pinned there. Run from the repository root.
set -eu
tool=${1:?usage: sh ci/mise-version.sh TOOL}
version=$(sed -n "s/^\"\{0,1\}$tool\"\{0,1\}[[:space:]]*=[[:space:]]*\"\([^\"]*\)\".*/\1/p" .mise/config.toml)
if [ -z "$version" ]; then
    echo "$tool is not pinned in .mise/config.toml" >&2
    exit 1
fi
echo "$version"
