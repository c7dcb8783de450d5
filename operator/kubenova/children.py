"""Child processes that die with their parent, SIGKILL of the parent included (Linux)."""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to SIGKILL the child when its parent dies (no teardown
    of the parent needs to run); the child exits at once if the parent died before the request
    took effect. None where prctl is missing.

    The death signal follows the *thread* that started the child: start it from a thread that
    lives as long as the child should (e.g. the one waiting for it)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:  # in the child between fork and exec: one system call, no locks
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec
