#!/usr/bin/env bash
# Builds etcd (3.5: Debian's 3.4 lacks the watch features kube-apiserver uses) into the tool cache.
source "$(dirname "$0")/lib.sh"
out="$CACHE_DIR/etcd-$ETCD_VERSION"
if [[ ! -x "$out/etcd" ]]; then
  pinned=$(cd "$HACK_DIR/gomod/etcd" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)
  [[ "$pinned" == "$ETCD_VERSION" ]] || { log "hack/gomod/etcd pins $pinned, versions.env says $ETCD_VERSION"; exit 1; }
  log "building etcd $ETCD_VERSION"
  mkdir -p "$out.tmp"
  (cd "$HACK_DIR/gomod/etcd" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" .)
  rm -rf "$out" && mv "$out.tmp" "$out"
fi
link_tool etcd "$out/etcd"
