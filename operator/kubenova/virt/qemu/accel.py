"""Choosing the accelerator: KVM only when a probe proves it runs a guest, else TCG.

/dev/kvm existing is not enough: in nested VMs QEMU with KVM can hang without output (default
CPU) or abort ("failed to set MSR", -cpu host). The probe therefore boots a kernel with the CPU
model the real VMs get and expects its panic ("no root filesystem") within the timeout. Without
a readable host kernel it runs five bytes of firmware that write to isa-debug-exit instead,
which proves less (real mode only) but still catches a KVM that cannot start a vCPU.

The probe's qemu never outlives its parent: it gets PR_SET_PDEATHSIG (SIGKILL), so an operator
killed during the probe (even by SIGKILL) takes it along, and a probe that overruns its timeout
is killed. It runs as `-name kubenova-kvm-probe`.

The result is cached twice: in the process (one probe per qemu binary), and in a small JSON file
per compute host (the driver's `<state dir>/<host>/accel.json`), so a restarted operator does
not probe again. That file is only believed while what the answer depends on is unchanged: the
qemu binary (path, size, mtime), the kernel release, the boot (/proc/sys/kernel/random/boot_id)
and /dev/kvm. Delete it to force a new probe; $KUBENOVA_ACCEL skips probe and cache.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from kubenova.children import die_with_parent
from kubenova.timestamps import iso, now
from kubenova.virt.qemu.command import MACHINE, cpu_args

log = logging.getLogger("kubenova.virt.qemu")

ACCELERATORS = ("kvm", "tcg")
ENV_OVERRIDE = "KUBENOVA_ACCEL"
KVM_DEVICE = Path("/dev/kvm")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
PROBE_NAME = "kubenova-kvm-probe"
CACHE_VERSION = 1

_DEBUG_EXIT = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
#: mov al, 1; out 0xf4, al; hlt — at the reset vector: qemu exits with status (1 << 1) | 1.
_FIRMWARE_CODE = bytes([0xB0, 0x01, 0xE6, 0xF4, 0xF4])
_FIRMWARE_EXIT = 3
# One probe at a time: concurrent first spawns wait for it and share its cached result.
_probe_lock = threading.Lock()


def probe_accelerator(qemu_binary: str, timeout: float = 3.0, cache: Path | None = None) -> str:
    """Return "kvm" or "tcg": from `cache` (a host's accel.json) while it holds, else probed
    once per process and binary (and written to `cache`); $KUBENOVA_ACCEL skips both."""
    forced = os.environ.get(ENV_OVERRIDE, "").strip().lower()
    if forced:
        if forced not in ACCELERATORS:
            raise ValueError(f"{ENV_OVERRIDE}={forced!r}: expected one of {ACCELERATORS}")
        log.info("accelerator %s (from $%s)", forced, ENV_OVERRIDE)
        return forced
    with _probe_lock:
        key = cache_key(qemu_binary) if cache is not None else None
        if cache is not None and (cached := read_cache(cache, key)) is not None:
            return cached
        accel = _probe(qemu_binary, timeout)
        if cache is not None:
            write_cache(cache, key, accel)
        return accel


def cache_key(qemu_binary: str) -> dict[str, Any]:
    """What a probe's answer depends on; a cached answer holds only while all of it is equal."""
    resolved = shutil.which(qemu_binary) or qemu_binary
    binary: dict[str, Any] = {"path": os.path.realpath(resolved)}
    try:
        st = os.stat(resolved)
        binary.update(size=st.st_size, mtimeNs=st.st_mtime_ns)
    except OSError:
        binary["missing"] = True
    try:
        boot = BOOT_ID.read_text().strip()
    except OSError:
        boot = None
    try:
        kvm = os.stat(KVM_DEVICE).st_rdev
    except OSError:
        kvm = None
    return {
        "version": CACHE_VERSION,
        "qemu": binary,
        "kernel": os.uname().release,
        "bootId": boot,
        "kvmDevice": kvm,
        "kvmAccessible": os.access(KVM_DEVICE, os.R_OK | os.W_OK),
    }


def read_cache(path: Path, key: dict[str, Any] | None) -> str | None:
    """The cached accelerator, or None when there is none or it was made for another key."""
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    accel = entry.get("accelerator") if isinstance(entry, dict) else None
    if accel not in ACCELERATORS or entry.get("key") != key:
        return None
    log.info("accelerator %s (probed %s, cached in %s)", accel, entry.get("probedAt"), path)
    return accel


def write_cache(path: Path, key: dict[str, Any] | None, accel: str) -> None:
    """Best effort (a read-only state dir only costs a probe per start), atomic (rename)."""
    entry = {"accelerator": accel, "probedAt": iso(now()), "key": key}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(entry, indent=2) + "\n")
        partial.rename(path)
    except OSError as err:
        log.warning("accelerator cache %s not written: %s", path, err)


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
        *("-name", PROBE_NAME),
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
            result = run_tied(argv, timeout)
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


def run_tied(argv: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    """subprocess.run for a child that must not outlive this process: killed on timeout or
    any exception (subprocess.run does that) and, through PR_SET_PDEATHSIG, when this process
    (the thread waiting for it) dies, SIGKILL included."""
    return subprocess.run(
        argv,
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
        preexec_fn=die_with_parent(),
        start_new_session=True,  # no terminal signals; its own group, so only it is killed
    )
