"""Every filter against passing and failing hosts; a failure's reason says why."""

from __future__ import annotations

import pytest

from kubenova.scheduler.filters.aggregate_instance_extra_specs_filter import (
    AggregateInstanceExtraSpecsFilter,
)
from kubenova.scheduler.filters.availability_zone_filter import AvailabilityZoneFilter
from kubenova.scheduler.filters.base import BaseHostFilter
from kubenova.scheduler.filters.compute_filter import ComputeFilter
from kubenova.scheduler.filters.core_filter import CoreFilter
from kubenova.scheduler.filters.different_host_filter import DifferentHostFilter
from kubenova.scheduler.filters.disk_filter import DiskFilter
from kubenova.scheduler.filters.extra_specs_ops import match
from kubenova.scheduler.filters.image_properties_filter import ImagePropertiesFilter
from kubenova.scheduler.filters.ram_filter import RamFilter
from kubenova.scheduler.filters.same_host_filter import SameHostFilter
from kubenova.scheduler.filters.server_group_affinity_filter import ServerGroupAffinityFilter
from kubenova.scheduler.filters.server_group_anti_affinity_filter import (
    ServerGroupAntiAffinityFilter,
)
from kubenova.scheduler.host_state import HostState
from kubenova.scheduler.interface import RequestSpec
from kubenova.scheduler.resources import Resources
from tests.unit.scheduler import host, spec

# (filter, host, spec, expected reason: None when the host passes)
CASES = [
    # ComputeFilter
    pytest.param(ComputeFilter, host(), spec(), None, id="compute-ready"),
    pytest.param(ComputeFilter, host(ready=False), spec(), "node is not Ready", id="compute-down"),
    pytest.param(
        ComputeFilter, host(unschedulable=True), spec(), "node is cordoned", id="compute-cordoned"
    ),
    pytest.param(
        ComputeFilter,
        host(taints=("maint:NoSchedule",)),
        spec(),
        "node has taint maint:NoSchedule",
        id="compute-noschedule",
    ),
    pytest.param(
        ComputeFilter,
        host(taints=("node.kubernetes.io/unreachable:NoExecute",)),
        spec(),
        "node has taint node.kubernetes.io/unreachable:NoExecute",
        id="compute-noexecute",
    ),
    pytest.param(
        ComputeFilter,
        host(taints=("spot:PreferNoSchedule",)),
        spec(),
        None,
        id="compute-prefer-noschedule-is-soft",
    ),
    # AvailabilityZoneFilter
    pytest.param(AvailabilityZoneFilter, host(), spec(), None, id="az-none-requested"),
    pytest.param(
        AvailabilityZoneFilter,
        host(labels={"topology.kubernetes.io/zone": "az1"}),
        spec(availability_zone="az1"),
        None,
        id="az-match",
    ),
    pytest.param(
        AvailabilityZoneFilter,
        host(labels={"topology.kubernetes.io/zone": "az2"}),
        spec(availability_zone="az1"),
        "zone az1 requested, node is in az2",
        id="az-other",
    ),
    pytest.param(
        AvailabilityZoneFilter,
        host(),
        spec(availability_zone="az1"),
        "zone az1 requested, node has no topology.kubernetes.io/zone label",
        id="az-unlabelled",
    ),
    # CoreFilter: 4 allocatable x 4.0 = 16 vcpus
    pytest.param(CoreFilter, host(), spec(resources=Resources(16, 0, 0)), None, id="core-exact"),
    pytest.param(
        CoreFilter,
        host(used=Resources(14, 0, 0)),
        spec(resources=Resources(4, 0, 0)),
        "needs 4 vcpus, 2 free",
        id="core-short",
    ),
    pytest.param(
        CoreFilter,
        host(),
        spec(resources=Resources(0.5, 0, 0)),
        None,
        id="core-fraction",
    ),
    # RamFilter
    pytest.param(
        RamFilter,
        host(used=Resources(0, 7680, 0)),
        spec(resources=Resources(0, 512, 0)),
        None,
        id="ram-exact",
    ),
    pytest.param(
        RamFilter,
        host(used=Resources(0, 7680, 0)),
        spec(resources=Resources(0, 2048, 0)),
        "needs 2048 MiB RAM, 512 MiB free",
        id="ram-short",
    ),
    pytest.param(
        RamFilter,
        host(used=Resources(0, 9000, 0)),
        spec(resources=Resources(0, 1, 0)),
        "needs 1 MiB RAM, -808 MiB free",
        id="ram-overcommitted",
    ),
    # DiskFilter
    pytest.param(DiskFilter, host(), spec(resources=Resources(0, 0, 100)), None, id="disk-fits"),
    pytest.param(
        DiskFilter,
        host(used=Resources(0, 0, 90.5)),
        spec(resources=Resources(0, 0, 20)),
        "needs 20 GiB disk, 9.5 GiB free",
        id="disk-short",
    ),
    # ImagePropertiesFilter
    pytest.param(ImagePropertiesFilter, host(), spec(), None, id="image-no-properties"),
    pytest.param(
        ImagePropertiesFilter,
        host(labels={"kubernetes.io/arch": "amd64"}),
        spec(image_properties={"architecture": "x86_64"}),
        None,
        id="image-x86_64-on-amd64",
    ),
    pytest.param(
        ImagePropertiesFilter,
        host(labels={"kubernetes.io/arch": "arm64"}),
        spec(image_properties={"architecture": "aarch64"}),
        None,
        id="image-aarch64-on-arm64",
    ),
    pytest.param(
        ImagePropertiesFilter,
        host(labels={"kubernetes.io/arch": "arm"}),
        spec(image_properties={"architecture": "armv7l"}),
        None,
        id="image-armv7l-on-arm",
    ),
    pytest.param(
        ImagePropertiesFilter,
        host(labels={"kubernetes.io/arch": "386"}),
        spec(image_properties={"architecture": "i686"}),
        None,
        id="image-i686-on-386",
    ),
    pytest.param(
        ImagePropertiesFilter,
        host(labels={"kubernetes.io/arch": "s390x"}),
        spec(image_properties={"hw_architecture": "s390x"}),
        None,
        id="image-nova-property-name",
    ),
    pytest.param(
        ImagePropertiesFilter,
        host(labels={"kubernetes.io/arch": "amd64"}),
        spec(image_properties={"architecture": "AMD64"}),
        None,
        id="image-alias-any-case",
    ),
    pytest.param(
        ImagePropertiesFilter,
        host(labels={"kubernetes.io/arch": "arm64"}),
        spec(image_properties={"architecture": "x86_64"}),
        "image architecture x86_64, node is arm64",
        id="image-wrong-arch",
    ),
    pytest.param(
        ImagePropertiesFilter,
        host(labels={"kubernetes.io/arch": "amd64"}),
        spec(image_properties={"architecture": "ppc64le"}),
        "image architecture ppc64le, node is amd64",
        id="image-ppc64le-on-amd64",
    ),
    pytest.param(
        ImagePropertiesFilter,
        host(),
        spec(image_properties={"architecture": "aarch64", "hypervisor_type": "xen"}),
        None,
        id="image-node-unlabelled",
    ),
    pytest.param(
        ImagePropertiesFilter,
        host(labels={"compute.kubenova.io/hypervisor": "qemu"}),
        spec(image_properties={"hypervisor_type": "kvm"}),
        None,
        id="image-kvm-on-qemu",
    ),
    pytest.param(
        ImagePropertiesFilter,
        host(labels={"compute.kubenova.io/hypervisor": "kvm"}),
        spec(image_properties={"img_hv_type": "qemu"}),
        None,
        id="image-qemu-on-kvm",
    ),
    pytest.param(
        ImagePropertiesFilter,
        host(labels={"compute.kubenova.io/hypervisor": "qemu"}),
        spec(image_properties={"hypervisor_type": "xen"}),
        "image hypervisor_type xen, node runs qemu",
        id="image-wrong-hypervisor",
    ),
    # AggregateInstanceExtraSpecsFilter
    pytest.param(
        AggregateInstanceExtraSpecsFilter, host(), spec(), None, id="aggregate-no-extra-specs"
    ),
    pytest.param(
        AggregateInstanceExtraSpecsFilter,
        host(labels={"ssd": "true"}),
        spec(extra_specs={"ssd": "true"}),
        None,
        id="aggregate-unscoped-match",
    ),
    pytest.param(
        AggregateInstanceExtraSpecsFilter,
        host(labels={"example.com/ssd": "true"}),
        spec(extra_specs={"aggregate_instance_extra_specs:example.com/ssd": "true"}),
        None,
        id="aggregate-scoped-match",
    ),
    pytest.param(
        AggregateInstanceExtraSpecsFilter,
        host(),
        spec(extra_specs={"hw:cpu_policy": "dedicated", "quota:cpu_shares": "2048"}),
        None,
        id="aggregate-other-scopes-ignored",
    ),
    pytest.param(
        AggregateInstanceExtraSpecsFilter,
        host(labels={"ssd": "false"}),
        spec(extra_specs={"ssd": "true"}),
        "extra spec ssd='true': node label ssd='false'",
        id="aggregate-mismatch",
    ),
    pytest.param(
        AggregateInstanceExtraSpecsFilter,
        host(),
        spec(extra_specs={"aggregate_instance_extra_specs:ssd": "true"}),
        "extra spec aggregate_instance_extra_specs:ssd: node has no label ssd",
        id="aggregate-missing-label",
    ),
    pytest.param(
        AggregateInstanceExtraSpecsFilter,
        host(labels={"cpu": "avx avx2", "tier": "gold"}),
        spec(extra_specs={"cpu": "<in> avx2", "tier": "<or> silver <or> gold"}),
        None,
        id="aggregate-operators",
    ),
    pytest.param(
        AggregateInstanceExtraSpecsFilter,
        host(labels={"numa": "2"}),
        spec(extra_specs={"numa": "= 4"}),
        "extra spec numa='= 4': node label numa='2'",
        id="aggregate-numeric-too-small",
    ),
    # ServerGroupAffinityFilter
    pytest.param(
        ServerGroupAffinityFilter,
        host("n2"),
        spec(group_policy="anti-affinity", group_hosts={"n1": 1}),
        None,
        id="affinity-other-policy",
    ),
    pytest.param(
        ServerGroupAffinityFilter,
        host("n2"),
        spec(group_policy="affinity"),
        None,
        id="affinity-first-member",
    ),
    pytest.param(
        ServerGroupAffinityFilter,
        host("n2"),
        spec(group_policy="affinity", group_hosts={"n1": 0}),
        None,
        id="affinity-zero-counts-are-no-members",
    ),
    pytest.param(
        ServerGroupAffinityFilter,
        host("n1"),
        spec(group_policy="affinity", group_hosts={"n1": 2}),
        None,
        id="affinity-group-host",
    ),
    pytest.param(
        ServerGroupAffinityFilter,
        host("n3"),
        spec(group_policy="affinity", group_hosts={"n2": 1, "n1": 1, "n3": 0}),
        "affinity: the group is on n1, n2",
        id="affinity-elsewhere",
    ),
    # ServerGroupAntiAffinityFilter
    pytest.param(
        ServerGroupAntiAffinityFilter,
        host("n1"),
        spec(group_policy="affinity", group_hosts={"n1": 3}),
        None,
        id="anti-other-policy",
    ),
    pytest.param(
        ServerGroupAntiAffinityFilter,
        host("n1"),
        spec(group_policy="anti-affinity", group_hosts={"n2": 1}),
        None,
        id="anti-empty-host",
    ),
    pytest.param(
        ServerGroupAntiAffinityFilter,
        host("n1"),
        spec(group_policy="anti-affinity", group_hosts={"n1": 1}),
        "anti-affinity: host holds 1 of the group, max 1",
        id="anti-taken",
    ),
    pytest.param(
        ServerGroupAntiAffinityFilter,
        host("n1"),
        spec(group_policy="anti-affinity", group_max_per_host=2, group_hosts={"n1": 1}),
        None,
        id="anti-under-max",
    ),
    pytest.param(
        ServerGroupAntiAffinityFilter,
        host("n1"),
        spec(group_policy="anti-affinity", group_max_per_host=2, group_hosts={"n1": 2}),
        "anti-affinity: host holds 2 of the group, max 2",
        id="anti-at-max",
    ),
    # SameHostFilter
    pytest.param(SameHostFilter, host("n1"), spec(), None, id="same-no-hint"),
    pytest.param(
        SameHostFilter, host("n1"), spec(same_host=frozenset()), None, id="same-none-placed"
    ),
    pytest.param(
        SameHostFilter, host("n1"), spec(same_host=frozenset({"n1"})), None, id="same-match"
    ),
    pytest.param(
        SameHostFilter,
        host("n3"),
        spec(same_host=frozenset({"n2", "n1"})),
        "sameHost: instances are on n1, n2",
        id="same-elsewhere",
    ),
    # DifferentHostFilter
    pytest.param(DifferentHostFilter, host("n1"), spec(), None, id="different-no-hint"),
    pytest.param(
        DifferentHostFilter,
        host("n1"),
        spec(different_host=frozenset({"n2"})),
        None,
        id="different-elsewhere",
    ),
    pytest.param(
        DifferentHostFilter,
        host("n1"),
        spec(different_host=frozenset({"n1", "n2"})),
        "differentHost: holds a named instance",
        id="different-same",
    ),
]


@pytest.mark.parametrize(("filter_cls", "host_state", "request_spec", "reason"), CASES)
def test_filter(
    filter_cls: type[BaseHostFilter],
    host_state: HostState,
    request_spec: RequestSpec,
    reason: str | None,
) -> None:
    result = filter_cls().host_passes(host_state, request_spec)
    assert result.passed is (reason is None)
    assert result.reason == (reason or "")


def test_every_filter_has_cases() -> None:
    from kubenova.scheduler.registry import FILTERS

    covered = {case.values[0].name for case in CASES}
    failing = {case.values[0].name for case in CASES if case.values[3] is not None}
    assert covered == failing == set(FILTERS)


# (host value, requirement, matches) after nova/scheduler/filters/extra_specs_ops.py
OPS = [
    ("ssd", "ssd", True),
    ("ssd", "hdd", False),
    (None, "ssd", False),
    ("s== a", "s== a", False),  # compared with the operand "a", not the whole requirement
    ("12", "= 12", True),
    ("13", "= 12", True),  # "=" is numeric >=
    ("11", "= 12", False),
    ("12.0", "== 12", True),
    ("12", "!= 12", False),
    ("4", ">= 2", True),
    ("4", "<= 2", False),
    ("abc", "= 2", False),  # not a number: no match rather than an error
    ("abc", "s== abc", True),
    ("abcd", "s== abc", False),
    ("abc", "s!= abd", True),
    ("abc", "s< abd", True),
    ("abc", "s<= abc", True),
    ("abd", "s> abc", True),
    ("abc", "s>= abd", False),
    ("avx avx2 sse4", "<in> avx2", True),
    ("avx sse4", "<in> avx2", False),
    ("avx avx2 sse4", "<all-in> avx2 sse4", True),
    ("avx sse4", "<all-in> avx2 sse4", False),
    ("b", "<or> a <or> b <or> c", True),
    ("c", "<or> a <or> b <or> c", True),
    ("d", "<or> a <or> b <or> c", False),
    ("<or>", "<or> a <or> b", False),  # the separators are not alternatives
    (None, "<or> a", False),
    ("12", "=", False),  # an operator without its operand matches nothing
    ("a", "<or>", False),
    ("", "", True),
]


@pytest.mark.parametrize(("value", "requirement", "matches"), OPS)
def test_extra_specs_ops(value: str | None, requirement: str, matches: bool) -> None:
    assert match(value, requirement) is matches
