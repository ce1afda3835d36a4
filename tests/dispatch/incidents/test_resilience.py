"""The loop survives a database blip under a timer, and a crash between claiming a unit and offering it.

Faults are injected by monkeypatching one storage call to raise what a dropped connection raises; the
database itself is real (PostgreSQL and SQLite).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from dispatch.clock import ManualClock
from dispatch.incidents import offers
from dispatch.incidents.reconcile import RECONCILE_ACTOR
from dispatch.incidents.timers import Timers
from store import incidents as db
from store.registry import units
from tests.dispatch.incidents.world import World, point, world_on


def _dropped() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionError("server closed the connection unexpectedly"))


def failing_first(n: int, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, except that its first `n` calls raise what a dropped database connection raises."""
    calls = {"n": 0}

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= n:
            raise _dropped()
        return fn(*args, **kwargs)

    return wrapped


# ---- timers ------------------------------------------------------------------------------------------


async def test_a_failing_timer_is_retried_with_backoff_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(1000.0)
    timers = Timers(clock, retry_first_s=1.0, retry_max_s=3.0, retry_attempts=5)
    tries: list[float] = []

    async def fire() -> None:
        tries.append(clock.now())
        if len(tries) <= 3:
            raise ConnectionError("database away")

    caplog.set_level(logging.WARNING, "dispatch.incidents.timers")
    timers.arm("offer:x", 1010.0, fire)
    while (due := timers.next_due_s) is not None:
        await clock.tick(due - clock.now())
        await timers.settle()
    assert tries == [1010.0, 1011.0, 1013.0, 1016.0]  # waits 1, 2, then capped at 3
    retries = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 3 and "attempt 1 of 6" in retries[0].getMessage()
    await timers.close()


async def test_a_timer_gives_up_after_its_attempts_and_close_stops_retries() -> None:
    clock = ManualClock(0.0)
    timers = Timers(clock, retry_first_s=1.0, retry_max_s=1.0, retry_attempts=2)
    tries: list[float] = []

    async def fire() -> None:
        tries.append(clock.now())
        raise ConnectionError("database away")

    timers.arm("sla:x", 0.0, fire)
    await timers.settle()
    while (due := timers.next_due_s) is not None:
        await clock.tick(due - clock.now())
        await timers.settle()
    assert tries == [0.0, 1.0, 2.0] and timers.armed == []

    timers.arm("sla:y", 5.0, fire)
    await timers.close()
    await clock.tick(10.0)
    assert timers.armed == [] and tries[-1] == 2.0


async def test_a_replaced_deadline_is_not_overwritten_by_a_retry() -> None:
    clock = ManualClock(0.0)
    timers = Timers(clock)
    fired: list[str] = []

    async def newer() -> None:
        fired.append("newer")

    async def failing() -> None:
        timers.arm("k", 50.0, newer)  # the handler re-arms its key for a later deadline, then fails
        raise ConnectionError("database away")

    timers.arm("k", 0.0, failing)
    await timers.settle()
    assert timers.next_due_s == 50.0
    await clock.tick(50.0)
    await timers.settle()
    assert fired == ["newer"]
    await timers.close()


# ---- the offer timeout under a database blip --------------------------------------------------------


@pytest.fixture
async def world(store_url: str):  # type: ignore[no-untyped-def]
    async with world_on(store_url) as w:
        yield w


async def _offered_to_near(world: World) -> str:
    world.add_unit("near", at=point(0, 200))
    world.add_unit("mid", at=point(90, 400))
    incident_id = await world.report("P2")  # auto-dispatched to "near"
    assert world.status("near") == "offered"
    return incident_id


async def test_an_offer_timeout_during_a_database_blip_still_moves_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident_id = await _offered_to_near(world)
    monkeypatch.setattr(db, "get_offer", failing_first(2, db.get_offer))  # the timer's first read fails
    await world.advance(60 + 1 + 2)  # the timeout, then retries after 1 s and 2 s
    got = await world.service.get(incident_id)
    assert [(o.unit_id, o.state) for o in got.offers] == [("near", "timed_out"), ("mid", "pending")]
    assert world.status("near") == "available" and world.status("mid") == "offered"


async def test_a_reoffer_lost_after_the_timeout_committed_is_made_by_the_retry(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident_id = await _offered_to_near(world)
    real_fill = offers.fill_locked
    calls = {"n": 0}

    async def fill_fails_once(*args: Any, **kwargs: Any) -> list[str]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise _dropped()
        return await real_fill(*args, **kwargs)

    monkeypatch.setattr(offers, "fill_locked", fill_fails_once)
    await world.advance(60)
    got = await world.service.get(incident_id)
    assert [(o.unit_id, o.state) for o in got.offers] == [("near", "timed_out")]  # timed out, not re-offered
    await world.advance(1)  # the retry
    got = await world.service.get(incident_id)
    assert [(o.unit_id, o.state) for o in got.offers] == [("near", "timed_out"), ("mid", "pending")]
    assert got.snapshots[-1].decision == "reoffer_after_timed_out"


# ---- reconciliation at start ------------------------------------------------------------------------


async def test_start_frees_units_stranded_by_a_crash(store_url: str) -> None:
    async with world_on(store_url) as first:
        first.add_unit("held", at=point(0, 100))
        for unit_id in ("claimed", "engaged", "other"):
            first.add_unit(unit_id, at=point(0, 5000))
        await first.report("P2")  # offered to "held", the nearest: a real pending offer
        assert first.status("held") == "offered"
        # A crash between a claim and its offer; a unit en route by hand (its own stop, no incident of ours)
        # and one busy with something that is not the incident loop's business both keep their status:
        with first.engine.begin() as conn:
            for unit_id, status in (("claimed", "offered"), ("engaged", "en_route"), ("other", "busy")):
                conn.execute(update(units).where(units.c.id == unit_id).values(status=status))
    async with world_on(store_url, start=False) as second:
        changes: list[Any] = []
        second.fleet.subscribe(changes.append)
        await second.service.start()
        assert {u: second.status(u) for u in ("held", "claimed", "engaged", "other")} == {
            "held": "offered",
            "claimed": "available",
            "engaged": "en_route",
            "other": "busy",
        }
        freed = [(c.unit_id, c.old, c.new, c.actor) for c in changes if type(c).__name__ == "StatusChanged"]
        assert sorted(freed) == [
            ("claimed", "offered", "available", RECONCILE_ACTOR),
        ]
        second.move("claimed", point(0, 5000))  # the live picture follows the database:
        live = second.fleet.position("claimed")
        assert live is not None and live.status == "available"
