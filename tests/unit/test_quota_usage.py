"""Quota arithmetic: Nova's defaults, the over-quota test and its message."""

import pytest

from kubenova.quota.quotas import exceeded_message
from kubenova.quota.usage import (
    Overage,
    Usage,
    instance_usage,
    limits_of,
    over_quota,
    total,
    volume_usage,
)


def test_absent_quota_means_novas_defaults():
    assert limits_of(None) == Usage(
        instances=10, cores=20, ram_mib=51200, volumes=10, gigabytes=1000
    )
    assert limits_of({"cores": 4}) == Usage(10, 4, 51200, 10, 1000)


def test_usage_round_trips_the_wire_names_and_sums():
    entry = {"kind": "Instance", "name": "web", "instances": 1, "cores": 2, "ramMiB": 512}
    assert Usage.of(entry) == instance_usage({"vcpus": 2, "ramMiB": 512})
    assert Usage.of(entry).to_api() == {
        "instances": 1,
        "cores": 2,
        "ramMiB": 512,
        "volumes": 0,
        "gigabytes": 0,
    }
    assert total([entry, entry, volume_usage(5).to_api()]) == Usage(2, 4, 1024, 1, 5)


def test_message_is_novas():
    over = over_quota(limits_of({"cores": 20}), Usage(cores=18), Usage(instances=1, cores=4))
    assert over == Overage("cores", 4, 18, 20)
    assert over.message() == (
        "Quota exceeded for cores: Requested 4, but already used 18 of 20 cores"
    )
    text = exceeded_message("proj", over.message(), over.resource)
    assert text.startswith("Quota exceeded for cores: Requested 4, but already used 18 of 20")
    assert "raise spec.cores of Quota default in proj" in text


@pytest.mark.parametrize(
    ("used", "request_", "resource"),
    [
        (Usage(instances=10), Usage(instances=1), "instances"),
        (Usage(instances=1, ram_mib=51000), Usage(instances=1, ram_mib=512), "ramMiB"),
        (Usage(volumes=10), volume_usage(1), "volumes"),
        (Usage(volumes=1, gigabytes=999), volume_usage(2), "gigabytes"),
    ],
)
def test_first_exceeded_resource_is_named(used, request_, resource):
    over = over_quota(limits_of(None), used, request_)
    assert over is not None and over.resource == resource


def test_exactly_at_the_limit_fits_and_unlimited_never_overflows():
    assert over_quota(limits_of(None), Usage(instances=9, cores=19), Usage(1, 1)) is None
    unlimited = limits_of({"instances": -1, "cores": -1})
    assert over_quota(unlimited, Usage(instances=10_000, cores=99_999), Usage(1, 64)) is None


def test_a_resize_checks_only_growth():
    limits = limits_of({"gigabytes": 100})
    # 90 used, 40 of them by this volume: growing it to 50 fits, to 51 does not.
    assert over_quota(limits, Usage(gigabytes=90), volume_usage(50), volume_usage(40)) is None
    over = over_quota(limits, Usage(gigabytes=90), volume_usage(51), volume_usage(40))
    assert over == Overage("gigabytes", 51, 50, 100)
    # A limit lowered below the usage does not refuse keeping (or shrinking) a size.
    lowered = limits_of({"gigabytes": 10})
    assert over_quota(lowered, Usage(gigabytes=90), volume_usage(40), volume_usage(40)) is None
