"""The KubeVirt driver: one VirtualMachineInstance per instance, pinned to the scheduled Node,
cloud-init from the same metadata as the other drivers (see driver.py and manifest.py)."""

from kubenova.virt.kubevirt.driver import KubeVirtDriver
from kubenova.virt.kubevirt.manifest import KubeVirtOptions

__all__ = ["KubeVirtDriver", "KubeVirtOptions"]
