#!/usr/bin/env bash
# hack/kind-up.sh: kubenova on a local kind cluster, end to end, on a machine with Docker.
#
#   1. a kind cluster (one control-plane node, one worker labelled as a compute host);
#   2. the images built from the Dockerfile (operator, launcher, guest) and loaded into kind;
#   3. the test guest served inside the cluster (http://kubenova-guest.<namespace>.svc:8080);
#   4. the Helm chart installed (charts/kubenova) with the chosen driver;
#   5. examples/flavor.yaml, image.yaml (pointed at the served guest) and instance.yaml applied;
#   6. `kubectl wait --for=condition=Ready instance/demo`, then the boot latency printed.
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
RELEASE=kubenova
TENANT=default
CONTEXT="kind-$CLUSTER"
HOST_LABEL=compute.kubenova.io/host

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
checksum=$(docker run --rm --entrypoint cat "kubenova-guest:$TAG" /srv/guest/busybox.qcow2.sha256)
loaded=(kubenova:"$TAG" kubenova-launcher:"$TAG" kubenova-guest:"$TAG")
if [[ "$DRIVER" == kubevirt ]]; then
  # The kubevirt driver names an Image's containerDisk after its checksum.
  docker tag "kubenova-guest-disk:$TAG" "kubenova-guest-disk:$checksum"
  loaded+=("kubenova-guest-disk:$checksum")
fi
say "loading ${loaded[*]} into kind"
kind load docker-image --name "$CLUSTER" "${loaded[@]}"

# -- 3. namespace and the guest server ------------------------------------------------------------
# The operator's pod meets PodSecurity "restricted" and the QEMU pods "baseline" at least.
k create namespace "$NAMESPACE" --dry-run=client -o yaml | k apply -f - >/dev/null
k label namespace "$NAMESPACE" --overwrite \
  pod-security.kubernetes.io/enforce=baseline pod-security.kubernetes.io/warn=restricted >/dev/null
say "serving the test guest in $NAMESPACE (sha256 $checksum)"
k -n "$NAMESPACE" apply -f - <<EOF >/dev/null
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kubenova-guest
  labels: {app.kubernetes.io/name: kubenova-guest, app.kubernetes.io/part-of: kubenova}
spec:
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/name: kubenova-guest}}
  template:
    metadata:
      labels: {app.kubernetes.io/name: kubenova-guest, app.kubernetes.io/part-of: kubenova}
    spec:
      securityContext:
        runAsNonRoot: true
        runAsUser: 65534
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: http
          image: kubenova-guest:$TAG
          imagePullPolicy: IfNotPresent
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /busybox.qcow2.sha256, port: http}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
---
apiVersion: v1
kind: Service
metadata:
  name: kubenova-guest
  labels: {app.kubernetes.io/name: kubenova-guest, app.kubernetes.io/part-of: kubenova}
spec:
  selector: {app.kubernetes.io/name: kubenova-guest}
  ports: [{name: http, port: 8080, targetPort: http}]
EOF
k -n "$NAMESPACE" rollout status deployment/kubenova-guest --timeout=180s

# -- 4. compute hosts, KubeVirt, the chart ---------------------------------------------------------
values=$(mktemp)
trap 'rm -f "$values"' EXIT
cat >"$values" <<EOF
driver: $DRIVER
image: {repository: kubenova, tag: "$TAG"}
launcherImage: {repository: kubenova-launcher, tag: "$TAG"}
# The guest is served from a Service (port 8080, the cluster's service network): the default
# import policy refuses both (only 80/443, no private address), and the Image would be killed.
imageImport: {allowedPorts: [80, 443, 8080], allowedNetworks: ["10.96.0.0/12"]}
EOF
if [[ "$DRIVER" == qemu ]]; then
  # The operator registers its own compute host (Node compute-0) and runs the VM in its pod.
  k label node "$WORKER" "$HOST_LABEL-" >/dev/null 2>&1 || true
  printf 'resources: {requests: {cpu: 500m, memory: 512Mi}, limits: {memory: 2Gi}}\n' >>"$values"
else
  say "labelling $WORKER as a compute host ($HOST_LABEL=true)"
  k label node "$WORKER" --overwrite "$HOST_LABEL=true" topology.kubernetes.io/zone=nova >/dev/null
fi
if [[ "$DRIVER" == kubevirt ]]; then
  say "installing KubeVirt $KUBEVIRT_VERSION (software emulation: no nested KVM assumed)"
  base="https://github.com/kubevirt/kubevirt/releases/download/$KUBEVIRT_VERSION"
  k apply -f "$base/kubevirt-operator.yaml"
  k apply -f "$base/kubevirt-cr.yaml"
  k -n kubevirt patch kubevirt kubevirt --type=merge \
    -p '{"spec":{"configuration":{"developerConfiguration":{"useEmulation":true}}}}'
  k -n kubevirt wait kv kubevirt --for condition=Available --timeout=10m
  printf 'kubevirt: {containerDisk: "kubenova-guest-disk:{checksum}"}\n' >>"$values"
fi
say "helm upgrade --install $RELEASE charts/kubenova (driver $DRIVER)"
helm --kube-context "$CONTEXT" upgrade --install "$RELEASE" "$REPO_DIR/charts/kubenova" \
  --namespace "$NAMESPACE" --values "$values" --wait --timeout 5m

# -- 5. the example -------------------------------------------------------------------------------
source_url="http://kubenova-guest.$NAMESPACE.svc:8080/busybox.qcow2"
k apply -f "$REPO_DIR/examples/flavor.yaml"
sed -e "s|^  source: .*|  source: $source_url|" -e "s|^  checksum: .*|  checksum: \"$checksum\"|" \
  "$REPO_DIR/examples/image.yaml" | k -n "$TENANT" apply -f -
k -n "$TENANT" delete instance demo --ignore-not-found --wait=true >/dev/null
k -n "$TENANT" apply -f "$REPO_DIR/examples/instance.yaml"

# -- 6. wait, report ------------------------------------------------------------------------------
say "waiting for instance/demo to be Ready (ACTIVE; up to $TIMEOUT)"
if ! k -n "$TENANT" wait --for=condition=Ready instance/demo --timeout="$TIMEOUT"; then
  k -n "$TENANT" describe instance demo || true
  k -n "$NAMESPACE" logs "deployment/$RELEASE" --tail=50 || true
  die "instance/demo did not become ACTIVE"
fi
k -n "$TENANT" get instance demo -o wide

created=$(k -n "$TENANT" get instance demo -o jsonpath='{.metadata.creationTimestamp}')
accepted=$(k -n "$TENANT" get instance demo -o jsonpath='{.status.phaseTransitionTimestamps[0].time}')
active=$(k -n "$TENANT" get instance demo \
  -o jsonpath='{.status.phaseTransitionTimestamps[?(@.vmState=="ACTIVE")].time}')
host=$(k -n "$TENANT" get instance demo -o jsonpath='{.status.host}')
seconds() { date -u -d "$1" +%s.%N 2>/dev/null; }  # GNU date; elsewhere only the metric
if a=$(seconds "$accepted") && b=$(seconds "$active"); then
  awk -v a="$a" -v b="$b" -v h="$host" \
    'BEGIN { printf "boot latency (accepted -> ACTIVE, guest booted): %.2fs on %s\n", b - a, h }'
fi
metrics="/api/v1/namespaces/$NAMESPACE/services/http:$RELEASE-metrics:metrics/proxy/metrics"
sum=$(k get --raw "$metrics" | awk '/^kubenova_instance_create_to_active_seconds_sum/ {print $2}')
echo "kubenova_instance_create_to_active_seconds (created $created -> ACTIVE): ${sum:-?}s"
echo "metrics: kubectl --context $CONTEXT get --raw $metrics"
echo "try: kubectl --context $CONTEXT get instances -A; hack/kind-down.sh removes everything"
