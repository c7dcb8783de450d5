"""The volume backend: one qcow2 file per Volume in a directory every compute host of this
operator can open (cinder's LVM/NFS backend in miniature). Files are named by the Volume's uid,
so a re-created Volume of the same name never sees an old disk."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from kubenova.tools import find_tool
from kubenova.virt.driver import DriverError
from kubenova.virt.qemu.tool import run_tool

GIB = 1 << 30
QEMU_IMG_TIMEOUT = 600.0


class VolumeBackendError(Exception):
    """The disk could not be made; the message goes to the Volume's status."""


class VolumeBackend:
    def __init__(self, root: Path, qemu_img: str = "qemu-img") -> None:
        self.root = Path(root).absolute()
        self._qemu_img = qemu_img

    def path(self, uid: str) -> Path:
        return self.root / f"{uid}.qcow2"

    def exists(self, uid: str) -> bool:
        return self.path(uid).is_file()

    async def create(
        self, uid: str, size_gib: int, source: Path | None = None, source_format: str = "qcow2"
    ) -> Path:
        """A sparse qcow2 of `size_gib`, filled from `source` when given; idempotent. Written
        under a temporary name and renamed, so a crash never leaves a half-made disk behind
        the final name."""
        final = self.path(uid)
        if final.is_file():
            return final
        self.root.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.partial")
        qemu_img = find_tool(self._qemu_img)
        size = str(size_gib * GIB)
        try:
            if source is None:
                argv = [qemu_img, "create", "-q", "-f", "qcow2", str(partial), size]
                await run_tool(argv, QEMU_IMG_TIMEOUT)
            else:
                convert = [qemu_img, "convert", "-q", "-f", source_format, "-O", "qcow2"]
                await run_tool([*convert, str(source), str(partial)], QEMU_IMG_TIMEOUT)
                # Grow to the requested size; an image larger than the volume is refused.
                resize = [qemu_img, "resize", "-q", "-f", "qcow2", str(partial), size]
                await run_tool(resize, QEMU_IMG_TIMEOUT)
        except DriverError as err:
            partial.unlink(missing_ok=True)
            raise VolumeBackendError(str(err)) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        await asyncio.to_thread(partial.rename, final)
        return final

    async def extend(self, uid: str, size_gib: int) -> None:
        """Grow the disk to `size_gib` (never shrinks: qemu-img refuses without --shrink)."""
        resize = [find_tool(self._qemu_img), "resize", "-q", "-f", "qcow2"]
        try:
            await run_tool([*resize, str(self.path(uid)), str(size_gib * GIB)], QEMU_IMG_TIMEOUT)
        except DriverError as err:
            raise VolumeBackendError(str(err)) from None

    async def delete(self, uid: str) -> None:
        """Remove the disk (and any half-made one); succeeds when already gone."""
        final = self.path(uid)
        for path in (final, final.with_name(f".{final.name}.partial")):
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(path.unlink)

    def list(self) -> list[str]:
        """uids of the disks present, for audits."""
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.qcow2"))
