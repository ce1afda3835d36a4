"""Two waits every loop of ingest needs: the first of several events, and a pause that `stop` cuts short."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any


async def sleep_unless(stop: asyncio.Event, delay_s: float) -> None:
    """Sleep `delay_s`, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay_s)


async def first_of(*aws: Awaitable[Any]) -> None:
    """Wait until the first of `aws` completes; cancel the rest."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
