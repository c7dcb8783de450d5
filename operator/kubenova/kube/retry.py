"""Pausing after a lost compare-and-swap (a 409 on a resourceVersion precondition)."""

from __future__ import annotations

import asyncio
import random


async def conflict_backoff(attempt: int) -> None:
    """Jittered, growing pause, so the losers of one race do not collide again at once."""
    await asyncio.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
