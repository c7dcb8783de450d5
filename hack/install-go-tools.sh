#!/usr/bin/env bash
# helm and kwok through `go install`, each build in its own cache folder.
source "$(dirname "$0")/lib.sh"

# install NAME PACKAGE VERSION [LDFLAG...]: `go install` with "-s -w" plus the extra linker
# flags. The flags are part of the cache key (a hash in the folder's name), so a changed build
# recipe is rebuilt rather than served from the cache.
install() {
  local name="$1" package="$2" version="$3"
  shift 3
  local ldflags="-s -w${*:+ $*}" out="$CACHE_DIR/$name-$version"
  if (($#)); then
    out+="-$(printf '%s' "$ldflags" | sha256sum | cut -c1-12)"
  fi
  if [[ ! -x "$out/$name" ]]; then
    log "go install $package@$version"
    rm -rf "$out.tmp"
    GOBIN="$out.tmp" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "$package@$version"
    printf '%s\n' "$ldflags" >"$out.tmp/ldflags"
    rm -rf "$out" && mv "$out.tmp" "$out"
  fi
  link_tool "$name" "$out/$name"
}

# helm_ldflags: what helm's own Makefile stamps into a release build. Its version and commit
# (`helm version`), and the Kubernetes version `helm template` and `helm lint` assume without
# --kube-version (else 1.20, below the chart's kubeVersion): that of the k8s.io/client-go helm
# is built with (v0.34.x is Kubernetes 1.34), read from helm's go.mod as its Makefile does.
helm_ldflags() {
  local gomod client_go major minor
  gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  client_go="$(awk '$1 == "k8s.io/client-go" { print $2; exit }' "$gomod")"
  [[ "$client_go" =~ ^v([0-9]+)\.([0-9]+)\. ]] || {
    log "no k8s.io/client-go version in $gomod"
    return 1
  }
  major=$((BASH_REMATCH[1] + 1)) minor="${BASH_REMATCH[2]}"
  local v=helm.sh/helm/v3/internal/version
  printf '%s\n' \
    "-X $v.version=$HELM_VERSION" \
    "-X $v.metadata=" \
    "-X $v.gitCommit=$HELM_GIT_COMMIT" \
    "-X $v.gitTreeState=clean"
  local pkg
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    printf '%s\n' "-X $pkg.k8sVersionMajor=$major" "-X $pkg.k8sVersionMinor=$minor"
  done
}

mapfile -t HELM_LDFLAGS < <(helm_ldflags)
((${#HELM_LDFLAGS[@]})) || exit 1
install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "${HELM_LDFLAGS[@]}"
install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
