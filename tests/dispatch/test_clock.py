"""ManualClock: time moves only when the test says, sleepers wake in deadline order."""

from __future__ import annotations

import asyncio

from dispatch.clock import ManualClock, SystemClock


async def test_advance_wakes_due_sleepers_only() -> None:
    clock = ManualClock(100.0)
    woke: list[str] = []

    async def sleeper(name: str, s: float) -> None:
        await clock.sleep(s)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("b", 20), ("a", 10), ("c", 30))]
    await asyncio.sleep(0)
    assert clock.sleepers == 3
    clock.advance(15)
    await asyncio.sleep(0)
    assert woke == ["a"] and clock.now() == 115.0
    clock.advance(15)
    await asyncio.gather(*tasks)
    assert woke == ["a", "b", "c"]


async def test_tick_lets_each_sleeper_see_its_own_deadline_and_rearm() -> None:
    clock = ManualClock(0.0)
    seen: list[float] = []

    async def every_10s() -> None:
        while True:
            await clock.sleep(10)
            seen.append(clock.now())

    task = asyncio.create_task(every_10s())
    await clock.tick(35)
    assert seen == [10.0, 20.0, 30.0] and clock.now() == 35.0
    task.cancel()


async def test_system_clock_is_wall_time() -> None:
    clock = SystemClock()
    before = clock.now()
    await clock.sleep(0)
    assert clock.now() >= before > 1.6e9
