#!/bin/sh
# Does IMAGE (registry/path:tag) exist? One HTTP HEAD on its manifest, no pull: the registry answers
# from its metadata and no layer is downloaded. Prints the Docker-Content-Digest and exits 0 when it exists,
# exits 1 when the registry says 404, 2 on any other answer (auth, network): "unknown" is never "missing".
#
# Inside GitLab CI it gets a pull token for the repository from GitLab's /jwt/auth with the job's registry
# credentials (CI_REGISTRY_USER/CI_REGISTRY_PASSWORD); credentials go to curl on stdin, never on the
# command line. Needs curl.
set -eu

image=${1:?usage: sh ci/registry-head.sh REGISTRY/PATH:TAG}
registry=${image%%/*}
rest=${image#*/}
repo=${rest%:*}
tag=${rest##*:}
[ "$repo" != "$rest" ] || { echo "no :tag in $image" >&2; exit 2; }

ACCEPT="application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

token=""
if [ -n "${CI_REGISTRY_USER:-}" ] && [ -n "${CI_REGISTRY_PASSWORD:-}" ] && [ -n "${CI_SERVER_URL:-}" ]; then
    token=$(printf 'user = "%s:%s"\n' "$CI_REGISTRY_USER" "$CI_REGISTRY_PASSWORD" |
        curl --fail --silent --show-error --config - \
            "$CI_SERVER_URL/jwt/auth?service=container_registry&scope=repository:$repo:pull" |
        sed -n 's/.*"token" *: *"\([^"]*\)".*/\1/p') || { echo "could not get a registry token" >&2; exit 2; }
fi

headers=$(mktemp)
trap 'rm -f "$headers"' EXIT
if [ -n "$token" ]; then
    auth="header = \"Authorization: Bearer $token\""
else
    auth=""
fi
status=$(printf '%s\n' "$auth" |
    curl --silent --show-error --head --config - --output /dev/null --dump-header "$headers" \
        --write-out '%{http_code}' --header "Accept: $ACCEPT" "https://$registry/v2/$repo/manifests/$tag") ||
    { echo "registry $registry did not answer" >&2; exit 2; }

case "$status" in
200)
    tr -d '\r' <"$headers" | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: *//p'
    ;;
404)
    exit 1
    ;;
*)
    echo "HEAD $image: HTTP $status" >&2
    exit 2
    ;;
esac
