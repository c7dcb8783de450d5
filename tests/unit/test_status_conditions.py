"""Conditions follow the build; Ready is True only once the guest OS is up, so
`kubectl wait --for=condition=Ready` means the guest is up, not just the VM running."""

import itertools

from kubenova.conductor import states
from kubenova.conductor.status import conditions_for, guest_boot_kept


def after(*path, guest_up=False) -> list[dict]:
    conditions: list[dict] = []
    for source, target in itertools.pairwise(path):
        conditions = conditions_for(
            conditions, source, target, "m", "2026-01-01T00:00:00Z", 1, guest_up=guest_up
        )
    return conditions


def walk(*path, guest_up=False):
    return {c["type"]: c["status"] for c in after(*path, guest_up=guest_up)}


def ready_of(*path, guest_up=False):
    return next(c for c in after(*path, guest_up=guest_up) if c["type"] == "Ready")


def test_ready_only_when_active():
    assert walk(states.NEW, states.SCHEDULING) == {"Ready": "False", "Failed": "False"}
    assert walk(states.NEW, states.SCHEDULING, states.NETWORKING) == {
        "Scheduled": "True",
        "Ready": "False",
        "Failed": "False",
    }
    full = walk(states.NEW, *states.BUILD_STEPS, states.ACTIVE)
    assert full == {
        "Scheduled": "True",
        "NetworkReady": "True",
        "BlockDevicesReady": "True",
        "Ready": "False",  # the VM runs; the guest watch sets Ready once the guest is up
        "Failed": "False",
    }
    ready = ready_of(states.NEW, *states.BUILD_STEPS, states.ACTIVE)
    assert ready["reason"] == "GuestBooting"


def test_ready_stays_true_across_a_failed_stop():
    """A stop that fails leaves the guest of the same boot up (guest_up: guestBootedAt kept)."""
    ready = ready_of(states.ACTIVE, states.POWERING_OFF, states.ACTIVE, guest_up=True)
    assert (ready["status"], ready["reason"]) == ("True", "GuestBooted")


def test_which_moves_keep_the_guests_boot():
    assert guest_boot_kept(states.ACTIVE, states.POWERING_OFF)
    assert guest_boot_kept(states.POWERING_OFF, states.ACTIVE)
    assert not guest_boot_kept(states.SPAWNING, states.ACTIVE)  # a new boot
    assert not guest_boot_kept(states.ACTIVE, states.REBOOTING)
    assert not guest_boot_kept(states.POWERING_OFF, states.STOPPED)


def test_reschedule_resets_the_build_conditions():
    after = walk(
        states.NEW,
        states.SCHEDULING,
        states.NETWORKING,
        states.BLOCK_DEVICE_MAPPING,
        states.SPAWNING,
        states.SCHEDULING,
    )
    assert after == {
        "Scheduled": "False",
        "NetworkReady": "False",
        "BlockDevicesReady": "False",
        "Ready": "False",
        "Failed": "False",
    }


def test_error_is_not_ready():
    assert walk(states.NEW, states.SCHEDULING, states.ERROR)["Ready"] == "False"


def test_last_transition_time_changes_only_with_status():
    first = conditions_for([], states.NEW, states.SCHEDULING, "a", "2026-01-01T00:00:00Z", 1)
    second = conditions_for(
        first, states.SCHEDULING, states.NETWORKING, "b", "2026-01-01T00:00:05Z", 1
    )
    ready = next(c for c in second if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert ready["message"] == "b"


def test_failed_is_true_in_error_with_the_faults_message():
    conditions = conditions_for(
        [], states.SCHEDULING, states.ERROR, "m", "2026-01-01T00:00:00Z", 1, fault="No valid host"
    )
    failed = next(c for c in conditions if c["type"] == "Failed")
    assert (failed["status"], failed["reason"], failed["message"]) == (
        "True",
        "Error",
        "No valid host",
    )


def test_failed_uses_the_message_without_a_fault():
    conditions = conditions_for([], states.NEW, states.ERROR, "quota", "2026-01-01T00:00:00Z", 1)
    assert next(c for c in conditions if c["type"] == "Failed")["message"] == "quota"


def test_failed_turns_false_when_an_action_leaves_error():
    path = (states.NEW, states.SCHEDULING, states.ERROR, states.ERROR_REBOOTING_HARD)
    assert walk(*path)["Failed"] == "True"  # vmState is still ERROR while the reboot runs
    assert walk(*path, states.ACTIVE) == {"Ready": "False", "Failed": "False"}  # booting
    assert walk(*path, states.ERROR)["Failed"] == "True"
