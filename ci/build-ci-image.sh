#!/bin/sh
# Build and push the CI image for the committed CI_IMAGE_TAG, unless that tag already exists.
# The build-ci-image job runs it in the buildah image (no Docker daemon); run from the repository root.
#
#   sh ci/build-ci-image.sh           CI: HEAD the tag; build, push and verify the pushed digest if needed
#   sh ci/build-ci-image.sh --local   build cidash-ci:<tag> locally with buildah, podman or docker; no push
#
# In CI a rebuild of an existing tag happens only on schedule or with FORCE_CI_IMAGE_REBUILD=true (to pick
# up base-image security patches); each build is also pushed as <tag>-p<pipeline id>, so the digest it
# replaces stays addressable for a rollback (README: "This repository's CI").
set -eu

tag=$(sh ci/image-tag.sh)
python_version=$(sh ci/mise-version.sh python)
uv_version=$(sh ci/mise-version.sh uv)

build() { # $1 = builder, $2 = image reference
    echo "+ $1 build --file Dockerfile.ci --build-arg PYTHON_VERSION=$python_version --build-arg UV_VERSION=$uv_version ... --tag $2 ."
    "$1" build --file Dockerfile.ci \
        --build-arg "PYTHON_VERSION=$python_version" \
        --build-arg "UV_VERSION=$uv_version" \
        --build-arg "REVISION=${CI_COMMIT_SHA:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}" \
        --build-arg "SOURCE=${CI_PROJECT_URL:-unknown}" \
        --tag "$2" .
}

if [ "${1:-}" = "--local" ]; then
    for builder in buildah podman docker; do
        if command -v "$builder" >/dev/null 2>&1; then
            build "$builder" "cidash-ci:$tag"
            exit 0
        fi
    done
    echo "none of buildah, podman, docker found" >&2
    exit 2
fi

: "${CI_IMAGE_REPO:?set by .gitlab-ci.yml}" "${CI_IMAGE_TAG:?set by .gitlab-ci.yml}"
committed=$(sed -n 's/^  CI_IMAGE_TAG: *"\([0-9a-f]*\)" *$/\1/p' .gitlab-ci.yml)
if [ "$CI_IMAGE_TAG" != "$committed" ]; then
    echo "CI_IMAGE_TAG is overridden for this pipeline ($CI_IMAGE_TAG, committed: $committed): a rollback or"
    echo "fallback run uses an existing image, so nothing is built."
    exit 0
fi
if [ "$tag" != "$committed" ]; then
    echo "CI_IMAGE_TAG $committed is not the content address of the image inputs ($tag)."
    echo "fix: sh ci/update-keys.sh   and commit the result."
    exit 1
fi
image="$CI_IMAGE_REPO:$tag"

forced=""
[ "${FORCE_CI_IMAGE_REBUILD:-}" = "true" ] && forced="FORCE_CI_IMAGE_REBUILD=true"
[ "${CI_PIPELINE_SOURCE:-}" = "schedule" ] && forced="scheduled rebuild"
if [ -z "$forced" ]; then
    set +e
    digest=$(sh ci/registry-head.sh "$image")
    found=$?
    set -e
    if [ "$found" -eq 0 ]; then
        echo "$image already exists ($digest): nothing to build."
        exit 0
    elif [ "$found" -ne 1 ]; then
        echo "could not tell whether $image exists (see above); failing rather than rebuilding blindly." >&2
        exit 1
    fi
    echo "$image does not exist yet: building."
else
    echo "$forced: rebuilding $image."
fi

printf '%s' "$CI_REGISTRY_PASSWORD" | buildah login --username "$CI_REGISTRY_USER" --password-stdin "$CI_REGISTRY"
build buildah "$image"

digestfile=$(mktemp)
if ! buildah push --digestfile "$digestfile" "$image"; then
    # Another pipeline may have pushed the same content address meanwhile: that is success.
    if digest=$(sh ci/registry-head.sh "$image"); then
        echo "push failed, but $image exists now ($digest), pushed by another pipeline: using it."
        exit 0
    fi
    exit 1
fi
pushed=$(cat "$digestfile")
if ! remote=$(sh ci/registry-head.sh "$image"); then
    echo "pushed $image ($pushed) but the registry does not list it." >&2
    exit 1
fi
if [ "$remote" = "$pushed" ]; then
    echo "pushed and verified: $image@$pushed"
else
    # Same tag = same inputs: a different digest means another build of the same content won the race.
    echo "pushed $pushed, but the registry now serves $remote for $image (another pipeline pushed the same"
    echo "inputs meanwhile): accepted."
fi
buildah push "$image" "docker://$image-p${CI_PIPELINE_ID:-0}"
echo "also pushed $image-p${CI_PIPELINE_ID:-0} (immutable name of this build, for rollbacks)."
