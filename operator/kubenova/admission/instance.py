"""nova-api's checks on a server create, as pure functions of the spec and what it refers to.

Each problem says what to change. All problems are reported at once, so one round trip of
`kubectl apply` shows everything wrong with the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubenova.admission.refs import InstanceRefs, Problem
from kubenova.network.ipam import AddressError, Subnet, port_name
from kubenova.quota.quotas import exceeded_message
from kubenova.quota.usage import instance_usage, over_quota

#: Nova's limit on user_data, in bytes of the text as sent.
MAX_USER_DATA_BYTES = 65535
#: Volume phases in which another instance holds the volume.
BUSY_PHASES = ("attaching", "in-use", "detaching")


def instance_problems(namespace: str, spec: Mapping[str, Any], refs: InstanceRefs) -> list[Problem]:
    """Why an Instance create must be refused; empty if it may go ahead."""
    problems = [
        *_flavor_and_image(namespace, spec, refs),
        *_networks(namespace, spec, refs),
        *_keypair(namespace, spec, refs),
        *_volumes(namespace, spec, refs),
        *_user_data(spec),
    ]
    if refs.flavor is not None:
        problems.extend(_quota(namespace, refs))
    return problems


def _flavor_and_image(namespace: str, spec: Mapping[str, Any], refs: InstanceRefs) -> list[Problem]:
    problems = []
    flavor, image = refs.flavor, refs.image
    if flavor is None:
        problems.append(
            Problem(
                f"Flavor {spec['flavor']} does not exist: set spec.flavor to one of "
                "`kubectl get flavors`",
                404,
            )
        )
    if image is None:
        problems.append(
            Problem(
                f"Image {spec['image']} does not exist in namespace {namespace}: create it "
                f"or set spec.image to one of `kubectl get images -n {namespace}`",
                404,
            )
        )
    elif (image.get("status") or {}).get("phase") == "killed":
        reason = (image.get("status") or {}).get("message") or "its upload failed"
        problems.append(
            Problem(f"Image {spec['image']} is killed ({reason}): re-create it or pick another")
        )
    if flavor is None or image is None:
        return problems
    image_spec = image.get("spec") or {}
    min_ram, ram = int(image_spec.get("minRamMiB") or 0), int(flavor["ramMiB"])
    if min_ram > ram:
        problems.append(
            Problem(
                f"Flavor {spec['flavor']}'s memory ({ram} MiB) is too small for image "
                f"{spec['image']}, which needs minRamMiB {min_ram}: pick a flavor with at "
                f"least {min_ram} MiB"
            )
        )
    min_disk, disk = int(image_spec.get("minDiskGiB") or 0), int(flavor.get("diskGiB") or 0)
    if disk and min_disk > disk:  # diskGiB 0: the root disk takes the image's size (Nova)
        problems.append(
            Problem(
                f"Flavor {spec['flavor']}'s disk ({disk} GiB) is too small for image "
                f"{spec['image']}, which needs minDiskGiB {min_disk}: pick a flavor with at "
                f"least {min_disk} GiB of disk"
            )
        )
    return problems


def _networks(namespace: str, spec: Mapping[str, Any], refs: InstanceRefs) -> list[Problem]:
    problems = []
    for index, request in enumerate(spec.get("networks") or []):
        name, fixed = request["network"], request.get("fixedIp")
        network = refs.networks.get(name)
        if network is None:
            problems.append(
                Problem(
                    f"Network {name} does not exist in namespace {namespace}: create it or "
                    f"remove it from spec.networks",
                    404,
                )
            )
            continue
        if not fixed:
            continue
        where = f"spec.networks[{index}].fixedIp"
        try:
            Subnet.of_spec(dict(network)).check_fixed(fixed)
        except (AddressError, ValueError) as err:
            problems.append(
                Problem(f"{where}: on network {name}, {err}: pick another address or omit fixedIp")
            )
            continue
        if fixed in refs.held_ips.get(name, ()):
            problems.append(
                Problem(
                    f"{where}: fixed IP {fixed} is already in use on network {name} (Port "
                    f"{port_name(name, fixed)}): pick another address or omit fixedIp",
                    409,
                )
            )
    return problems


def _keypair(namespace: str, spec: Mapping[str, Any], refs: InstanceRefs) -> list[Problem]:
    if spec.get("keyName") and refs.keypair is False:
        return [
            Problem(
                f"Keypair {spec['keyName']} does not exist in namespace {namespace}: create it "
                f"or fix spec.keyName",
                404,
            )
        ]
    return []


def _volumes(namespace: str, spec: Mapping[str, Any], refs: InstanceRefs) -> list[Problem]:
    problems = []
    for request in spec.get("volumes") or []:
        name = request["volume"]
        volume = refs.volumes.get(name)
        if volume is None:
            problems.append(
                Problem(
                    f"Volume {name} does not exist in namespace {namespace}: create it or "
                    f"remove it from spec.volumes",
                    404,
                )
            )
            continue
        status = volume.get("status") or {}
        if status.get("phase") in BUSY_PHASES and status.get("attachedTo"):
            problems.append(
                Problem(
                    f"Volume {name} is in use by instance {status['attachedTo']}: delete that "
                    f"instance first or attach another volume",
                    409,
                )
            )
        elif status.get("phase") == "error":
            reason = status.get("message") or "no reason recorded"
            problems.append(
                Problem(f"Volume {name} is in error ({reason}): re-create it or use another")
            )
    return problems


def _user_data(spec: Mapping[str, Any]) -> list[Problem]:
    user_data = spec.get("userData")
    if user_data is None:
        return []
    size = len(user_data.encode("utf-8"))
    if size > MAX_USER_DATA_BYTES:
        return [
            Problem(
                f"spec.userData is {size} bytes, over Nova's limit of {MAX_USER_DATA_BYTES} "
                "bytes: shrink it (let the guest fetch large files instead)"
            )
        ]
    return []


def _quota(namespace: str, refs: InstanceRefs) -> list[Problem]:
    assert refs.flavor is not None
    over = over_quota(refs.quota.limits, refs.quota.used, instance_usage(refs.flavor))
    if over is None:
        return []
    return [Problem(exceeded_message(namespace, over.message(), over.resource), 403)]
