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
log "ready in $((SECONDS - start))s: tools in .bin/ (cached in $CACHE_DIR), Python in .venv/"
