"""An instance's files and qemu command line, built the same way wherever the VM runs: by the
process driver on this machine, and by the launcher inside a pod (virt/pod).

A VM is built once (prepare_instance: overlay, seed, argv) and then started again from the same
files after a stop or a reboot: the overlay is the guest's data and is never rebuilt. The process
driver starts qemu again with the saved argv (saved_argv); the launcher in a re-created pod builds
the argv afresh on the kept files (restart_instance), since the new pod may differ in what it was
given (/dev/kvm or not).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from kubenova.metadata.nocloud import build_seed
from kubenova.virt.driver import DriverError, SpawnRequest
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
    return _save_argv(request, paths, accel, qemu_binary, daemonize, netdevs, prefix)


def is_prepared(paths: InstancePaths) -> bool:
    """Whether prepare_instance() finished in this directory (launch.json is written last, after
    the overlay and the seed): the VM is to be started again from its files, not built. A
    directory without it is a build that never finished."""
    return paths.launch.is_file() and paths.disk.is_file() and paths.seed.is_file()


def saved_argv(paths: InstancePaths) -> list[str]:
    """The qemu argv of the instance's last build or restart (launch.json); DriverError if it
    cannot be read."""
    try:
        argv = json.loads(paths.launch.read_text())
    except (OSError, ValueError) as err:
        raise DriverError(f"{paths.root.name} cannot be started: {err}") from err
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        raise DriverError(f"{paths.root.name} cannot be started: {paths.launch} is no argv")
    return argv


async def restart_instance(
    request: SpawnRequest,
    paths: InstancePaths,
    qemu_binary: str,
    *,
    daemonize: bool = True,
    accel_cache: Path | None = None,
    netdevs: Sequence[str] | None = None,
    prefix: Sequence[str] = (),
) -> list[str]:
    """The argv that starts a prepared instance (is_prepared) again: its overlay (the guest's
    data), seed and console log stay as they are; the accelerator is probed again and the argv
    built and saved afresh (launch.json)."""
    if not is_prepared(paths):
        raise DriverError(f"{paths.root} holds no prepared instance to start again")
    accel = await asyncio.to_thread(probe_accelerator, qemu_binary, cache=accel_cache)
    return _save_argv(request, paths, accel, qemu_binary, daemonize, netdevs, prefix)


def _save_argv(
    request: SpawnRequest,
    paths: InstancePaths,
    accel: str,
    qemu_binary: str,
    daemonize: bool,
    netdevs: Sequence[str] | None,
    prefix: Sequence[str],
) -> list[str]:
    argv = [
        *prefix,
        *build_argv(request, paths, accel, qemu_binary, daemonize=daemonize, netdevs=netdevs),
    ]
    tmp = paths.launch.with_name(f".{paths.launch.name}.tmp")  # is_prepared() reads it
    tmp.write_text(json.dumps(argv))
    tmp.replace(paths.launch)
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
