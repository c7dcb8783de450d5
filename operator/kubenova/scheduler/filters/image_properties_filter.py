"""ImagePropertiesFilter: the host can run the image's architecture and hypervisor type."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from kubenova.scheduler.filters.base import BaseHostFilter, FilterResult
from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.host_table import HostTable
from kubenova.scheduler.interface import RequestSpec

ARCH_LABEL = "kubernetes.io/arch"
HYPERVISOR_LABEL = "compute.kubenova.io/hypervisor"

#: aliases Nova canonicalises (nova.objects.fields.Architecture.canonicalize) -> glance name
_ARCH_ALIASES = {
    "amd64": "x86_64",
    "x86_32": "i686",
    "i386": "i686",
    "i486": "i686",
    "i586": "i686",
    "arm64": "aarch64",
}
#: glance architecture -> Go/Kubernetes GOARCH where the two spell it differently
_KUBE_ARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "mips64el": "mips64le",
}
#: hypervisor type -> what a node must run to host it. The qemu driver accelerates with KVM when
#: /dev/kvm works and falls back to TCG, and a node's label names the driver, not the
#: accelerator; Nova's libvirt driver likewise reports both kvm and qemu on a KVM host. So kvm and
#: qemu are one family: a node labelled qemu or kvm takes images asking for either.
_HV_FAMILY = {"kvm": "qemu"}


def _prop(props: Mapping[str, str], *names: str) -> str | None:
    """The first property set under its glance legacy name or its Nova ImageMetaProps name."""
    for name in names:
        if props.get(name):
            return props[name].lower()
    return None


def kube_arch(glance_arch: str) -> str:
    """x86_64 -> amd64, aarch64 -> arm64, ...; names both spell alike pass through."""
    canonical = _ARCH_ALIASES.get(glance_arch.lower(), glance_arch.lower())
    return _KUBE_ARCH.get(canonical, canonical)


def hypervisor_family(hv_type: str) -> str:
    return _HV_FAMILY.get(hv_type.lower(), hv_type.lower())


class ImagePropertiesFilter(BaseHostFilter):
    """Mirrors Nova's ImagePropertiesFilter: the image's `architecture` must be the Node's
    kubernetes.io/arch (names mapped glance -> Kubernetes), and its `hypervisor_type` the Node's
    compute.kubenova.io/hypervisor (kvm and qemu interchangeable). A property the image does not
    set, or a label the Node lacks, constrains nothing."""

    def host_passes(self, host: HostState, spec: RequestSpec) -> FilterResult:
        labels = host.node.labels
        arch, hv_type = _wanted(spec)
        node_arch = labels.get(ARCH_LABEL)
        if not _arch_fits(arch, node_arch):
            return FilterResult.fail(f"image architecture {arch}, node is {node_arch}")
        node_hv = labels.get(HYPERVISOR_LABEL)
        if not _hypervisor_fits(hv_type, node_hv):
            return FilterResult.fail(f"image hypervisor_type {hv_type}, node runs {node_hv}")
        return FilterResult.ok()

    def mask(self, table: HostTable, spec: RequestSpec) -> np.ndarray:
        arch, hv_type = _wanted(spec)
        passing = np.ones(len(table), dtype=bool)
        if arch:
            passing &= table.label_mask(ARCH_LABEL, lambda value: _arch_fits(arch, value))
        if hv_type:
            passing &= table.label_mask(
                HYPERVISOR_LABEL, lambda value: _hypervisor_fits(hv_type, value)
            )
        return passing


def _wanted(spec: RequestSpec) -> tuple[str | None, str | None]:
    props = spec.image_properties
    return _prop(props, "architecture", "hw_architecture"), _prop(
        props, "hypervisor_type", "img_hv_type"
    )


def _arch_fits(arch: str | None, node_arch: str | None) -> bool:
    return not (arch and node_arch and kube_arch(arch) != node_arch.lower())


def _hypervisor_fits(hv_type: str | None, node_hv: str | None) -> bool:
    return not (hv_type and node_hv and hypervisor_family(hv_type) != hypervisor_family(node_hv))
