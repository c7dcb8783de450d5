#!/bin/sh
# mmdebstrap's customize hook for the Debian cloud image (hack/build-cloud-image.sh): the settings
# Debian's own genericcloud images carry, and nothing kubenova-specific. Runs inside the build's
# private mount and PID namespaces; $1 is the root filesystem, $CLOUD_IMAGE_ROOT_UUID its UUID.
set -eu
root="$1"
uuid="${CLOUD_IMAGE_ROOT_UUID:?}"

# The root filesystem by UUID; systemd grows it when the disk is bigger than the image.
cat >"$root/etc/fstab" <<EOF
UUID=$uuid / ext4 rw,discard,errors=remount-ro,x-systemd.growfs 0 1
EOF

# cloud-init's datasources, set the Debian way (debconf writes cloud.cfg.d/90_dpkg.cfg): a NoCloud
# seed (cidata volume), a config drive, or the OpenStack metadata service; None as the fallback.
echo "cloud-init cloud-init/datasources multiselect NoCloud, ConfigDrive, OpenStack, None" |
  chroot "$root" debconf-set-selections
chroot "$root" dpkg-reconfigure -f noninteractive cloud-init

# cloud-init's locale module sets Debian's default, en_US.UTF-8: generated here once, so the first
# boot neither spends time on it nor fails for want of it.
echo "en_US.UTF-8 UTF-8" >"$root/etc/locale.gen"
chroot "$root" locale-gen
echo "LANG=en_US.UTF-8" >"$root/etc/default/locale"

# Identity that must differ per instance is made on first boot: systemd writes the machine id
# (mmdebstrap leaves /etc/machine-id empty), cloud-init makes the SSH host keys and the hostname.
rm -f "$root"/etc/ssh/ssh_host_*_key "$root"/etc/ssh/ssh_host_*_key.pub
echo localhost >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1		localhost ip6-localhost ip6-loopback
ff02::1		ip6-allnodes
ff02::2		ip6-allrouters
EOF
# systemd-resolved owns resolv.conf (mmdebstrap leaves the build host's copy behind).
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

# Nothing of the build stays: package caches and logs.
rm -rf "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
  "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
