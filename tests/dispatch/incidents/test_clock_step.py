"""The wall clock stepped back or forward (NTP, an operator) while offers and SLA deadlines wait: timers
sleep on the monotonic clock, so each fires when its time has run, never an hour late or early."""

from __future__ import annotations

import pytest

from tests.dispatch.incidents.world import World, point, world_on


@pytest.fixture
async def world(store_url: str):  # type: ignore[no-untyped-def]
    async with world_on(store_url) as w:
        yield w


async def offered(world: World) -> str:
    world.add_unit("near", at=point(0, 200))
    world.add_unit("mid", at=point(90, 400))
    incident_id = await world.report("P2")  # auto-dispatched to "near"; its offer runs 60 s
    got = await world.service.get(incident_id)
    assert [(o.unit_id, o.state) for o in got.offers] == [("near", "pending")]
    return incident_id


async def run_for(world: World, seconds: float) -> None:
    """Let `seconds` of monotonic time pass (what the timers sleep on), whatever the wall clock says."""
    await world.service.settle()
    await world.clock.tick(seconds)
    await world.service.settle()


@pytest.mark.parametrize("step_s", [-3600.0, 3600.0], ids=["stepped_back", "stepped_forward"])
async def test_an_offer_times_out_after_its_60_s_whatever_the_wall_clock_did(
    world: World, step_s: float
) -> None:
    incident_id = await offered(world)
    world.clock.step_wall(step_s)
    # Fresh fixes after the step, so the next unit is dispatchable by the new wall clock.
    world.move("near", point(0, 200))
    world.move("mid", point(90, 400))
    await run_for(world, 30)
    got = await world.service.get(incident_id)
    assert [(o.unit_id, o.state) for o in got.offers] == [("near", "pending")], "not before its time"
    await run_for(world, 31)
    got = await world.service.get(incident_id)
    assert [(o.unit_id, o.state) for o in got.offers] == [("near", "timed_out"), ("mid", "pending")]


async def test_an_sla_deadline_is_not_put_off_by_a_clock_stepped_back(world: World) -> None:
    incident_id = await world.report("P3")  # waits for a dispatcher; its SLA runs 1,800 s
    world.clock.step_wall(-3600)
    await run_for(world, 1801)
    got = await world.service.get(incident_id)
    assert got.history[-1].event == "escalate", [h.event for h in got.history]
