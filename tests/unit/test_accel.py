"""The KVM probe: its qemu dies with its parent, and its answer is cached per host while what
it depends on (qemu binary, kernel, boot, /dev/kvm) is unchanged."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from kubenova.tools import ToolNotFound, find_tool
from kubenova.virt.qemu import accel
from tests.kit import wait_for
from tests.proc import command_of, processes_with, wait_gone


def qemu_or_skip() -> str:
    try:
        return find_tool("qemu-system-x86_64")
    except ToolNotFound:
        pytest.skip("qemu-system-x86_64 is not installed (make setup)")


def qemus_with(marker: str) -> list[int]:
    """qemu processes (by their executable, not a command line that merely names one)."""
    return [p for p in processes_with(marker) if "qemu-system" in Path(command_of(p)).name]


def test_a_probe_qemu_dies_with_its_sigkilled_parent(tmp_path):
    """A process SIGKILLed while it waits for a probe qemu (here one that never ends: TCG on
    firmware that halts) takes the qemu with it instead of leaving it to init."""
    qemu = qemu_or_skip()
    marker = f"probe-test-{uuid.uuid4().hex[:8]}"
    firmware = tmp_path / "halt.bin"
    firmware.write_bytes(b"\xf4" * 0x10000)
    argv = [qemu, "-name", marker, "-accel", "tcg", "-display", "none", "-nodefaults"]
    argv += ["-bios", str(firmware)]
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                from kubenova.virt.qemu.accel import run_tied
                run_tied({argv!r}, 600)
                """
            ),
        ]
    )
    try:
        (child,) = wait_for(lambda: qemus_with(marker), 30, "the probe qemu to start")
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert wait_gone([child]) == [], "the probe qemu outlived its parent"
    finally:
        for pid in qemus_with(marker):
            os.kill(pid, signal.SIGKILL)
        parent.kill()


def test_a_probe_that_overruns_is_killed(tmp_path):
    qemu = qemu_or_skip()
    marker = f"probe-test-{uuid.uuid4().hex[:8]}"
    firmware = tmp_path / "halt.bin"
    firmware.write_bytes(b"\xf4" * 0x10000)
    argv = [qemu, "-name", marker, "-accel", "tcg", "-display", "none", "-nodefaults"]
    with pytest.raises(subprocess.TimeoutExpired):
        accel.run_tied([*argv, "-bios", str(firmware)], 1.0)
    assert wait_gone(qemus_with(marker), 5) == []


def test_the_cached_answer_is_used_while_its_key_holds(tmp_path, monkeypatch):
    monkeypatch.delenv(accel.ENV_OVERRIDE, raising=False)
    cache = tmp_path / "compute-0" / "accel.json"
    probes = []
    monkeypatch.setattr(accel, "_probe", lambda *_: probes.append(1) or "tcg")

    assert accel.probe_accelerator("qemu-system-x86_64", cache=cache) == "tcg"
    entry = json.loads(cache.read_text())
    assert entry["accelerator"] == "tcg"
    assert entry["key"] == accel.cache_key("qemu-system-x86_64")
    assert entry["key"]["kernel"] == os.uname().release
    assert len(probes) == 1

    monkeypatch.setattr(accel, "_probe", lambda *_: pytest.fail("probed again"))
    assert accel.probe_accelerator("qemu-system-x86_64", cache=cache) == "tcg"


@pytest.mark.parametrize("stale", ["bootId", "kernel", "qemu"])
def test_a_cached_answer_for_another_boot_kernel_or_qemu_is_not_believed(tmp_path, stale):
    cache = tmp_path / "accel.json"
    key = accel.cache_key("qemu-system-x86_64")
    accel.write_cache(cache, key, "kvm")
    assert accel.read_cache(cache, key) == "kvm"
    entry = json.loads(cache.read_text())
    entry["key"][stale] = "something else"
    cache.write_text(json.dumps(entry))
    assert accel.read_cache(cache, key) is None


def test_a_broken_cache_file_means_probe_again(tmp_path):
    cache = tmp_path / "accel.json"
    cache.write_text("{not json")
    assert accel.read_cache(cache, accel.cache_key("qemu")) is None
    cache.write_text(json.dumps({"accelerator": "hvf", "key": accel.cache_key("qemu")}))
    assert accel.read_cache(cache, accel.cache_key("qemu")) is None
