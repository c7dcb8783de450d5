#!/usr/bin/env bash
# helm and kwok through `go install`, each version in its own cache folder.
source "$(dirname "$0")/lib.sh"
install() { # NAME PACKAGE VERSION
  local out="$CACHE_DIR/$1-$3"
  if [[ ! -x "$out/$1" ]]; then
    log "go install $2@$3"
    GOBIN="$out.tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$2@$3"
    rm -rf "$out" && mv "$out.tmp" "$out"
  fi
  link_tool "$1" "$out/$1"
}
install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
