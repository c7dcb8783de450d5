"""An instance's files and qemu command line, built the same way wherever the VM runs: by the
process driver on this machine, and by the launcher inside a pod (virt/pod)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from kubenova.metadata.nocloud import build_seed
from kubenova.virt.driver import SpawnRequest
from kubenova.virt.qemu.accel import probe_accelerator
from kubenova.virt.qemu.command import build_argv
from kubenova.virt.qemu.overlay import create_overlay
from kubenova.virt.qemu.paths import InstancePaths

T = TypeVar("T")


async def prepare_instance(
    request: SpawnRequest,
    paths: InstancePaths,
    base_image: Path,
    qemu_binary: str,
    qemu_img: str,
    *,
    daemonize: bool = True,
    accel_cache: Path | None = None,
    netdevs: Sequence[str] | None = None,
    prefix: Sequence[str] = (),
) -> list[str]:
    """Create the instance directory (it must not exist): the qcow2 overlay on `base_image`,
    the NoCloud seed and launch.json; return the qemu argv (run it with cwd=paths.root).
    `accel_cache`: the host's file caching the KVM probe's answer (virt/qemu/accel.py).
    `netdevs`, `prefix`: the datapath's NICs and the command qemu runs under (nsenter into a
    Network's namespace, virt/qemu/nics.py); launch.json holds the prefix too, so a start
    after a stop runs qemu where the first one ran."""
    paths.root.mkdir(parents=True)
    accel = await asyncio.to_thread(probe_accelerator, qemu_binary, cache=accel_cache)
    await create_overlay(qemu_img, base_image, request.image_format, paths.disk, request.disk_gib)
    await in_thread(build_seed, request.metadata, paths.seed)
    argv = [
        *prefix,
        *build_argv(request, paths, accel, qemu_binary, daemonize=daemonize, netdevs=netdevs),
    ]
    paths.launch.write_text(json.dumps(argv))
    return argv


async def in_thread(func: Callable[..., T], *args: object) -> T:
    """asyncio.to_thread, but a cancelled caller waits for the thread to finish: the cleanup
    that follows must not race a thread still writing into the instance directory."""
    future = asyncio.ensure_future(asyncio.to_thread(func, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # mark it retrieved: the cancellation is what propagates
        raise
