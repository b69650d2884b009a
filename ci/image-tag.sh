#!/bin/sh
# The content-addressed tag of the CI image: the first 16 hex digits of the SHA-256 of the output of
# `sha256sum Dockerfile.ci requirements.lock .mise/config.toml` (the image inputs). Run from the repository root.
#
#   sh ci/image-tag.sh                  print the tag for the working tree
#   sh ci/image-tag.sh --check          exit 1 unless CI_IMAGE_TAG in .gitlab-ci.yml is that tag
#   sh ci/image-tag.sh --write          set CI_IMAGE_TAG in .gitlab-ci.yml to that tag
#   sh ci/image-tag.sh --committed REF  print CI_IMAGE_TAG as committed at git REF (rollback, fallback)
#
# The tag is committed in .gitlab-ci.yml because GitLab needs it when it creates the pipeline: the
# image build's resource_group is per tag, and `image:` of every job names it.
set -eu

INPUTS="Dockerfile.ci requirements.lock .mise/config.toml"
CI_FILE=.gitlab-ci.yml

computed() {
    # shellcheck disable=SC2086 # word splitting of the fixed file list is intended
    sha256sum $INPUTS | sha256sum | cut -c1-16
}

committed() {
    sed -n 's/^  CI_IMAGE_TAG: *"\{0,1\}\([0-9a-f]*\)"\{0,1\} *$/\1/p' "$1"
}

case "${1:-}" in
"")
    computed
    ;;
--check)
    want=$(computed)
    have=$(committed "$CI_FILE")
    if [ "$want" != "$have" ]; then
        echo "CI_IMAGE_TAG in $CI_FILE is '$have' but the image inputs ($INPUTS) give '$want'."
        echo "fix: sh ci/update-keys.sh   and commit the result."
        exit 1
    fi
    echo "CI_IMAGE_TAG $have matches the image inputs."
    ;;
--write)
    want=$(computed)
    [ -n "$(committed "$CI_FILE")" ] || { echo "no '  CI_IMAGE_TAG: \"...\"' line in $CI_FILE" >&2; exit 2; }
    tmp="$CI_FILE.tmp.$$"
    sed "s/^  CI_IMAGE_TAG: .*\$/  CI_IMAGE_TAG: \"$want\"/" "$CI_FILE" >"$tmp"
    cat "$tmp" >"$CI_FILE" # keep the file's own mode and inode
    rm -f "$tmp"
    echo "CI_IMAGE_TAG: $want"
    ;;
--committed)
    ref=${2:?usage: sh ci/image-tag.sh --committed REF}
    tmp=$(mktemp)
    git show "$ref:$CI_FILE" >"$tmp"
    committed "$tmp"
    rm -f "$tmp"
    ;;
*)
    echo "usage: sh ci/image-tag.sh [--check | --write | --committed REF]" >&2
    exit 2
    ;;
esac
