"""Where one instance's files live: everything of it is under one directory, so destroy is an
rm -rf and list_instances a directory listing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class InstancePaths:
    root: Path

    @property
    def disk(self) -> Path:
        """The copy-on-write qcow2 overlay on the cached base image."""
        return self.root / "disk.qcow2"

    @property
    def seed(self) -> Path:
        return self.root / "seed.iso"

    @property
    def console(self) -> Path:
        """The serial console log, appended to across restarts of the VM."""
        return self.root / "console.log"

    @property
    def pidfile(self) -> Path:
        return self.root / "qemu.pid"

    @property
    def qmp(self) -> Path:
        return self.root / "qmp.sock"

    @property
    def launch(self) -> Path:
        """The qemu argv spawn used, so power_on restarts the same VM."""
        return self.root / "launch.json"
