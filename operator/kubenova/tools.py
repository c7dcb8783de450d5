"""Where the binaries `make setup` built live: $KUBENOVA_BIN_DIR, the repo's .bin/, then PATH."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

_REPO_BIN = Path(__file__).resolve().parents[2] / ".bin"


class ToolNotFound(RuntimeError):
    pass


def find_tool(name: str) -> str:
    for directory in (os.environ.get("KUBENOVA_BIN_DIR"), _REPO_BIN):
        if directory and (candidate := Path(directory) / name).is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ToolNotFound(f"{name} not found: run `make setup` (or set KUBENOVA_BIN_DIR)")
    return found
