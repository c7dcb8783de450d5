"""Which boot Ready waits on (conductor/guest.py): pure reading of an instance's status."""

from kubenova.conductor.guest import boot_started, first_boot


def status(vm="ACTIVE", task=None, reason="GuestBooting", history=None, host="compute-0"):
    entries = history or [
        {"vmState": "BUILDING", "taskState": "SCHEDULING", "time": "2026-01-01T00:00:00Z"},
        {"vmState": "ACTIVE", "time": "2026-01-01T00:00:09Z"},
    ]
    return {
        "vmState": vm,
        "taskState": task,
        "host": host,
        "conditions": [{"type": "Ready", "status": "False", "reason": reason}],
        "phaseTransitionTimestamps": entries,
    }


def test_the_boot_is_the_move_to_active():
    assert boot_started(status()) == "2026-01-01T00:00:09Z"


def test_nothing_to_wait_for_once_ready_or_timed_out():
    assert boot_started(status(reason="GuestBooted")) is None
    assert boot_started(status(reason="GuestBootTimeout")) is None


def test_nothing_to_wait_for_outside_active():
    assert boot_started(status(vm="STOPPED")) is None
    assert boot_started(status(task="REBOOTING")) is None
    assert boot_started(status(host=None)) is None


def test_first_boot_is_the_builds_only():
    assert first_boot(status())
    rebooted = status()["phaseTransitionTimestamps"] + [
        {"vmState": "ACTIVE", "taskState": "REBOOTING", "time": "2026-01-01T00:01:00Z"},
        {"vmState": "ACTIVE", "time": "2026-01-01T00:01:05Z"},
    ]
    assert not first_boot(status(history=rebooted))
