#!/usr/bin/env bash
# Builds the gateway's container image with buildah, in chroot isolation on vfs storage (no
# daemon, no user namespaces, no overlay mounts needed):
#   1. a Debian root file system from mmdebstrap, kept in a cache keyed by what makes it;
#   2. wheels of the gateway and everything it needs, built here under constraints.txt;
#   3. deploy/container/Containerfile, whose install step reaches no package index.
#
# Usage: deploy/container/build.sh [IMAGE]     (IMAGE defaults to mn-api:<version>)
# Settings, all optional:
#   MN_IMAGE_PYTHON  the Python whose pip builds the wheels (.venv/bin/python, else python3);
#                    its minor version picks the Debian release, whose python3 must match
#   MN_IMAGE_SUITE   the Debian release of the base (bookworm for 3.11, trixie for 3.13)
#   MN_IMAGE_MIRROR  the Debian mirror mmdebstrap reads (its default otherwise)
#   MN_IMAGE_CACHE   where base file systems are kept
#                    (${XDG_CACHE_HOME:-$HOME/.cache}/mn-api/image)
#   MN_IMAGE_TAGFILE a file to write the built image's name to
# Prints the image's name last, and each step's duration on stderr.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
storage=(--storage-driver vfs)

python="${MN_IMAGE_PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$root/.venv/bin/python" ]; then python="$root/.venv/bin/python"; else python=python3; fi
fi
minor="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
case "${MN_IMAGE_SUITE:-$minor}" in
  3.11) suite=bookworm ;;
  3.13) suite=trixie ;;
  3.*)
    echo "build.sh: no Debian release ships Python $minor; set MN_IMAGE_SUITE and MN_IMAGE_PYTHON" >&2
    exit 2
    ;;
  *) suite="$MN_IMAGE_SUITE" ;;
esac

for tool in mmdebstrap buildah; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build.sh: $tool is missing (make image installs it)" >&2
    exit 2
  fi
done

step_started=$SECONDS
step() { # the name of the step just finished; its duration goes to stderr
  echo "build.sh: $1 in $((SECONDS - step_started)) s" >&2
  step_started=$SECONDS
}

# 1. The base file system. Documentation, manual pages and translations are left out
#    (copyright files stay); its key is everything that decides its content.
packages="python3 python3-venv ca-certificates tini passwd netbase"
dpkg_options=(
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
)
arch="$(dpkg --print-architecture)"
cache="${MN_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mn-api/image}"
key="$(printf '%s\n' "$suite" "$arch" essential "$packages" "${dpkg_options[@]}" \
  "${MN_IMAGE_MIRROR:-}" | sha256sum | cut -c1-16)"
base="$cache/base-$suite-$arch-$key.tar"
mkdir -p "$cache"
if [ -s "$base" ]; then
  step "base $suite (cached)"
else
  partial="$(mktemp "$cache/.base-XXXXXX.tar")"
  trap 'rm -f "$partial"' EXIT
  # shellcheck disable=SC2086 # the package list is one word per package
  mmdebstrap --quiet --variant=essential --include="${packages// /,}" \
    "${dpkg_options[@]}" --format=tar "$suite" "$partial" ${MN_IMAGE_MIRROR:-}
  mv "$partial" "$base"
  trap - EXIT
  step "base $suite (made)"
fi

# 2. The context: the Containerfile, the health check, the base and the wheels. It lives
#    next to the cache, so the base is linked into it rather than copied.
context="$(mktemp -d "$cache/.context-XXXXXX")"
partial_deps=""
trap 'rm -rf "$context" $partial_deps' EXIT
cp "$here/Containerfile" "$here/healthcheck.py" "$context/"
ln "$base" "$context/base.tar" 2>/dev/null || cp "$base" "$context/base.tar"
# What the image's Python needs beyond what this one resolves (markers on the exact
# version: Debian's 3.11.2 needs async-timeout, 3.11.7 does not).
needed="$("$python" "$here/target_requirements.py" "$base" "$root/constraints.txt")"
extra=()
if [ -n "$needed" ]; then mapfile -t extra <<<"$needed"; fi
# The dependencies' wheels are kept next to the base, keyed by what decides them (the lock,
# the declared dependencies, the image's extra needs, this Python); the gateway's own wheel
# is built each time.
deps_key="$(cat "$root/constraints.txt" "$root/pyproject.toml" <(printf '%s\n' "$needed" "$arch") \
  <("$python" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)"
deps="$cache/wheels-$suite-$arch-$deps_key"
if [ ! -d "$deps" ]; then
  partial_deps="$(mktemp -d "$cache/.wheels-XXXXXX")"
  "$python" -m pip wheel --quiet --disable-pip-version-check --constraint "$root/constraints.txt" \
    --wheel-dir "$partial_deps" "$root" "${extra[@]}"
  rm -f "$partial_deps"/mirrorneuron_gateway-*.whl
  mv "$partial_deps" "$deps"
fi
"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps \
  --wheel-dir "$context/wheels" "$root"
for wheel in "$deps"/*.whl; do
  case "${wheel##*/}" in
    mirrorneuron_gateway-* | mn_api-*) continue ;;  # the gateway's own: built just above
  esac
  ln "$wheel" "$context/wheels/" 2>/dev/null || cp "$wheel" "$context/wheels/"
done
step "wheels"

own=("$context"/wheels/mirrorneuron_gateway-*.whl)
if [ "${#own[@]}" -ne 1 ]; then
  echo "build.sh: expected one wheel of the gateway in the context, found ${#own[@]}" >&2
  exit 1
fi
wheel="${own[0]##*/}"
version="${wheel#mirrorneuron_gateway-}"
version="${version%%-*}"
image="${1:-mn-api:${version//+/-}}"
revision="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"

# 3. The image, committed once at its end: on vfs storage every layer is a whole copy of
#    the file system, so caching intermediate layers (--layers) costs more than the steps
#    it would save. The docker format keeps the HEALTHCHECK (OCI images have no such field).
#    Chroot isolation shares the host's network, so where a network namespace of its own
#    can be made (as root), the build runs in one with no interface up: proof that it
#    reaches no index.
offline=()
if unshare --net true 2>/dev/null; then offline=(unshare --net --); fi
"${offline[@]}" buildah "${storage[@]}" build --quiet --isolation chroot --layers=false --format docker \
  --label "org.opencontainers.image.title=mn-api" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$revision" \
  --tag "$image" --file "$context/Containerfile" "$context" >/dev/null
step "image $image"

if [ -n "${MN_IMAGE_TAGFILE:-}" ]; then
  printf '%s\n' "$image" >"$MN_IMAGE_TAGFILE"
fi
echo "$image"
