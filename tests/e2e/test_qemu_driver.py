"""QemuProcessDriver against real QEMU: the VM runs, its busybox guest shows it is up (each boot
its own sign), it is adopted, reboots, powers off and on, and every failure path (bad image,
qemu refusing to start, cancellation) leaves nothing.

Uses the accelerator the probe picks (TCG on nested VMs where KVM hangs); each boot takes a few
seconds there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubenova.models.v1alpha1.states import GuestSignal, PowerState
from kubenova.tools import find_tool
from kubenova.virt.driver import (
    GUEST_BOOTED_REGEX_PROPERTY,
    DriverError,
    GuestBootTimeout,
    GuestMetadata,
    InstanceNotFound,
    SpawnRequest,
)
from kubenova.virt.qemu.accel import probe_accelerator
from kubenova.virt.qemu.driver import BOOT_ANNOUNCEMENT, QemuProcessDriver, parse_boot_line
from tests.proc import processes_with, wait_gone

pytestmark = pytest.mark.e2e

GUEST = Path(__file__).resolve().parents[2] / ".bin" / "guest" / "busybox.qcow2"
BOOT_TIMEOUT = 120

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def accelerator() -> str:
    return probe_accelerator(find_tool("qemu-system-x86_64"))


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[QemuProcessDriver]:
    """A driver on a fresh state dir; at teardown every instance is destroyed and no qemu of
    this state dir may be left (one that is gets killed, and the test fails)."""
    if not GUEST.exists():
        pytest.skip(f"{GUEST} is missing: `make setup` (hack/build-guest.sh) builds it")
    driver = QemuProcessDriver(tmp_path / "state")
    yield driver

    async def destroy_all() -> None:
        for instance_id in await driver.list_instances():
            await driver.destroy(instance_id)

    asyncio.run(destroy_all())
    leaked = processes_with("qemu-system", str(tmp_path))
    for pid in leaked:  # still fail the test, but leave nothing running
        os.kill(pid, signal.SIGKILL)
    wait_gone(leaked)
    assert leaked == [], f"qemu processes left behind: {leaked}"


def spawn_request(hostname: str = "guest-1", **overrides) -> SpawnRequest:
    instance_id = str(uuid.uuid4())
    fields = {
        "instance_id": instance_id,
        "name": f"e2e/{hostname}",
        "vcpus": 1,
        "ram_mib": 256,
        "disk_gib": 1,
        "image_path": GUEST,
        "image_format": "qcow2",
        "metadata": GuestMetadata(instance_id=instance_id, hostname=hostname),
    }
    return SpawnRequest(**{**fields, **overrides})


def qemu_of(instance_id: str) -> list[int]:
    return processes_with("qemu-system", instance_id)


def boot_lines(console: str) -> int:
    return console.count("kubenova-guest booted ")


def test_spawn_runs_the_vm_the_guest_shows_it_is_up_and_destroy_removes_it(driver, accelerator):
    request = spawn_request("web-1")
    instance_id = request.instance_id

    async def scenario() -> None:
        started = time.monotonic()
        info = await driver.spawn(request, BOOT_TIMEOUT)  # returns once qemu runs the VM
        assert info.power_state is PowerState.RUNNING
        assert info.details["accelerator"] == accelerator
        boot = await driver.wait_for_guest(instance_id, BOOT_TIMEOUT)
        log.warning("guest up in %.2fs under %s", time.monotonic() - started, accelerator)
        line = BOOT_ANNOUNCEMENT.format(hostname="web-1", instance_id=instance_id)
        assert (boot.signal, boot.detail) == (GuestSignal.ANNOUNCEMENT, line)
        console = await driver.console_output(instance_id)
        assert parse_boot_line(console) == {"hostname": "web-1", "instance-id": instance_id}
        assert qemu_of(instance_id) == [info.pid]

        again = await driver.spawn(request, BOOT_TIMEOUT)  # adopted, not started twice
        assert again.pid == info.pid and again.power_state is PowerState.RUNNING
        assert qemu_of(instance_id) == [info.pid]
        assert await driver.list_instances() == [instance_id]
        assert (await driver.get_info(instance_id)).power_state is PowerState.RUNNING
        # a restarted operator (a new driver on the same state dir) sees the same boot
        restarted = QemuProcessDriver(driver.state_dir)
        assert (await restarted.wait_for_guest(instance_id, 5)).detail == line

        await driver.destroy(instance_id)
        assert qemu_of(instance_id) == []
        assert not (driver.instances_dir / instance_id).exists()
        await driver.destroy(instance_id)  # already gone: fine
        with pytest.raises(InstanceNotFound):
            await driver.get_info(instance_id)

    asyncio.run(scenario())


def test_an_image_regex_is_a_sign_the_guest_is_up(driver):
    """For images with no other sign: the Image property's regex on a console line (here the
    line the test guest prints on reading its user-data, before its own announcement)."""
    instance_id = str(uuid.uuid4())
    request = spawn_request(
        "regex",
        instance_id=instance_id,
        metadata=GuestMetadata(instance_id=instance_id, hostname="regex", user_data="hello\n"),
        image_properties={GUEST_BOOTED_REGEX_PROPERTY: r"user-data bytes=\d+"},
    )

    async def scenario() -> None:
        await driver.spawn(request, BOOT_TIMEOUT)
        boot = await driver.wait_for_guest(instance_id, BOOT_TIMEOUT)
        assert boot.signal == GuestSignal.CONSOLE_REGEX
        assert "kubenova-guest user-data bytes=6" in boot.detail

    asyncio.run(scenario())


def test_power_off_on_and_reboots(driver):
    request = spawn_request("cycler")
    instance_id = request.instance_id
    driver.soft_reboot_timeout = 30

    async def up() -> None:
        """The guest of the current boot shows it is up (never an earlier boot's line)."""
        boot = await driver.wait_for_guest(instance_id, BOOT_TIMEOUT)
        assert boot.signal == GuestSignal.ANNOUNCEMENT

    async def scenario() -> None:
        first = await driver.spawn(request, BOOT_TIMEOUT)
        await up()

        await driver.power_off(instance_id, grace=30)  # ACPI: the guest powers itself off
        assert "kubenova-guest powering off" in await driver.console_output(instance_id)
        assert (await driver.get_info(instance_id)).power_state is PowerState.SHUTDOWN
        assert qemu_of(instance_id) == []
        with pytest.raises(DriverError):
            await driver.wait_for_guest(instance_id, 5)  # not running: nothing to wait for

        on = await driver.power_on(instance_id, BOOT_TIMEOUT)
        assert on.pid != first.pid
        await up()
        assert boot_lines(await driver.console_output(instance_id)) == 2

        hard = await driver.reboot(instance_id, hard=True, start_timeout=BOOT_TIMEOUT)
        assert hard.pid == on.pid  # reset in place
        await up()
        assert boot_lines(await driver.console_output(instance_id)) == 3

        soft = await driver.reboot(instance_id, hard=False, start_timeout=BOOT_TIMEOUT)
        assert qemu_of(instance_id) == [soft.pid]
        await up()
        console = await driver.console_output(instance_id)
        assert boot_lines(console) == 4
        assert console.count("kubenova-guest powering off") == 2  # ACPI, not the forced stop

        await driver.power_off(instance_id)  # hard
        assert qemu_of(instance_id) == []

    asyncio.run(scenario())


def test_cancelled_spawn_leaves_nothing(driver):
    request = spawn_request("cancelled")

    async def scenario() -> None:
        task = asyncio.create_task(driver.spawn(request, BOOT_TIMEOUT))
        for _ in range(2000):  # up to 10 s for overlay, seed and qemu's start
            if qemu_of(request.instance_id):
                break
            await asyncio.sleep(0.005)
        assert qemu_of(request.instance_id), "qemu never started"
        assert not task.done()  # qemu is still setting the VM up (it daemonizes after)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert qemu_of(request.instance_id) == []
    assert not (driver.instances_dir / request.instance_id).exists()


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"image_path": Path("/nonexistent/base.qcow2")}, "base.qcow2"),
        ({"ram_mib": 1 << 30}, "memory"),  # qemu itself refuses: its stderr is in the error
    ],
    ids=["missing-image", "qemu-refuses"],
)
def test_failed_spawn_says_why_and_leaves_nothing(driver, overrides, why):
    request = spawn_request("broken", **overrides)
    with pytest.raises(DriverError, match=why):
        asyncio.run(driver.spawn(request, BOOT_TIMEOUT))
    assert qemu_of(request.instance_id) == []
    assert not (driver.instances_dir / request.instance_id).exists()


def test_a_guest_that_never_shows_it_is_up_times_out_and_keeps_running(driver, tmp_path):
    # A blank disk: SeaBIOS finds nothing to boot, so no sign ever comes; the VM runs on
    # (Nova keeps it ACTIVE), only wait_for_guest says so.
    blank = tmp_path / "blank.raw"
    blank.write_bytes(bytes(1 << 20))
    request = spawn_request("silent", image_path=blank, image_format="raw")

    async def scenario() -> None:
        info = await driver.spawn(request, BOOT_TIMEOUT)
        with pytest.raises(GuestBootTimeout, match="watched the console"):
            await driver.wait_for_guest(request.instance_id, 3)
        assert qemu_of(request.instance_id) == [info.pid]
        await driver.destroy(request.instance_id)

    asyncio.run(scenario())
    assert qemu_of(request.instance_id) == []
    assert not (driver.instances_dir / request.instance_id).exists()
