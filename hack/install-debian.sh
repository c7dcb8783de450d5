#!/usr/bin/env bash
# Debian packages: QEMU, qemu-img, busybox, a cloud kernel for the guest, Prometheus, ISO tools.
source "$(dirname "$0")/lib.sh"
# shellcheck disable=SC2086  # word splitting of the package list is meant
apt_install_missing $DEBIAN_PACKAGES
