"""The NoCloud seed: an ISO 9660 image labelled `cidata` that cloud-init (or kubenova's busybox
guest) reads at boot, the way Nova's config drive carries meta-data and user-data.

Synchronous (it writes files and runs genisoimage): call it through asyncio.to_thread.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import yaml

from kubenova.tools import find_tool
from kubenova.virt.driver import GuestMetadata

VOLUME_ID = "cidata"
EMPTY_USER_DATA = "#cloud-config\n{}\n"


class SeedError(RuntimeError):
    """genisoimage could not write the seed."""


def seed_files(metadata: GuestMetadata) -> dict[str, str]:
    """The seed's files by name: meta-data, user-data and, when given, network-config."""
    meta: dict[str, object] = {
        "instance-id": metadata.instance_id,
        "local-hostname": metadata.hostname,
    }
    if metadata.public_keys:
        meta["public-keys"] = list(metadata.public_keys)
    files = {
        # No line folding: the guest reads each public key from one line.
        "meta-data": yaml.safe_dump(meta, default_flow_style=False, sort_keys=False, width=1 << 20),
        "user-data": metadata.user_data if metadata.user_data is not None else EMPTY_USER_DATA,
    }
    if metadata.network_config is not None:
        files["network-config"] = metadata.network_config
    return files


def build_seed(metadata: GuestMetadata, path: Path, timeout: float = 60.0) -> Path:
    """Write the seed ISO to `path` (replaced atomically, so a reader never sees half of it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".seed-", dir=path.parent) as tmp:
        staging = Path(tmp)
        names = []
        for name, content in seed_files(metadata).items():
            (staging / name).write_text(content, encoding="utf-8")
            names.append(name)
        partial = staging / "seed.iso"
        argv = [
            find_tool("genisoimage"),
            "-quiet",
            "-input-charset",
            "utf-8",
            "-volid",
            VOLUME_ID,
            "-joliet",
            "-rock",
            "-output",
            str(partial),
            *names,
        ]
        try:
            result = subprocess.run(
                argv, cwd=staging, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise SeedError(f"genisoimage took longer than {timeout:g}s") from None
        if result.returncode != 0:
            raise SeedError(f"genisoimage failed (exit {result.returncode}): {result.stderr}")
        os.replace(partial, path)
    return path
