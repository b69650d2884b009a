#!/bin/sh
# Verify the committed .cache-key with the system's own `sha256sum -c` (BusyBox on Alpine, coreutils
# elsewhere): the first job of the pipeline runs this. Run from the repository root.
#
# GitLab computes `cache:key:files` when it creates the pipeline, from the files as committed, so the
# combined checksum must be committed too (README, "Cache keys"). This job catches a commit that changed
# one of the five files without regenerating it: it names the file and prints the command that fixes it.
set -u

KEY_FILE=.cache-key
FILES="pyproject.toml requirements.lock .gitlab-ci.yml Dockerfile.ci .mise/config.toml"
FIX="sh ci/update-keys.sh   (or: sh ci/image-tag.sh --write && cidash key --write $KEY_FILE $FILES)"

fail() {
    printf '%s\n' "$@"
    printf 'fix: %s\nthen commit the result.\n' "$FIX"
    exit 1
}

[ -f "$KEY_FILE" ] || fail "$KEY_FILE is missing."

# It must list exactly the five files, in this order: with a line dropped, `sha256sum -c` would still
# pass while the cache key silently ignored that file.
listed=$(sed 's/^[0-9a-f]\{64\}  //' "$KEY_FILE" | tr '\n' ' ' | sed 's/ $//')
[ "$listed" = "$FILES" ] || fail "$KEY_FILE lists: $listed" "expected exactly, in order: $FILES"

if out=$(sha256sum -c "$KEY_FILE" 2>&1); then
    printf '%s\n' "$out"
    echo "$KEY_FILE is up to date."
    exit 0
fi
printf '%s\n' "$out"
echo
echo "$KEY_FILE is stale: the cache key no longer matches the files that define the CI environment."
for f in $FILES; do
    recorded=$(grep "  $f\$" "$KEY_FILE" | cut -c1-64)
    if [ ! -f "$f" ]; then
        echo "  missing: $f"
    elif [ "$(sha256sum "$f" | cut -c1-64)" != "$recorded" ]; then
        echo "  changed: $f"
    fi
done
fail ""
