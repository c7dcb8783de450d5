#!/usr/bin/env bash
# hack/kind-up.sh: kubenova on a local kind cluster, end to end, on a machine with Docker.
#
#   1. a kind cluster (one control-plane node, one worker labelled as a compute host);
#   2. the images built from the Dockerfile (operator, launcher, guest) and loaded into kind;
#   3. KubeVirt, with driver kubevirt;
#   4. hack/chart-demo.sh (shared with hack/cluster-demo.sh): the test guest served inside the
#      cluster, the Helm chart installed, the example applied, waited for, its boot latency printed.
#
# Needs an x86-64 machine with docker, kind (v0.20+), kubectl and helm 3 on PATH; nothing from
# `make setup`.
# Settings (environment):
#   KUBENOVA_DRIVER     pod (default: QEMU pods on the worker), qemu (the operator's embedded
#                       host), kubevirt (installs KubeVirt $KUBEVIRT_VERSION with emulation)
#   KUBENOVA_CLUSTER    kind cluster name (kubenova)
#   KUBENOVA_NAMESPACE  the operator's namespace (kubenova-system)
#   KUBENOVA_TAG        image tag (dev)
#   KUBENOVA_TIMEOUT    how long to wait for the instance (600s: TCG, no /dev/kvm in kind)
#   KIND_NODE_IMAGE     kindest/node image (kind's default; Kubernetes 1.31+ is needed)
# hack/kind-down.sh deletes the cluster.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRIVER="${KUBENOVA_DRIVER:-pod}"
CLUSTER="${KUBENOVA_CLUSTER:-kubenova}"
NAMESPACE="${KUBENOVA_NAMESPACE:-kubenova-system}"
TAG="${KUBENOVA_TAG:-dev}"
TIMEOUT="${KUBENOVA_TIMEOUT:-600s}"
KUBEVIRT_VERSION="${KUBEVIRT_VERSION:-v1.5.0}"
CONTEXT="kind-$CLUSTER"

say() { printf '\033[1m[kind-up]\033[0m %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
k() { kubectl --context "$CONTEXT" "$@"; }

for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || die "$tool is required"
done
case "$DRIVER" in pod | qemu | kubevirt) ;; *) die "KUBENOVA_DRIVER must be pod, qemu or kubevirt" ;; esac

# -- 1. the cluster ------------------------------------------------------------------------------
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  say "kind cluster $CLUSTER exists; reusing it"
else
  say "creating kind cluster $CLUSTER"
  args=(create cluster --name "$CLUSTER" --wait 120s --config -)
  [[ -n "${KIND_NODE_IMAGE:-}" ]] && args+=(--image "$KIND_NODE_IMAGE")
  kind "${args[@]}" <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
  - role: worker
EOF
fi
WORKER="$CLUSTER-worker"

# -- 2. images -----------------------------------------------------------------------------------
images=(operator:kubenova launcher:kubenova-launcher guest:kubenova-guest)
[[ "$DRIVER" == kubevirt ]] && images+=(guest-disk:kubenova-guest-disk)
for pair in "${images[@]}"; do
  target=${pair%%:*} image=${pair#*:}
  say "building $image:$TAG (docker build --target $target)"
  docker build --target "$target" -t "$image:$TAG" "$REPO_DIR"
done
loaded=(kubenova:"$TAG" kubenova-launcher:"$TAG" kubenova-guest:"$TAG")
if [[ "$DRIVER" == kubevirt ]]; then
  # The kubevirt driver names an Image's containerDisk after its checksum.
  checksum=$(docker run --rm --entrypoint cat "kubenova-guest:$TAG" /srv/guest/busybox.qcow2.sha256)
  checksum=${checksum%% *}
  docker tag "kubenova-guest-disk:$TAG" "kubenova-guest-disk:$checksum"
  loaded+=("kubenova-guest-disk:$checksum")
fi
say "loading ${loaded[*]} into kind"
kind load docker-image --name "$CLUSTER" "${loaded[@]}"

# -- 3. KubeVirt (driver kubevirt) -----------------------------------------------------------------
if [[ "$DRIVER" == kubevirt ]]; then
  say "installing KubeVirt $KUBEVIRT_VERSION (software emulation: no nested KVM assumed)"
  base="https://github.com/kubevirt/kubevirt/releases/download/$KUBEVIRT_VERSION"
  k apply -f "$base/kubevirt-operator.yaml"
  k apply -f "$base/kubevirt-cr.yaml"
  k -n kubevirt patch kubevirt kubevirt --type=merge \
    -p '{"spec":{"configuration":{"developerConfiguration":{"useEmulation":true}}}}'
  k -n kubevirt wait kv kubevirt --for condition=Available --timeout=10m
fi
# The qemu driver registers its own compute host (compute-0) in the operator's pod.
[[ "$DRIVER" != qemu ]] || k label node "$WORKER" "compute.kubenova.io/host-" >/dev/null 2>&1 || true

# -- 4. the guest server, the chart, the example: the steps the local cluster runs too ------------
KUBENOVA_CONTEXT="$CONTEXT" KUBENOVA_DRIVER="$DRIVER" KUBENOVA_COMPUTE_NODE="$WORKER" \
  KUBENOVA_NAMESPACE="$NAMESPACE" KUBENOVA_TAG="$TAG" KUBENOVA_TIMEOUT="$TIMEOUT" \
  "$REPO_DIR/hack/chart-demo.sh"
echo "try: kubectl --context $CONTEXT get instances -A; hack/kind-down.sh removes everything"
