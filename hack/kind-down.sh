#!/usr/bin/env bash
# hack/kind-down.sh: delete the kind cluster hack/kind-up.sh made (and with --images, the images
# it built). Settings as for kind-up.sh: KUBENOVA_CLUSTER (kubenova), KUBENOVA_TAG (dev).
set -euo pipefail

CLUSTER="${KUBENOVA_CLUSTER:-kubenova}"
TAG="${KUBENOVA_TAG:-dev}"

command -v kind >/dev/null || { echo "kind is required" >&2; exit 1; }
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind delete cluster --name "$CLUSTER"
else
  echo "no kind cluster named $CLUSTER" >&2
fi
if [[ "${1:-}" == "--images" ]]; then
  for image in kubenova kubenova-launcher kubenova-guest kubenova-guest-disk; do
    docker image rm "$image:$TAG" 2>/dev/null || true
  done
  # The containerDisk is also tagged with the guest's checksum.
  docker image ls --format '{{.Repository}}:{{.Tag}}' kubenova-guest-disk | xargs -r docker image rm
fi
