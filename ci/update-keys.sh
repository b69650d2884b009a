#!/bin/sh
# Regenerate the two committed content addresses after changing any file that defines the CI environment.
# Run from the repository root; the pre-commit hook runs it for you. Order matters:
#   1. CI_IMAGE_TAG in .gitlab-ci.yml, from Dockerfile.ci, requirements.lock and .mise/config.toml;
#   2. .cache-key, from pyproject.toml, requirements.lock, .gitlab-ci.yml, Dockerfile.ci and .mise/config.toml
#      (it covers .gitlab-ci.yml, so it comes after step 1 changed that file).
set -eu

FILES="pyproject.toml requirements.lock .gitlab-ci.yml Dockerfile.ci .mise/config.toml"

sh ci/image-tag.sh --write

cidash=""
if command -v cidash >/dev/null 2>&1; then
    cidash=cidash
elif [ -x .venv/bin/cidash ]; then
    cidash=.venv/bin/cidash
fi
# shellcheck disable=SC2086 # word splitting of the fixed file list is intended
if [ -n "$cidash" ] && "$cidash" key --write .cache-key $FILES >/dev/null 2>&1; then
    echo ".cache-key written by: cidash key --write .cache-key $FILES"
else
    # cidash key is byte-identical to sha256sum; this keeps the script usable in a bare checkout.
    sha256sum $FILES >.cache-key.tmp
    mv .cache-key.tmp .cache-key
    echo ".cache-key written by: sha256sum $FILES (cidash key not available)"
fi
cat .cache-key
