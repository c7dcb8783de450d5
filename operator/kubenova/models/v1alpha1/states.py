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


class GuestSignal(StrEnum):
    """The signs that a guest OS is up, first one wins (the condition's message names it)."""

    DHCP = "DHCP"
    """the guest's DHCP request for its Port's MAC, seen by the Network's dnsmasq"""
    CLOUD_INIT = "CloudInit"
    """cloud-init's "Cloud-init v. X finished at ..." line on the serial console"""
    GUEST_AGENT = "GuestAgent"
    """qemu-guest-agent answered guest-ping (images with hw_qemu_guest_agent=yes, as in Nova)"""
    CONSOLE_REGEX = "ConsoleRegex"
    """the Image property GUEST_BOOTED_REGEX_PROPERTY matched a console line"""
    ANNOUNCEMENT = "Announcement"
    """kubenova's own busybox test guest's `kubenova-guest booted ...` line"""
    HYPERVISOR = "Hypervisor"
    """the hypervisor's own readiness verdict (the pod's readiness probe, the VMI's Ready /
    AgentConnected conditions, the fake driver)"""
