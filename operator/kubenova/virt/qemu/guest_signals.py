"""Which console lines say that a guest OS is up: pure matching, so it is unit-tested without
QEMU (the driver's wait_for_guest polls the console and asks here).

- ANNOUNCEMENT: kubenova's busybox test guest's `kubenova-guest booted hostname=… instance-id=…`;
- CLOUD_INIT: cloud-init's final message (its `final_message` module, printed to the console by
  every cloud-init since 0.7): `Cloud-init v. 22.4.2 finished at <date>. Datasource …`;
- CONSOLE_REGEX: the Image's `kubenova_guest_booted_regex` property, for images with neither.

Only complete lines count: a line still being written may yet turn out to be something else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubenova.models.v1alpha1.states import GuestSignal
from kubenova.virt.driver import DriverError
from kubenova.virt.qemu.console import BOOT_MARKER

CLOUD_INIT_FINISHED = re.compile(r"Cloud-init v\. \S+ finished at [^\r\n]*")
#: Longest console line considered for the Image's regex (a runaway line is not matched).
MAX_LINE = 4096


@dataclass(frozen=True)
class ConsoleSign:
    signal: GuestSignal
    line: str


def compile_regex(pattern: str | None) -> re.Pattern[str] | None:
    """The Image property's regex; a malformed one is a DriverError that says so."""
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as err:
        raise DriverError(f"the Image's kubenova_guest_booted_regex {pattern!r}: {err}") from None


def first_sign(text: str, regex: re.Pattern[str] | None = None) -> ConsoleSign | None:
    """The first complete line of `text` that says the guest is up, if any."""
    complete = text[: text.rfind("\n") + 1]
    for raw in complete.splitlines():
        line = raw.rstrip("\r")
        if BOOT_MARKER.search(line):
            return ConsoleSign(GuestSignal.ANNOUNCEMENT, line.strip())
        found = CLOUD_INIT_FINISHED.search(line)
        if found:
            return ConsoleSign(GuestSignal.CLOUD_INIT, found.group(0).strip())
        if regex is not None and len(line) <= MAX_LINE and regex.search(line):
            return ConsoleSign(GuestSignal.CONSOLE_REGEX, line.strip())
    return None
