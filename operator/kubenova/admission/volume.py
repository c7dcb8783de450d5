"""cinder-api's checks on Volume create, grow and delete, as pure functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubenova.admission.refs import Problem, QuotaView
from kubenova.quota.quotas import exceeded_message
from kubenova.quota.usage import over_quota, volume_usage

#: Phases in which an instance holds the volume.
ATTACHED_PHASES = ("attaching", "in-use", "detaching")


def volume_create_problems(
    namespace: str,
    spec: Mapping[str, Any],
    quota: QuotaView,
    source_image_exists: bool | None = None,
) -> list[Problem]:
    """Why a Volume create must be refused (quota, a missing source image)."""
    problems = []
    if spec.get("sourceImage") and source_image_exists is False:
        problems.append(
            Problem(
                f"Image {spec['sourceImage']} does not exist in namespace {namespace}: create "
                "it or fix spec.sourceImage",
                404,
            )
        )
    over = over_quota(quota.limits, quota.used, volume_usage(spec["sizeGiB"]))
    if over is not None:
        problems.append(Problem(exceeded_message(namespace, over.message(), over.resource), 403))
    return problems


def volume_grow_problems(
    namespace: str, old: Mapping[str, Any], new: Mapping[str, Any], quota: QuotaView
) -> list[Problem]:
    """Growing a volume takes more of the gigabytes quota; only the growth is checked."""
    before, after = volume_usage(old["sizeGiB"]), volume_usage(new["sizeGiB"])
    if after == before:
        return []
    over = over_quota(quota.limits, quota.used, after, previous=before)
    if over is None:
        return []
    return [Problem(exceeded_message(namespace, over.message(), over.resource), 403)]


def volume_delete_problems(
    name: str, status: Mapping[str, Any], instance_exists: bool
) -> list[Problem]:
    """A volume an existing instance holds cannot be deleted (cinder: VolumeIsBusy)."""
    user = status.get("attachedTo")
    if status.get("phase") in ATTACHED_PHASES and user and instance_exists:
        return [
            Problem(
                f"volume {name} is attached to instance {user}; delete or detach the instance "
                "first",
                409,
            )
        ]
    return []
