#!/usr/bin/env bash
# `make cluster-demo`: the chart with its defaults on the local cluster (docs/cluster.md): the
# cluster brought up (hack/cluster-up.sh: cached; the images built here and imported), then the
# steps hack/kind-up.sh runs on kind (hack/chart-demo.sh): the guest served in the cluster, the
# chart installed, the example instance booted as a QEMU pod under the real kubelet.
# `make cluster-down` removes it all.
source "$(dirname "$0")/lib.sh"
source "$HACK_DIR/cluster/env.sh"
PATH="$BIN_DIR:$PATH"
"$HACK_DIR/cluster-up.sh"
tag=$(awk '$1 == "appVersion:" { gsub(/"/, "", $2); print $2 }' "$REPO_DIR/charts/kubenova/Chart.yaml")
KUBENOVA_KUBECONFIG="$KUBECONFIG_PATH" KUBENOVA_COMPUTE_NODE="$NODE_NAME" KUBENOVA_TAG="$tag" \
  "$HACK_DIR/chart-demo.sh"
echo "export KUBECONFIG=$KUBECONFIG_PATH; kubectl get instances -A; make cluster-down removes everything"
