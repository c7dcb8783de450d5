#!/usr/bin/env bash
# Builds the test guests: Debian's cloud kernel + a busybox initramfs whose /init reads the NoCloud
# seed (hack/guest/init), on a FAT "superfloppy" booted by syslinux. Two disks from one init:
# - busybox.qcow2: applies the seed's network-config (static, or DHCP where it says dhcp4) and
#   announces the boot on ttyS0 in kubenova's own line (`kubenova-guest booted ...`);
# - busybox-dhcp.qcow2 (the flag file /etc/busybox-dhcp in its initramfs): a stock-image-style
#   guest that never prints that line, ignores network-config and configures its NICs by DHCP
#   (busybox udhcpc and its default script /etc/udhcpc/default.script, which applies the
#   lease), as a stock cloud image does.
# Made from files only (mkfs.vfat, syslinux and mtools work on the image file): no mount, no loop
# device. Cached per kernel and per content of this script, the init and the udhcpc script.
source "$(dirname "$0")/lib.sh"
PATH="$PATH:/usr/sbin:/sbin"  # mkfs.vfat and modprobe, for non-root users too
for tool in mkfs.vfat syslinux mcopy cpio gzip qemu-img modprobe /bin/busybox; do
  command -v "$tool" >/dev/null || { log "$tool is missing: run hack/install-debian.sh"; exit 1; }
done

# The kernel the cloud-kernel metapackage currently pulls in (newest installed as a fallback).
kver=$(dpkg-query -W -f='${Depends}' linux-image-cloud-amd64 2>/dev/null |
  sed -n 's/^linux-image-\([^ ,]*\).*/\1/p')
if [[ -z "$kver" ]]; then
  kver=$(find /boot -name 'vmlinuz-*-cloud-amd64' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
fi
if [[ ! -r "/boot/vmlinuz-$kver" ]]; then
  log "no readable /boot/vmlinuz-$kver: run hack/install-debian.sh"
  exit 1
fi

# The guest's modules in load order: virtio disks and NIC, the seed's iso9660, and the ACPI power
# button (button + evdev feed busybox acpid, so QMP system_powerdown powers the guest off).
modules=(virtio_pci virtio_blk isofs virtio_net button evdev)
package_versions=$(dpkg-query -W -f='${Package}=${Version}\n' busybox-static syslinux \
  "linux-image-$kver" dosfstools mtools cpio)
hash=$({ cat "$HACK_DIR/build-guest.sh" "$HACK_DIR"/guest/*; echo "$package_versions"; } |
  sha256sum | cut -c1-12)
out="$CACHE_DIR/guest-$kver-$hash"

if [[ ! -f "$out/busybox.qcow2" || ! -f "$out/busybox-dhcp.qcow2" ]]; then
  log "building the busybox guests (kernel $kver)"
  export SOURCE_DATE_EPOCH=0 TZ=UTC LC_ALL=C
  rm -rf "$out.tmp" && mkdir -p "$out.tmp/initramfs" "$out.tmp/boot"
  work="$out.tmp"
  root="$work/initramfs"

  # --- initramfs: busybox, /init, the modules, acpid's power-button handler.
  mkdir -p "$root"/{bin,dev,etc/acpi/PWRF,lib/modules,proc,seed,sys,tmp}
  cp /bin/busybox "$root/bin/busybox"
  ln -s busybox "$root/bin/sh"
  install -m 0755 "$HACK_DIR/guest/init" "$root/init"
  printf '#!/bin/sh\necho "kubenova-guest powering off" >/dev/console\nsync\npoweroff -f\n' \
    >"$root/etc/acpi/PWRF/00000080"
  chmod 0755 "$root/etc/acpi/PWRF/00000080"
  : >"$root/etc/modules"
  for m in "${modules[@]}"; do
    modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
  done | awk '!seen[$0]++' | while read -r ko; do
    name=$(basename "$ko"); name=${name%%.ko*}
    case "$ko" in
      *.ko.xz) xz -dc "$ko" >"$root/lib/modules/$name.ko" ;;
      *.ko.zst) zstd -qdc "$ko" >"$root/lib/modules/$name.ko" ;;
      *.ko.gz) gzip -dc "$ko" >"$root/lib/modules/$name.ko" ;;
      *) cp "$ko" "$root/lib/modules/$name.ko" ;;
    esac
    echo "$name" >>"$root/etc/modules"
  done
  # initramfs DIR OUT: the reproducible, compressed cpio of DIR.
  initramfs() {
    find "$1" -exec touch -h -d @0 {} +
    (cd "$1" && find . -mindepth 1 | sort |
      cpio --quiet -o -H newc -R 0:0 --reproducible) | gzip -9 -n >"$2"
  }
  # udhcpc's default script: both guests use DHCP where network-config says dhcp4.
  mkdir -p "$root/etc/udhcpc"
  install -m 0755 "$HACK_DIR/guest/udhcpc.script" "$root/etc/udhcpc/default.script"
  initramfs "$root" "$work/boot/initrd.gz"
  # The stock-style variant: the same tree and the flag file.
  cp -a "$root" "$work/initramfs-dhcp"
  : >"$work/initramfs-dhcp/etc/busybox-dhcp"
  initramfs "$work/initramfs-dhcp" "$work/initrd-dhcp.gz"

  # --- boot files: kernel, initramfs, syslinux.cfg (no prompt, serial console, quiet).
  cp "/boot/vmlinuz-$kver" "$work/boot/vmlinuz"
  cat >"$work/boot/syslinux.cfg" <<'CFG'
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.gz
  APPEND quiet loglevel=3 console=ttyS0 panic=-1
CFG
  touch -d @0 "$work/boot"/*

  # --- disk NAME: a FAT superfloppy (SeaBIOS boots it without a partition table), sized to the
  # files plus 4-5 MiB for FAT and syslinux; syslinux installs itself, mtools copies the files.
  disk() {
    local files_kib size_kib
    files_kib=$(du -k --apparent-size -c "$work/boot"/* | tail -n 1 | cut -f1)
    size_kib=$(( (files_kib / 1024 + 5) * 1024 ))
    rm -f "$work/disk.raw"
    mkfs.vfat -C --invariant -i 4b4e4f56 -n KUBENOVA "$work/disk.raw" "$size_kib" >/dev/null
    syslinux --install "$work/disk.raw"
    MTOOLS_SKIP_CHECK=1 mcopy -m -i "$work/disk.raw" "$work/boot/vmlinuz" "$work/boot/initrd.gz" \
      "$work/boot/syslinux.cfg" ::
    qemu-img convert -f raw -O qcow2 "$work/disk.raw" "$work/$1.qcow2"
    sha256sum "$work/$1.qcow2" | cut -d' ' -f1 >"$work/$1.qcow2.sha256"
  }
  disk busybox
  cp "$work/initrd-dhcp.gz" "$work/boot/initrd.gz"
  touch -d @0 "$work/boot/initrd.gz"
  disk busybox-dhcp
  rm -rf "$work/initramfs" "$work/initramfs-dhcp" "$work/initrd-dhcp.gz" "$work/boot" "$work/disk.raw"
  rm -rf "$out" && mv "$work" "$out"
fi
mkdir -p "$BIN_DIR/guest"
for f in busybox.qcow2 busybox.qcow2.sha256 busybox-dhcp.qcow2 busybox-dhcp.qcow2.sha256; do
  ln -sfn "$out/$f" "$BIN_DIR/guest/$f"
done
