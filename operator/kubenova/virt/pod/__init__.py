"""The QEMU pod driver: one Pod per instance, pinned to the scheduled Node, running the same
launcher code as the process driver (see driver.py and manifest.py)."""

from kubenova.virt.pod.driver import PodDriver
from kubenova.virt.pod.manifest import PodOptions

__all__ = ["PodDriver", "PodOptions"]
