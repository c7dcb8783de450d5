#!/usr/bin/env bash
# What the opt-in local cluster (hack/cluster-up.sh) runs, built and cached like hack/build-k8s.sh:
# kubelet, kube-controller-manager and kube-proxy from the same k8s.io/kubernetes wrapper module
# (hack/gomod/k8s, its own cache folder so make setup's kube-apiserver cache stays valid), coredns,
# crictl, local-path-provisioner and Prometheus (with Kubernetes discovery) by `go install`, the sandbox ("pause") and CoreDNS images as OCI archives made here
# from those binaries, and Debian's containerd, runc and CNI plugins. Not part of make setup.
source "$(dirname "$0")/lib.sh"

# shellcheck disable=SC2086  # word splitting of the package list is meant
apt_install_missing $CLUSTER_DEBIAN_PACKAGES

# kubelet, kube-controller-manager, kube-proxy: the recipe of hack/build-k8s.sh.
node_cmds=(kubelet kube-controller-manager kube-proxy)
out="$CACHE_DIR/kubernetes-node-$K8S_VERSION"
missing=0
for cmd in "${node_cmds[@]}"; do [[ -x "$out/$cmd" ]] || missing=1; done
if ((missing)); then
  log "building kubernetes $K8S_VERSION (${node_cmds[*]}); first time only, ~6 min on 2 cores"
  pinned=$(cd "$HACK_DIR/gomod/k8s" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
  [[ "$pinned" == "$K8S_VERSION" ]] || { log "hack/gomod/k8s pins $pinned, versions.env says $K8S_VERSION"; exit 1; }
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  for cmd in "${node_cmds[@]}"; do
    (cd "$HACK_DIR/gomod/k8s" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
      -o "$out.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
  rm -rf "$out" && mv "$out.tmp" "$out"
fi
for cmd in "${node_cmds[@]}"; do link_tool "$cmd" "$out/$cmd"; done

# go_install NAME PACKAGE VERSION
go_install() {
  local name="$1" package="$2" version="$3" out="$CACHE_DIR/$1-$3"
  if [[ ! -x "$out/$name" ]]; then
    log "go install $package@$version"
    rm -rf "$out.tmp"
    GOBIN="$out.tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$package@$version"
    rm -rf "$out" && mv "$out.tmp" "$out"
  fi
  link_tool "$name" "$out/$name"
}
go_install coredns github.com/coredns/coredns "$COREDNS_VERSION"
go_install crictl sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION"
go_install local-path-provisioner github.com/rancher/local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION"
prom="$CACHE_DIR/prometheus-$PROMETHEUS_K8S_VERSION"
if [[ ! -x "$prom/prometheus" ]]; then
  log "go install github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_K8S_MODULE_VERSION (~6 min)"
  rm -rf "$prom.tmp"
  v=github.com/prometheus/common/version
  GOBIN="$prom.tmp" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X $v.Version=$PROMETHEUS_K8S_VERSION -X $v.Branch=HEAD" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_K8S_MODULE_VERSION"
  rm -rf "$prom" && mv "$prom.tmp" "$prom"
fi
link_tool prometheus-k8s-sd "$prom/prometheus"

# The images, keyed by the content of what goes in (and of the scripts that make them).
images_hash=$({
  cat "$HACK_DIR/build-cluster.sh" "$HACK_DIR/cluster/oci-image.py" "$HACK_DIR"/cluster/pause/*
  echo "$COREDNS_VERSION $CLUSTER_HELPER_IMAGE"
  sha256sum /bin/busybox
} | sha256sum | cut -c1-12)
images="$CACHE_DIR/cluster-images-$images_hash"
if [[ ! -s "$images/pause.tar" || ! -s "$images/coredns.tar" || ! -s "$images/busybox.tar" ]]; then
  log "building the sandbox (pause), CoreDNS and busybox images"
  rm -rf "$images.tmp" && mkdir -p "$images.tmp"
  (cd "$HACK_DIR/cluster/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$images.tmp/pause" .)
  python3 "$HACK_DIR/cluster/oci-image.py" "$images.tmp/pause.tar" "$CLUSTER_PAUSE_IMAGE" \
    --entrypoint /pause --add "$images.tmp/pause:/pause"
  python3 "$HACK_DIR/cluster/oci-image.py" "$images.tmp/coredns.tar" "$CLUSTER_COREDNS_IMAGE" \
    --entrypoint /coredns --add "$CACHE_DIR/coredns-$COREDNS_VERSION/coredns:/coredns"
  # busybox runs the applet its name says: the three local-path's setup and teardown scripts use.
  python3 "$HACK_DIR/cluster/oci-image.py" "$images.tmp/busybox.tar" "$CLUSTER_HELPER_IMAGE" \
    --entrypoint /bin/sh --add /bin/busybox:/bin/sh --add /bin/busybox:/bin/mkdir --add /bin/busybox:/bin/rm
  rm -f "$images.tmp/pause"
  rm -rf "$images" && mv "$images.tmp" "$images"
fi
ln -sfn "$images" "$BIN_DIR/cluster-images"
