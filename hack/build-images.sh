#!/usr/bin/env bash
# `make images`: kubenova's container images built on this machine, never pulled (docs/cluster.md).
#
# 1. A base image made with mmdebstrap from the Debian mirror the host's apt uses: bookworm's
#    python3 (3.11) with venv, the host's CA bundle trusted (hack/images/base-hook.sh).
# 2. The Dockerfile, unmodified, built with Debian's docker.io for each target in IMAGE_TARGETS,
#    with `--build-arg PYTHON_IMAGE=<that base>` (on a normal machine the same Dockerfile builds
#    from the public python image, its default). The dockerd is private and build-only: its own
#    socket and state, no bridge, no iptables, no NAT (builds use the host's network namespace,
#    as any apt or pip on the host does); it is stopped when the script ends.
# 3. Each image saved as an archive under the cache, linked as .bin/kubenova-images/<target>.tar,
#    and imported into the local cluster's containerd when `make cluster-up` runs it.
# Cached per content of the build context (.dockerignore's list), the Dockerfile and these
# scripts: a hit does nothing but import.
source "$(dirname "$0")/lib.sh"
source "$HACK_DIR/cluster/env.sh"
PATH="$BIN_DIR:$PATH:/usr/sbin:/sbin"
[[ $(id -u) == 0 ]] || { log "building images needs root (dockerd, mmdebstrap's chroot)"; exit 1; }

# shellcheck disable=SC2086  # word splitting of the package list is meant
apt_install_missing $IMAGE_BUILD_DEBIAN_PACKAGES

# -- the cache key: everything that goes into a build ---------------------------------------------
base_hash=$({
  cat "$HACK_DIR/images/base-hook.sh"
  echo "$IMAGE_BASE_SUITE $IMAGE_BASE_PACKAGES $IMAGE_BASE_TAG"
} | sha256sum | cut -c1-12)
hash=$({
  echo "$base_hash $IMAGE_TARGETS"
  cat "$HACK_DIR/build-images.sh"
  cd "$REPO_DIR"
  # the build context as .dockerignore leaves it (tracked and untracked, not ignored)
  git ls-files -co --exclude-standard -- Dockerfile pyproject.toml README.md operator \
    hack/lib.sh hack/versions.env hack/build-guest.sh hack/guest |
    grep -v -e '__pycache__' -e '\.pyc$' -e '\.egg-info' | LC_ALL=C sort |
    while read -r f; do [[ -f $f ]] && sha256sum "$f"; done
} | sha256sum | cut -c1-12)
out="$CACHE_DIR/kubenova-images-$hash"
targets=()
for pair in $IMAGE_TARGETS; do targets+=("${pair%%:*}"); done
version=$(sed -nE 's/^appVersion: "?([^"]+)"?$/\1/p' "$REPO_DIR/charts/kubenova/Chart.yaml")
[[ -n $version ]] || { log "no appVersion in charts/kubenova/Chart.yaml"; exit 1; }

cached() {
  local t
  for t in "${targets[@]}"; do [[ -s "$out/$t.tar" ]] || return 1; done
}

import_into_cluster() {
  # Into the local cluster's containerd, when it runs (cluster-up calls this script again later).
  [[ -S "$CONTAINERD_SOCK" ]] || return 0
  local t
  for t in "${targets[@]}"; do
    ctr --address "$CONTAINERD_SOCK" -n k8s.io images import "$out/$t.tar" >/dev/null
  done
  log "images imported into the local cluster's containerd: ${IMAGE_TARGETS// /, } (tag $version)"
}

finish() {
  ln -sfn "$out" "$BIN_DIR/kubenova-images"
  import_into_cluster
}
if cached; then finish; exit 0; fi

exec 9>"$CACHE_DIR/kubenova-images.lock"
flock 9
if cached; then finish; exit 0; fi

# -- a private, build-only dockerd ----------------------------------------------------------------
run="/run/kubenova-images"
sock="$run/docker.sock"
export DOCKER_HOST="unix://$sock" DOCKER_BUILDKIT=0
work=$(mktemp -d "$CACHE_DIR/kubenova-images.tmp.XXXXXX")
dockerd_pid=""
cleanup() {
  local rc=$?
  if [[ -n $dockerd_pid ]]; then
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$dockerd_pid" 2>/dev/null || true
  fi
  # dockerd bind-mounts the host's network namespace under its exec root (netns/default) and
  # leaves it when it stops: unmount whatever is still mounted there, deepest first.
  findmnt -rn -o TARGET | grep "^$run/" | sort -r | while read -r m; do umount -l "$m" || true; done
  if ((rc != 0)); then
    log "the image build failed (exit $rc); the end of its log ($work.log):"
    tail -n 25 "$work.log" >&2 2>/dev/null || true
  fi
  rm -rf "$work" "$run"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

mkdir -p "$run" "$CACHE_DIR/docker"
dockerd --data-root "$CACHE_DIR/docker" --exec-root "$run/exec" --pidfile "$run/dockerd.pid" \
  -H "unix://$sock" --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
  --ip-masq=false >"$run/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 150); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
docker version >/dev/null 2>&1 || { tail -n 20 "$run/dockerd.log" >&2; log "dockerd did not start"; exit 1; }

start=$SECONDS
# -- 1. the base ----------------------------------------------------------------------------------
base_tar="$CACHE_DIR/image-base-$IMAGE_BASE_SUITE-$base_hash.tar"
if [[ ! -s $base_tar ]]; then
  mirrors=()
  while read -r uri suite; do
    mirrors+=("deb $uri $suite main")
  done < <(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 'Target-Of: deb' |
    awk -v s="$IMAGE_BASE_SUITE" '$2 == s || $2 == s "-updates" || $2 == s "-security"' | sort -u -k2,2)
  ((${#mirrors[@]})) || { log "the host's apt has no source for $IMAGE_BASE_SUITE"; exit 1; }
  log "making the image base ($IMAGE_BASE_SUITE: $IMAGE_BASE_PACKAGES) with mmdebstrap"
  unshare --mount --pid --fork --kill-child=SIGKILL --mount-proc \
    mmdebstrap --mode=root --variant=minbase --components=main \
    --include="${IMAGE_BASE_PACKAGES// /,}" --aptopt='Acquire::Languages "none"' \
    --customize-hook="$HACK_DIR/images/base-hook.sh \"\$1\"" \
    "$IMAGE_BASE_SUITE" "$work/base.tar" "${mirrors[@]}" >>"$work.log" 2>&1
  mv "$work/base.tar" "$base_tar"
fi
docker import "$base_tar" "$IMAGE_BASE_TAG" >/dev/null

# -- 2. the Dockerfile's targets -------------------------------------------------------------------
mkdir -p "$work/out"
for pair in $IMAGE_TARGETS; do
  target=${pair%%:*} repo=${pair#*:}
  log "docker build --target $target -t $repo:$version (base $IMAGE_BASE_TAG)"
  docker build --network host --build-arg "PYTHON_IMAGE=$IMAGE_BASE_TAG" --target "$target" \
    -t "$repo:$version" -t "$repo:dev" "$REPO_DIR" >>"$work.log" 2>&1
  docker save "$repo:$version" -o "$work/out/$target.tar"
done
# The builder's layers stay in the cache (the next build reuses them); dangling ones go.
docker image prune -f >/dev/null
rm -rf "$out" && mv "$work/out" "$out"
log "images built in $((SECONDS - start))s: $(cd "$out" && du -sh -- *.tar | tr '\n\t' ', ')"
finish
