"""Instance: a server, walked through Nova's vmState/taskState by the operator."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from kubenova.models.base import (
    AGE,
    Conditions,
    CRDInfo,
    IPAddress,
    KubeModel,
    ObjectName,
    PrinterColumn,
    Resource,
    cel,
    validations,
)
from kubenova.models.v1alpha1.quota import QuotaUsage
from kubenova.models.v1alpha1.states import GuestSignal, PowerState, TaskState, VmState


class NetworkRequest(KubeModel):
    network: ObjectName
    fixed_ip: IPAddress | None = None
    """Ask for this address instead of the next free one."""


class VolumeAttachment(KubeModel):
    volume: ObjectName


class SchedulerHints(KubeModel):
    model_config = validations(
        cel(
            "!has(self.sameHost) || !has(self.differentHost) || "
            "!self.sameHost.exists(i, i in self.differentHost)",
            "an instance cannot be in both sameHost and differentHost",
        ),
    )

    group: ObjectName | None = None
    """A ServerGroup whose policy the instance is scheduled under."""
    same_host: list[ObjectName] = Field(default_factory=list, max_length=16)
    """Instances to share a host with."""
    different_host: list[ObjectName] = Field(default_factory=list, max_length=16)
    """Instances to avoid sharing a host with."""


class InstanceSpec(KubeModel):
    """What the user asks for. Flavor and image are fixed: resize and rebuild are not offered."""

    model_config = validations(
        cel(
            "self.flavor == oldSelf.flavor",
            "flavor is immutable (resize is not supported)",
            fieldPath=".flavor",
        ),
        cel(
            "self.image == oldSelf.image",
            "image is immutable (rebuild is not supported)",
            fieldPath=".image",
        ),
    )

    flavor: ObjectName
    image: ObjectName
    networks: list[NetworkRequest] = Field(
        default_factory=list,
        max_length=8,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.all(n, self.exists_one(m, m.network == n.network))",
                    "each network may be requested once",
                ),
            ]
        },
    )
    key_name: ObjectName | None = None
    """A Keypair in the same namespace."""
    user_data: str | None = Field(default=None, max_length=65535)
    """Passed to the guest through the NoCloud seed."""
    availability_zone: str | None = Field(default=None, max_length=63)
    scheduler_hints: SchedulerHints | None = None
    volumes: list[VolumeAttachment] = Field(
        default_factory=list,
        max_length=8,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.all(v, self.exists_one(w, w.volume == v.volume))",
                    "each volume may be attached once",
                ),
            ]
        },
    )
    power_state: Literal["Running", "Stopped"] = "Running"
    """The desired power state: changing it stops or starts the instance (Nova's stop and
    start). Reboots: the annotation compute.kubenova.io/reboot=soft|hard."""


class Fault(KubeModel):
    """Why an instance is in ERROR, as Nova's instance fault."""

    code: int = Field(ge=0, le=599)
    message: str = Field(max_length=1024)
    details: str | None = Field(default=None, max_length=32768)
    time: datetime


class Attempt(KubeModel):
    """One host the build was tried on and why it failed there."""

    host: str
    reason: str = Field(max_length=4096)
    time: datetime


class Address(KubeModel):
    network: str
    ip: str
    mac: str | None = None


class PhaseTransition(KubeModel):
    vm_state: VmState
    task_state: TaskState | None = None
    time: datetime


PrintableStatus = Literal[
    "BUILD", "ACTIVE", "REBOOT", "HARD_REBOOT", "SHUTOFF", "ERROR", "DELETED", "UNKNOWN"
]
"""Nova's API status (`openstack server list`), derived from vmState and taskState by the
conductor's state machine (conductor/states.py `printable_status`)."""

#: how many actions `status.actions` keeps (the newest; Nova keeps all in its database)
MAX_ACTIONS = 20


class InstanceAction(KubeModel):
    """One user action on the instance and its outcome, as Nova's instance actions
    (`openstack server event list`): the build is `create`."""

    action: Literal["create", "stop", "start", "reboot", "delete"]
    request_id: str = Field(max_length=64)
    """`req-<uuid>`, made by the operator when it takes the request up."""
    reboot_type: Literal["SOFT", "HARD"] | None = None
    request_time: datetime
    """When it was asked for: the instance's creation, or when the field or annotation that
    asks for it was last written (from metadata.managedFields)."""
    start_time: datetime | None = None
    finish_time: datetime | None = None
    result: Literal["Success", "Error"] | None = None
    """Unset while it runs; Error with the reason in `message` when it failed or was refused."""
    message: str | None = Field(default=None, max_length=1024)


class InstanceStatus(KubeModel):
    """Written only by the operator (nova-conductor's role)."""

    printable_status: PrintableStatus | None = None
    """Nova's API status (BUILD, ACTIVE, SHUTOFF, REBOOT, HARD_REBOOT, ERROR), from vmState
    and taskState; written with every state change."""
    vm_state: VmState | None = None
    task_state: TaskState | None = None
    power_state: PowerState | None = None
    host: str | None = None
    addresses: list[Address] = Field(default_factory=list)
    fault: Fault | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    """Hosts the build failed on, in order (Nova's reschedule history)."""
    alternates: list[str] = Field(default_factory=list)
    """Hosts the scheduler chose as fallbacks, tried in order if the build fails."""
    conditions: Conditions = Field(default_factory=list)
    phase_transition_timestamps: list[PhaseTransition] = Field(default_factory=list)
    launched_at: datetime | None = None
    """When the VM first ran (Nova's launched_at: the build's end, vmState ACTIVE)."""
    guest_booted_at: datetime | None = None
    """When the guest OS of the current boot showed it is up (condition Ready True); cleared
    by each start and reboot until the next sign comes."""
    guest_boot_signal: GuestSignal | None = None
    """Which sign that was: DHCP, CloudInit, GuestAgent, ConsoleRegex, Announcement (kubenova's
    test guest) or Hypervisor (the pod's or VMI's readiness, the fake driver)."""
    observed_generation: int | None = None
    quota_usage: QuotaUsage | None = None
    """What the instance counts against its namespace's Quota (instances, cores, ramMiB),
    written when the build was accepted; a build refused for quota has none. Nova counts usage
    from the instances themselves (since Pike), not from a separate ledger."""
    actions: list[InstanceAction] = Field(default_factory=list, max_length=MAX_ACTIONS)
    """The last actions, oldest first (`kubenova events NAME` prints them)."""
    observed_power_state: Literal["Running", "Stopped"] | None = None
    """The spec.powerState the operator last took up (acted on, or refused): a change of
    spec.powerState is one stop or start request."""
    # -- host failure (issue 7 part 4, conductor/hosts.py) -------------------------------------
    host_status: Literal["UP", "DOWN", "UNKNOWN"] | None = None
    """Nova's host_status: DOWN while the instance's host has stopped its heartbeat (powerState
    is then NOSTATE: not known); UNKNOWN when the host is back but not served by this
    operator; unset otherwise."""


class Instance(Resource):
    crd = CRDInfo(
        plural="instances",
        scope="Namespaced",
        short_names=("inst", "server"),
        columns=(
            PrinterColumn("Status", ".status.printableStatus"),
            PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            PrinterColumn("Host", ".status.host"),
            PrinterColumn("IP", ".status.addresses[0].ip"),
            AGE,
            PrinterColumn("VM State", ".status.vmState", priority=1),
            PrinterColumn("Task", ".status.taskState", priority=1),
            PrinterColumn("Power", ".status.powerState", priority=1),
            PrinterColumn("Host Status", ".status.hostStatus", priority=1),  # see hostStatus
            PrinterColumn("Booted By", ".status.guestBootSignal", priority=1),
            PrinterColumn("Flavor", ".spec.flavor", priority=1),
            PrinterColumn("Image", ".spec.image", priority=1),
        ),
    )
    spec: InstanceSpec
    status: InstanceStatus | None = None
