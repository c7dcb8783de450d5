"""The instance's root disk: a qcow2 overlay on the cached base image (copy-on-write, like
Nova's libvirt image backend), grown to the flavor's disk size but never shrunk."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

from kubenova.virt.driver import DriverError
from kubenova.virt.qemu.tool import run_tool

GIB = 1 << 30
_QCOW2_MAGIC = b"QFI\xfb"


def virtual_size(image: Path, image_format: str) -> int:
    """Bytes the guest sees: a raw file's length, or the size field of the qcow2 header."""
    if image_format == "raw":
        return image.stat().st_size
    if image_format != "qcow2":
        raise ValueError(f"unsupported image format {image_format!r}")
    with image.open("rb") as f:
        header = f.read(32)
    if len(header) < 32 or header[:4] != _QCOW2_MAGIC:
        raise ValueError(f"{image} is not a qcow2 image")
    return struct.unpack(">Q", header[24:32])[0]


def overlay_argv(
    qemu_img: str, base: Path, base_format: str, overlay: Path, size_bytes: int | None
) -> list[str]:
    argv = [qemu_img, "create", "-q", "-f", "qcow2", "-F", base_format, "-b", str(base)]
    argv.append(str(overlay))
    if size_bytes is not None:
        argv.append(str(size_bytes))
    return argv


async def create_overlay(
    qemu_img: str,
    base: Path,
    base_format: str,
    overlay: Path,
    disk_gib: int,
    time_limit: float = 60,
) -> None:
    """Create `overlay` backed by `base` (resolved: a moved symlink must not swap the base)."""
    try:
        base = await asyncio.to_thread(base.resolve, strict=True)
    except FileNotFoundError:
        raise DriverError(f"base image {base} not found") from None
    wanted = disk_gib * GIB
    size = wanted if wanted > virtual_size(base, base_format) else None
    await run_tool(overlay_argv(qemu_img, base, base_format, overlay, size), time_limit)
