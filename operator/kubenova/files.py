"""Files a killed operator must never leave half-written."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """`path` holds the old text or the new, never a part: a temporary file beside it is
    renamed over it (a SIGKILL between truncating and writing in place left an empty
    nics.json that made every later spawn and removal of the instance fail)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
