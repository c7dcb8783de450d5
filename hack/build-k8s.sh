#!/usr/bin/env bash
# Builds kube-apiserver, kube-scheduler and kubectl from the Go module proxy through the wrapper
# module in hack/gomod/k8s, with the real version stamped in, into the tool cache.
source "$(dirname "$0")/lib.sh"
out="$CACHE_DIR/kubernetes-$K8S_VERSION"
if [[ ! -x "$out/kube-apiserver" || ! -x "$out/kube-scheduler" || ! -x "$out/kubectl" ]]; then
  log "building kubernetes $K8S_VERSION (kube-apiserver, kube-scheduler, kubectl); first time only, ~15 min"
  pinned=$(cd "$HACK_DIR/gomod/k8s" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
  [[ "$pinned" == "$K8S_VERSION" ]] || { log "hack/gomod/k8s pins $pinned, versions.env says $K8S_VERSION"; exit 1; }
  grep -q "k8s.io/api => k8s.io/api $K8S_STAGING_VERSION\$" "$HACK_DIR/gomod/k8s/go.mod" \
    || { log "hack/gomod/k8s does not pin the staging modules to $K8S_STAGING_VERSION"; exit 1; }
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  mkdir -p "$out.tmp"
  for cmd in kube-apiserver kube-scheduler kubectl; do
    (cd "$HACK_DIR/gomod/k8s" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" \
      -o "$out.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd")
  done
  rm -rf "$out" && mv "$out.tmp" "$out"
fi
for cmd in kube-apiserver kube-scheduler kubectl; do link_tool "$cmd" "$out/$cmd"; done
