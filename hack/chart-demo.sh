#!/usr/bin/env bash
# hack/chart-demo.sh: the chart on a running cluster, end to end (shared by hack/kind-up.sh and
# hack/cluster-demo.sh, so both paths run the same steps):
#
#   1. the operator's namespace, where the QEMU pods run too (PodSecurity "restricted" enforced:
#      the operator, the launcher and the guest server all meet it), and the test guest served
#      inside the cluster (http://kubenova-guest.<namespace>.svc:8080);
#   2. the compute host labelled (compute.kubenova.io/host=true) for the pod and kubevirt drivers;
#   3. `helm upgrade --install` of charts/kubenova with the images already in the cluster;
#   4. examples/flavor.yaml, image.yaml (pointed at the served guest) and instance.yaml applied;
#   5. `kubectl wait --for=condition=Ready instance/demo`, the boot latency and the metric printed.
#
# Needs kubectl and helm on PATH, and the images (kubenova, kubenova-launcher, kubenova-guest)
# loaded into the cluster's runtime under $KUBENOVA_TAG.
# Settings (environment):
#   KUBENOVA_KUBECONFIG     kubeconfig (default: kubectl's)      KUBENOVA_CONTEXT  its context
#   KUBENOVA_DRIVER         pod (default), qemu or kubevirt
#   KUBENOVA_COMPUTE_NODE   the Node labelled as the compute host (pod and kubevirt drivers)
#   KUBENOVA_NAMESPACE      the operator's namespace (kubenova-system)
#   KUBENOVA_TAG            image tag (dev)
#   KUBENOVA_TIMEOUT        how long to wait for the instance (600s)
#   KUBENOVA_VALUES         extra values files for helm, space-separated
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRIVER="${KUBENOVA_DRIVER:-pod}"
NAMESPACE="${KUBENOVA_NAMESPACE:-kubenova-system}"
TAG="${KUBENOVA_TAG:-dev}"
TIMEOUT="${KUBENOVA_TIMEOUT:-600s}"
NODE="${KUBENOVA_COMPUTE_NODE:-}"
RELEASE=kubenova
TENANT=default
HOST_LABEL=compute.kubenova.io/host

say() { printf '\033[1m[chart-demo]\033[0m %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
kube_args=()
[[ -n "${KUBENOVA_KUBECONFIG:-}" ]] && kube_args+=(--kubeconfig "$KUBENOVA_KUBECONFIG")
helm_args=("${kube_args[@]}")
if [[ -n "${KUBENOVA_CONTEXT:-}" ]]; then
  kube_args+=(--context "$KUBENOVA_CONTEXT")
  helm_args+=(--kube-context "$KUBENOVA_CONTEXT")
fi
k() { kubectl "${kube_args[@]}" "$@"; }

for tool in kubectl helm; do command -v "$tool" >/dev/null || die "$tool is required"; done
case "$DRIVER" in pod | qemu | kubevirt) ;; *) die "KUBENOVA_DRIVER must be pod, qemu or kubevirt" ;; esac
[[ "$DRIVER" == qemu || -n "$NODE" ]] || die "KUBENOVA_COMPUTE_NODE names the compute host Node"

# -- 1. namespace and the guest server -----------------------------------------------------------
# The operator's pod, the QEMU launcher pods and the guest server meet PodSecurity "restricted":
# non-root, no capabilities, no privilege escalation, RuntimeDefault seccomp, no hostPath.
k create namespace "$NAMESPACE" --dry-run=client -o yaml | k apply -f - >/dev/null
k label namespace "$NAMESPACE" --overwrite \
  pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted >/dev/null
say "serving the test guest in $NAMESPACE (kubenova-guest:$TAG)"
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
k -n "$NAMESPACE" rollout status deployment/kubenova-guest --timeout=180s >/dev/null
# The checksum the guest image carries, read through the apiserver's service proxy.
guest="/api/v1/namespaces/$NAMESPACE/services/http:kubenova-guest:http/proxy"
checksum=$(k get --raw "$guest/busybox.qcow2.sha256" | awk '{print $1}')
[[ "$checksum" =~ ^[0-9a-f]{64}$ ]] || die "no sha256 from the guest server: '$checksum'"

# -- 2. compute host ---------------------------------------------------------------------------
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
  printf 'resources: {requests: {cpu: 500m, memory: 512Mi}, limits: {memory: 2Gi}}\n' >>"$values"
else
  say "labelling $NODE as a compute host ($HOST_LABEL=true)"
  k label node "$NODE" --overwrite "$HOST_LABEL=true" topology.kubernetes.io/zone=nova >/dev/null
fi
if [[ "$DRIVER" == kubevirt ]]; then
  printf 'kubevirt: {containerDisk: "kubenova-guest-disk:{checksum}"}\n' >>"$values"
fi

# -- 3. the chart --------------------------------------------------------------------------------
extra=()
for f in ${KUBENOVA_VALUES:-}; do extra+=(--values "$f"); done
say "helm upgrade --install $RELEASE charts/kubenova (driver $DRIVER)"
helm "${helm_args[@]}" upgrade --install "$RELEASE" "$REPO_DIR/charts/kubenova" \
  --namespace "$NAMESPACE" --values "$values" "${extra[@]}" --wait --timeout 5m

# -- 4. the example -------------------------------------------------------------------------------
source_url="http://kubenova-guest.$NAMESPACE.svc:8080/busybox.qcow2"
k apply -f "$REPO_DIR/examples/flavor.yaml" >/dev/null
sed -e "s|^  source: .*|  source: $source_url|" -e "s|^  checksum: .*|  checksum: \"$checksum\"|" \
  "$REPO_DIR/examples/image.yaml" | k -n "$TENANT" apply -f - >/dev/null
k -n "$TENANT" delete instance demo --ignore-not-found --wait=true >/dev/null
k -n "$TENANT" apply -f "$REPO_DIR/examples/instance.yaml"

# -- 5. wait, report ------------------------------------------------------------------------------
say "waiting for instance/demo to be Ready (ACTIVE; up to $TIMEOUT)"
if ! k -n "$TENANT" wait --for=condition=Ready instance/demo --timeout="$TIMEOUT"; then
  k -n "$TENANT" describe instance demo || true
  k -n "$NAMESPACE" logs "deployment/$RELEASE" --tail=50 || true
  die "instance/demo did not become Ready"
fi
k -n "$TENANT" get instance demo -o wide

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
echo "kubenova_instance_create_to_active_seconds_sum: ${sum:-?}s"
echo "metrics: kubectl get --raw $metrics"
