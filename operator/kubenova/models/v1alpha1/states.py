"""Nova's state vocabulary (nova/compute/vm_states.py, task_states.py, power_state.py).

Values are the constants' names, as the mission and `openstack server show` spell them.
Which transitions are allowed lives in the conductor's state machine, not here.
"""

from enum import StrEnum


class VmState(StrEnum):
    BUILDING = "BUILDING"
    ACTIVE = "ACTIVE"
    STOPPED = "STOPPED"
    ERROR = "ERROR"
    DELETED = "DELETED"


class TaskState(StrEnum):
    SCHEDULING = "SCHEDULING"
    NETWORKING = "NETWORKING"
    BLOCK_DEVICE_MAPPING = "BLOCK_DEVICE_MAPPING"
    SPAWNING = "SPAWNING"
    POWERING_OFF = "POWERING_OFF"
    POWERING_ON = "POWERING_ON"
    REBOOTING = "REBOOTING"
    REBOOTING_HARD = "REBOOTING_HARD"
    DELETING = "DELETING"


class PowerState(StrEnum):
    NOSTATE = "NOSTATE"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SHUTDOWN = "SHUTDOWN"
    CRASHED = "CRASHED"
    SUSPENDED = "SUSPENDED"
