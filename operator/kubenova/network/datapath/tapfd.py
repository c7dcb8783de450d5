"""Opening a Port's tap from outside its namespace, for a qemu whose NICs sit on several
Networks (one process lives in one namespace, so it cannot open them all by name).

The tap is opened by a short-lived thread that enters the Network's namespace (setns affects
only the calling thread) and leaves it again; the open file descriptor works from any
namespace, so qemu gets it with `-netdev tap,fd=N` and stays where it is. The thread is
never reused, so a failed return to the operator's namespace cannot leak into other work.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import os
import socket
import struct
import threading
from pathlib import Path

from kubenova.network.datapath.config import DatapathError

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN = "/dev/net/tun"
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _open_in(netns_path: Path, ifname: str) -> int:
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            # TUNSETIFF would create a missing tap (off the bridge): it must exist already.
            socket.if_nametoindex(ifname)  # a socket of the thread's (now the Network's) netns
            fd = os.open(TUN, os.O_RDWR | os.O_CLOEXEC)
            try:
                ifreq = struct.pack("16sH22x", ifname.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
                fcntl.ioctl(fd, TUNSETIFF, ifreq)
            except OSError:
                os.close(fd)
                raise
            return fd
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


def open_tap_blocking(netns_path: Path, ifname: str) -> int:
    """A file descriptor of the existing tap `ifname` in the namespace at `netns_path`
    (close-on-exec: pass it to qemu with pass_fds). The caller closes it once qemu holds it."""
    outcome: list[int | BaseException] = []

    def work() -> None:
        try:
            outcome.append(_open_in(netns_path, ifname))
        except BaseException as err:  # handed to the caller's thread
            outcome.append(err)

    thread = threading.Thread(target=work, name=f"open-{ifname}", daemon=True)
    thread.start()
    thread.join()
    (result,) = outcome
    if isinstance(result, BaseException):
        raise DatapathError(f"cannot open tap {ifname} in {netns_path}: {result}") from result
    return result


async def open_tap(netns_path: Path, ifname: str) -> int:
    return await asyncio.to_thread(open_tap_blocking, netns_path, ifname)
