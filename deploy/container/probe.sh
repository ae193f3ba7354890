#!/usr/bin/env bash
# Starts the gateway in a container of IMAGE and probes it (deploy/container/probe.py):
# health, readiness, the image's health check, a job, a clean stop on SIGTERM. Runs in
# chroot isolation on vfs storage, as build.sh builds; `buildah run` rather than `podman
# run`, which needs to set resource limits that a container host may refuse.
#
# Usage: deploy/container/probe.sh IMAGE      Exit status 0: the image works.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
image="${1:?usage: probe.sh IMAGE}"
storage=(--storage-driver vfs)

container="$(buildah "${storage[@]}" from --quiet "$image")"
trap 'buildah "${storage[@]}" rm "$container" >/dev/null' EXIT
started=$SECONDS
buildah "${storage[@]}" run --isolation chroot \
  --volume "$here/probe.py:/opt/mn-api/probe.py:ro" \
  "$container" -- /usr/bin/python3 /opt/mn-api/probe.py
echo "probe.sh: $image passed in $((SECONDS - started)) s" >&2
