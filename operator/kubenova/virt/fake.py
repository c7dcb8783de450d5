"""FakeDriver, after nova/virt/fake.py: "boots" instantly, for scale tests and benchmarks only.

It keeps its VMs in memory. Failures are injected per host, so reschedules and failed actions
can be exercised without a hypervisor: `fail_spawn` makes every spawn there fail, `fail_power`
every stop, start and reboot (the VM stays as it was), `silent_guest` a guest that runs but
never shows a sign of being up (wait_for_guest times out).
"""

from __future__ import annotations

import asyncio

from kubenova.models.v1alpha1.states import PowerState
from kubenova.timestamps import now
from kubenova.virt.driver import (
    ComputeDriver,
    DriverError,
    GuestBoot,
    GuestBootTimeout,
    GuestSignal,
    InstanceInfo,
    InstanceNotFound,
    SpawnFailed,
    SpawnRequest,
)


class FakeDriver(ComputeDriver):
    name = "fake"

    def __init__(
        self,
        host: str,
        fail_spawn: bool = False,
        fail_power: bool = False,
        silent_guest: bool = False,
    ) -> None:
        self.host = host
        self.fail_spawn = fail_spawn
        self.fail_power = fail_power
        self.silent_guest = silent_guest
        self.instances: dict[str, PowerState] = {}

    async def spawn(self, request: SpawnRequest, start_timeout: float) -> InstanceInfo:
        if self.fail_spawn:
            raise SpawnFailed(f"injected spawn failure on {self.host}")
        self.instances[request.instance_id] = PowerState.RUNNING
        guest = None if self.silent_guest else self._guest_up()
        return InstanceInfo(
            request.instance_id,
            PowerState.RUNNING,
            booted=True,
            details={"accelerator": "fake"},
            guest=guest,
        )

    def _guest_up(self) -> GuestBoot:
        return GuestBoot(GuestSignal.HYPERVISOR, f"fake VM on {self.host}", now())

    async def wait_for_guest(self, instance_id: str, boot_timeout: float) -> GuestBoot:
        if self._get(instance_id) != PowerState.RUNNING:
            raise DriverError(f"{instance_id} is not running on {self.host}")
        if self.silent_guest:
            await asyncio.sleep(boot_timeout)
            raise GuestBootTimeout(f"the fake guest on {self.host} stays silent")
        return self._guest_up()

    async def destroy(self, instance_id: str) -> None:
        self.instances.pop(instance_id, None)

    async def power_off(self, instance_id: str, grace: float = 0) -> None:
        self._get(instance_id)
        self._power_failure("power off")
        self.instances[instance_id] = PowerState.SHUTDOWN

    async def power_on(self, instance_id: str, start_timeout: float) -> InstanceInfo:
        self._get(instance_id)
        self._power_failure("power on")
        self.instances[instance_id] = PowerState.RUNNING
        return InstanceInfo(instance_id, PowerState.RUNNING, booted=True)

    async def reboot(self, instance_id: str, hard: bool, start_timeout: float) -> InstanceInfo:
        return await self.power_on(instance_id, start_timeout)

    async def get_info(self, instance_id: str) -> InstanceInfo:
        return InstanceInfo(instance_id, self._get(instance_id), booted=True)

    async def console_output(self, instance_id: str) -> str:
        self._get(instance_id)
        return f"fake console of {instance_id}\n"

    async def list_instances(self) -> list[str]:
        return sorted(self.instances)

    def _power_failure(self, what: str) -> None:
        if self.fail_power:
            raise DriverError(f"injected {what} failure on {self.host}")

    def _get(self, instance_id: str) -> PowerState:
        try:
            return self.instances[instance_id]
        except KeyError:
            raise InstanceNotFound(instance_id) from None
