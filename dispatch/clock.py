"""Time as a dependency: the API, the fleet and the incident loop ask a `Clock`, never `time` directly.

Production uses `SystemClock`. Tests use `ManualClock`, whose time only moves when the test says so, which
makes offer timeouts, stale fixes and coalescing windows deterministic without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in epoch seconds, and a sleep that follows the same clock."""

    def now(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...

    async def sleep(self, s: float) -> None:
        """Return once `s` seconds of this clock have passed."""
        ...


class SystemClock:
    """The real clock: `time.time()` and `asyncio.sleep`."""

    def now(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        return time.time()

    async def sleep(self, s: float) -> None:
        """Sleep on the event loop."""
        await asyncio.sleep(max(0.0, s))


class ManualClock:
    """A clock that moves only on `advance`/`tick`; sleepers wake in deadline order (ties: call order)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._wall_step_s = 0.0  # what `step_wall` added: now() moves, sleepers do not
        self._seq = itertools.count()
        # (deadline, call order, future): the call order breaks ties so wake-ups are deterministic.
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> float:
        """The current manual time."""
        return self._now + self._wall_step_s

    def step_wall(self, s: float) -> None:
        """Set the wall clock `s` seconds forward or back (NTP stepping, an operator) without moving the
        sleepers: as asyncio.sleep does on the monotonic clock, each keeps the time it had left."""
        self._wall_step_s += s

    async def sleep(self, s: float) -> None:
        """Wait until the clock has been advanced by at least `s` seconds (0 or less: just yield)."""
        if s <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + s, next(self._seq), fut))
        await fut

    @property
    def sleepers(self) -> int:
        """How many coroutines are waiting on this clock (tests use it to know a timer is armed)."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    def advance(self, s: float) -> None:
        """Move time forward by `s` and wake every sleeper whose deadline has passed, earliest first.

        The woken coroutines run at the loop's next turn (``await asyncio.sleep(0)``) and all see the final
        time; use `tick` when each must see its own deadline as the current time.
        """
        if s < 0:
            raise ValueError("a clock does not go backwards")
        self._now += s
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def tick(self, s: float) -> None:
        """Advance by `s` in steps, one deadline at a time, letting woken coroutines run at each step.

        A sleeper woken at deadline d sees now() == d, and a sleep it starts then is honoured within the
        same `tick` if it falls before the target time.
        """
        if s < 0:
            raise ValueError("a clock does not go backwards")
        target = self._now + s
        await _settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)
            await _settle()
        self._now = target
        await _settle()


async def _settle(turns: int = 5) -> None:
    # A few loop turns let a woken task run to its next await (and chained callbacks complete).
    for _ in range(turns):
        await asyncio.sleep(0)
