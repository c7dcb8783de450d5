"""The serial console log and the guest's boot announcement in it.

The guest's init prints BOOT_ANNOUNCEMENT once it has read its NoCloud metadata: that line, not
the qemu process starting, is what "booted" means (DESIGN §5).
"""

from __future__ import annotations

import re
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
