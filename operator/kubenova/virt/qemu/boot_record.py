"""Where the VM's current boot began, kept in its instance directory (`boot.json`).

Written by every start of qemu (spawn, power on, a reboot): the console offset the boot's
output starts at, where each of its Networks' DHCP logs ends (the guest's DHCP requests of this
boot come after), and what to look for (the Image's regex). wait_for_guest reads it, so an
operator restarted in the middle of a boot waits for the same boot and never takes an earlier
boot's line for this one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kubenova.files import write_atomically

FILE = "boot.json"


@dataclass(frozen=True)
class BootRecord:
    console_offset: int
    started_at: str
    booted_regex: str | None = None
    dhcp_offsets: dict[str, int] = field(default_factory=dict)
    """Network uid -> byte offset of its dnsmasq log when the boot began."""

    def save(self, root: Path) -> None:
        write_atomically(root / FILE, json.dumps(asdict(self)) + "\n")

    @classmethod
    def load(cls, root: Path) -> BootRecord | None:
        try:
            data = json.loads((root / FILE).read_text())
            offsets = {str(k): int(v) for k, v in (data.get("dhcp_offsets") or {}).items()}
            return cls(
                int(data["console_offset"]),
                str(data["started_at"]),
                data.get("booted_regex"),
                offsets,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
