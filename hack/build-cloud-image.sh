#!/usr/bin/env bash
# Builds a stock-style Debian 12 cloud image (qcow2), like Debian's genericcloud one: the cloud
# kernel, systemd, cloud-init (NoCloud, ConfigDrive, OpenStack), openssh-server, qemu-guest-agent,
# sudo and cloud-init's default `debian` user, DHCP on the first NIC, console on ttyS0.
#
# How: mmdebstrap installs the packages from the Debian mirror the host's apt uses into a
# directory (in private mount + PID namespaces, so no mount or chroot process outlives the build),
# `mkfs.ext4 -d` turns it into the partition of a raw disk file, sfdisk writes the MBR, GRUB's
# boot.img and a core.img from grub-mkimage go into the MBR and the gap before the partition, and
# qemu-img compresses it to qcow2. No loop device and no mount in the host's namespace.
# Cached per content of this script, hack/cloud-image/, the CLOUD_IMAGE_* pins in versions.env
# and the versions of the host tools; a cache hit does nothing but refresh the links in .bin/.
source "$(dirname "$0")/lib.sh"
PATH="$PATH:/usr/sbin:/sbin"
NAME=debian-12-cloud

# shellcheck disable=SC2086  # word splitting of the package list is meant
apt_install_missing $CLOUD_IMAGE_HOST_PACKAGES

# shellcheck disable=SC2086  # word splitting of the package list is meant
tool_versions=$(dpkg-query -W -f='${Package}=${Version}\n' $CLOUD_IMAGE_HOST_PACKAGES)
hash=$({
  cat "$HACK_DIR/build-cloud-image.sh" "$HACK_DIR"/cloud-image/*
  echo "$CLOUD_IMAGE_SUITE $CLOUD_IMAGE_DISK_SIZE $CLOUD_IMAGE_PACKAGES"
  echo "$tool_versions"
} | sha256sum | cut -c1-12)
out="$CACHE_DIR/cloud-image-$CLOUD_IMAGE_SUITE-$hash"

link_image() {
  mkdir -p "$BIN_DIR/guest"
  for f in "$NAME.qcow2" "$NAME.qcow2.sha256" "$NAME.manifest"; do
    ln -sfn "$out/$f" "$BIN_DIR/guest/$f"
  done
}
cached() { [[ -s "$out/$NAME.qcow2" && -s "$out/$NAME.qcow2.sha256" ]]; }
if cached; then link_image; exit 0; fi

# One build at a time per cache (two checkouts may run setup together); the loser reuses it.
exec 9>"$CACHE_DIR/cloud-image.lock"
flock 9
if cached; then link_image; exit 0; fi

[[ $(id -u) == 0 ]] || { log "building the cloud image needs root (mmdebstrap's chroot)"; exit 1; }
work=$(mktemp -d "$CACHE_DIR/cloud-image.tmp.XXXXXX")
builder=""
cleanup() {
  local rc=$?
  if [[ -n "$builder" ]] && kill -0 "$builder" 2>/dev/null; then
    # unshare dies, --kill-child takes the namespace's init and with it every process inside;
    # the namespace's mounts go with them.
    kill -TERM "$builder" 2>/dev/null || true
    wait "$builder" 2>/dev/null || true
  fi
  if ((rc != 0)); then
    log "the cloud image build failed (exit $rc); the end of mmdebstrap's log:"
    tail -n 20 "$work.log" >&2 2>/dev/null || true
  fi
  rm -rf "$work" "$work.log"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# The Debian sources the host's apt uses for the suite, its updates and its security updates.
mirrors=()
while read -r uri suite; do
  mirrors+=("deb $uri $suite main")
done < <(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 'Target-Of: deb' |
  awk -v s="$CLOUD_IMAGE_SUITE" '$2 == s || $2 == s "-updates" || $2 == s "-security"' | sort -u -k2,2)
if [[ ${#mirrors[@]} == 0 || ${mirrors[0]} != *" $CLOUD_IMAGE_SUITE main" ]]; then
  log "the host's apt has no source for $CLOUD_IMAGE_SUITE (see /etc/apt/sources.list*)"
  exit 1
fi

start=$SECONDS
log "building the Debian cloud image ($CLOUD_IMAGE_SUITE, $CLOUD_IMAGE_DISK_SIZE) in $work"
# The root filesystem's UUID and the MBR's disk id come from the cache key: one per build input.
uuid=$(echo "$hash" | sha256sum | sed -E 's/^(.{8})(.{4})(.{4})(.{4})(.{12}).*/\1-\2-\3-\4-\5/')
disk_id=${uuid:0:8}
export CLOUD_IMAGE_ROOT_UUID=$uuid
unshare --mount --pid --fork --kill-child=SIGKILL --mount-proc \
  mmdebstrap --mode=root --variant=minbase --components=main \
  --include="${CLOUD_IMAGE_PACKAGES// /,}" \
  --aptopt='Acquire::Languages "none"' \
  --customize-hook="$HACK_DIR/cloud-image/customize.sh \"\$1\"" \
  "$CLOUD_IMAGE_SUITE" "$work/rootfs" "${mirrors[@]}" >"$work.log" 2>&1 &
builder=$!
wait "$builder"
builder=""
log "root filesystem installed in $((SECONDS - start))s"

root="$work/rootfs"
dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Package}=${Version}\n' >"$work/$NAME.manifest"
kver=$(sed -n 's/^linux-image-\([0-9][^=]*-cloud-amd64\)=.*/\1/p' "$work/$NAME.manifest" | sort -V | tail -n 1)
[[ -e "$root/boot/vmlinuz-$kver" && -e "$root/boot/initrd.img-$kver" ]] ||
  { log "no kernel or initramfs for $kver in the image"; exit 1; }

# --- GRUB (BIOS): its modules in /boot/grub/i386-pc as grub-install puts them, and a grub.cfg
# that boots the /vmlinuz and /initrd.img links the kernel package keeps current on upgrades.
cmdline="root=UUID=$uuid ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0"
mkdir -p "$root/boot/grub/i386-pc"
cp /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst "$root/boot/grub/i386-pc/"
for link in vmlinuz initrd.img; do
  [[ -e "$root/$link" ]] || ln -sfn "boot/$link-$kver" "$root/$link"
done
cat >"$root/boot/grub/grub.cfg" <<CFG
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set default=0
set timeout=0
menuentry 'Debian GNU/Linux' {
  insmod part_msdos
  insmod ext2
  search --no-floppy --fs-uuid --set=root $uuid
  linux /vmlinuz $cmdline
  initrd /initrd.img
}
CFG
printf 'search.fs_uuid %s root\nset prefix=($root)/boot/grub\n' "$uuid" >"$work/embed.cfg"
grub-mkimage -O i386-pc -d /usr/lib/grub/i386-pc -c "$work/embed.cfg" -p /boot/grub \
  -o "$work/core.img" biosdisk part_msdos ext2 search_fs_uuid
part_start=2048  # sectors: the partition at 1 MiB, core.img in the gap before it
(($(stat -c %s "$work/core.img") < (part_start - 1) * 512)) || { log "core.img too big"; exit 1; }

# --- the disk: ext4 filled from the directory at the partition's offset, then the MBR.
size=$(numfmt --from=iec "$CLOUD_IMAGE_DISK_SIZE")
truncate -s "$size" "$work/disk.raw"
mkfs.ext4 -q -F -U "$uuid" -E "offset=$((part_start * 512))" -d "$root" \
  "$work/disk.raw" "$(((size - part_start * 512) / 1024))k"
printf 'label: dos\nlabel-id: 0x%s\nunit: sectors\n\nstart=%d, type=83, bootable\n' \
  "$disk_id" "$part_start" | sfdisk --quiet --no-reread --no-tell-kernel --wipe never "$work/disk.raw"
# boot.img's code only (the disk id and partition table after byte 440 stay), core.img at sector 1
# (grub-mkimage already wrote its own length into it; boot.img points at sector 1 by default).
dd if=/usr/lib/grub/i386-pc/boot.img of="$work/disk.raw" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$work/disk.raw" bs=512 seek=1 conv=notrunc status=none

qemu-img convert -f raw -O qcow2 -c "$work/disk.raw" "$work/$NAME.qcow2"
sha256sum "$work/$NAME.qcow2" | cut -d' ' -f1 >"$work/$NAME.qcow2.sha256"
rm -rf "$root" "$work/disk.raw" "$work/core.img" "$work/embed.cfg"
rm -rf "$out" && mv "$work" "$out"
link_image
log "cloud image ready in $((SECONDS - start))s: $out/$NAME.qcow2 ($(du -h "$out/$NAME.qcow2" | cut -f1))"
