"""Processes seen through /proc: command lines (a zombie's is empty, so it counts as gone)
and the network namespace a process lives in."""

from __future__ import annotations

import os
from pathlib import Path

from kubenova.procs import cmdline

_PROC = Path("/proc")


def netns_inode(path: Path) -> int | None:
    """The inode of a namespace file (a /run/netns entry or /proc/<pid>/ns/net)."""
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def pids_in_netns(inode: int) -> list[int]:
    """Every live process whose network namespace has this inode."""
    found = []
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and netns_inode(entry / "ns" / "net") == inode:
            pid = int(entry.name)
            if cmdline(pid):
                found.append(pid)
    return sorted(found)


def pids_with_arg(binary_name: str, prefix: str) -> list[int]:
    """Live processes of `binary_name` with an argument starting with `prefix`."""
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        argv = cmdline(int(entry.name))
        if argv and Path(argv[0]).name == binary_name and any(a.startswith(prefix) for a in argv):
            found.append(int(entry.name))
    return sorted(found)
