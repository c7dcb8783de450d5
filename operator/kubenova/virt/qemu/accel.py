"""Choosing the accelerator: KVM only when a probe proves it runs a guest, else TCG.

/dev/kvm existing is not enough: in nested VMs QEMU with KVM can hang without output (default
CPU) or abort ("failed to set MSR", -cpu host). The probe therefore boots a kernel with the CPU
model the real VMs get and expects its panic ("no root filesystem") within the timeout. Without
a readable host kernel it runs five bytes of firmware that write to isa-debug-exit instead,
which proves less (real mode only) but still catches a KVM that cannot start a vCPU.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import tempfile
import threading
from pathlib import Path

from kubenova.virt.qemu.command import MACHINE, cpu_args

log = logging.getLogger("kubenova.virt.qemu")

ACCELERATORS = ("kvm", "tcg")
ENV_OVERRIDE = "KUBENOVA_ACCEL"
KVM_DEVICE = Path("/dev/kvm")

_DEBUG_EXIT = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
#: mov al, 1; out 0xf4, al; hlt — at the reset vector: qemu exits with status (1 << 1) | 1.
_FIRMWARE_CODE = bytes([0xB0, 0x01, 0xE6, 0xF4, 0xF4])
_FIRMWARE_EXIT = 3
# One probe at a time: concurrent first spawns wait for it and share its cached result.
_probe_lock = threading.Lock()


def probe_accelerator(qemu_binary: str, timeout: float = 3.0) -> str:
    """Return "kvm" or "tcg", probed once per process and binary; $KUBENOVA_ACCEL skips it."""
    forced = os.environ.get(ENV_OVERRIDE, "").strip().lower()
    if forced:
        if forced not in ACCELERATORS:
            raise ValueError(f"{ENV_OVERRIDE}={forced!r}: expected one of {ACCELERATORS}")
        log.info("accelerator %s (from $%s)", forced, ENV_OVERRIDE)
        return forced
    with _probe_lock:
        return _probe(qemu_binary, timeout)


@functools.cache
def _probe(qemu_binary: str, timeout: float) -> str:
    if not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
        log.info("accelerator tcg: %s is missing or not accessible", KVM_DEVICE)
        return "tcg"
    reason = _kvm_failure(qemu_binary, timeout)
    if reason is None:
        log.info("accelerator kvm: the probe guest ran")
        return "kvm"
    log.warning("accelerator tcg: KVM probe failed (%s)", reason)
    return "tcg"


def host_kernel() -> Path | None:
    """A readable kernel in /boot to boot as the probe guest (any will do)."""
    kernels = sorted(Path("/boot").glob("vmlinuz-*"), reverse=True)
    return next((k for k in kernels if k.is_file() and os.access(k, os.R_OK)), None)


def _kvm_failure(qemu_binary: str, timeout: float) -> str | None:
    """None when a guest ran under KVM within `timeout`, else why not."""
    base = [
        qemu_binary,
        *("-machine", MACHINE, "-accel", "kvm", *cpu_args("kvm"), "-m", "128M"),
        *("-no-user-config", "-nodefaults", "-display", "none", "-no-reboot"),
    ]
    with tempfile.TemporaryDirectory(prefix="kubenova-kvm-probe-") as tmp:
        kernel = host_kernel()
        if kernel is not None:
            argv = [*base, "-serial", "stdio", "-kernel", str(kernel)]
            argv += ["-append", "console=ttyS0 loglevel=1 panic=-1 root=/dev/nonexistent"]
        else:
            firmware = Path(tmp) / "probe.bin"
            image = bytearray(b"\xf4" * 0x10000)  # hlt everywhere; QEMU wants 64 KiB multiples
            image[0xFFF0 : 0xFFF0 + len(_FIRMWARE_CODE)] = _FIRMWARE_CODE
            firmware.write_bytes(image)
            argv = [*base, *_DEBUG_EXIT, "-bios", str(firmware)]
        try:
            result = subprocess.run(
                argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
            )
        except subprocess.TimeoutExpired:
            return f"no result within {timeout:g}s"
        except OSError as err:
            return str(err)
    output = (result.stdout + result.stderr).decode(errors="replace")
    if kernel is not None:
        # -no-reboot turns the panic's reboot into a clean exit.
        ok = result.returncode == 0 and "Kernel panic" in output
    else:
        ok = result.returncode == _FIRMWARE_EXIT
    if ok:
        return None
    last = output.strip().splitlines()[-1:] or ["no output"]
    return f"exit {result.returncode}: {last[0][:200]}"
