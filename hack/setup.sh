#!/usr/bin/env bash
# `make setup`: everything kubenova needs, idempotent; versions in hack/versions.env.
source "$(dirname "$0")/lib.sh"
start=$SECONDS
"$HACK_DIR/install-debian.sh"
"$HACK_DIR/build-k8s.sh"
"$HACK_DIR/build-etcd.sh"
"$HACK_DIR/install-go-tools.sh"
"$HACK_DIR/setup-python.sh"
"$HACK_DIR/build-guest.sh"
# The stock-style Debian 12 cloud image for the cloud-image e2e tests (cached; cold 1.5-6 min).
"$HACK_DIR/build-cloud-image.sh"
log "ready in $((SECONDS - start))s: tools in .bin/ (cached in $CACHE_DIR), Python in .venv/"
