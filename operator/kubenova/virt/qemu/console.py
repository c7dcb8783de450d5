"""The serial console log and the guest's boot announcement in it.

The guest's init prints BOOT_ANNOUNCEMENT once it has read its NoCloud metadata: that line, not
the qemu process starting, is what "booted" means (DESIGN §5).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BOOT_ANNOUNCEMENT = "kubenova-guest booted hostname={hostname} instance-id={instance_id}"
BOOT_MARKER = re.compile(
    r"kubenova-guest booted hostname=(?P<hostname>\S+) instance-id=(?P<instance_id>\S+)\r?$",
    re.MULTILINE,
)


def parse_boot_line(text: str) -> dict[str, str] | None:
    """hostname and instance-id of the last complete announcement in `text`, if any."""
    complete = text[: text.rfind("\n") + 1]  # a line still being written does not count yet
    matches = list(BOOT_MARKER.finditer(complete))
    if not matches:
        return None
    last = matches[-1]
    return {"hostname": last["hostname"], "instance-id": last["instance_id"]}


def log_size(path: Path) -> int:
    """Where the next boot's output will start (the log is appended to, never truncated)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def read_log(path: Path, offset: int = 0) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def console_note(text: str) -> str:
    """The end of a console log for an error message."""
    return f"console:\n{tail(text)}" if text.strip() else "the console is empty"


@dataclass(frozen=True)
class BootWatch:
    """What watch_for_boot saw: the announcement, or why it stopped looking."""

    boot: dict[str, str] | None
    text: str
    """the console from the watch's offset, as last read"""
    exited: bool = False
    """the VM's process ended before announcing (else: the deadline passed)"""


async def watch_for_boot(
    console: Path,
    offset: int,
    alive: Callable[[], bool],
    deadline: float | None,
    interval: float = 0.1,
) -> BootWatch:
    """Poll `console` from `offset` for the boot announcement while `alive()` holds, until the
    loop time `deadline` (None: no limit). Shared by the process driver and the pod launcher."""
    loop = asyncio.get_running_loop()
    while True:
        running = alive()  # before reading: a VM that announced and then died still counts
        text = await asyncio.to_thread(read_log, console, offset)
        boot = parse_boot_line(text)
        if boot is not None:
            return BootWatch(boot, text)
        if not running:
            return BootWatch(None, text, exited=True)
        if deadline is not None and loop.time() >= deadline:
            return BootWatch(None, text)
        await asyncio.sleep(interval)
