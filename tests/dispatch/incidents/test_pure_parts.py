"""Intervals, escalation targets, dispatch policy, arrival detection and timers (no database)."""

from __future__ import annotations

import asyncio

import pytest

from dispatch.clock import ManualClock
from dispatch.incidents.arrival import ArrivalWatch, Watched
from dispatch.incidents.escalation import breach_event, parse_sla
from dispatch.incidents.intervals import Milestones, response_intervals
from dispatch.incidents.policy import open_slots, policy_from, slot_for
from dispatch.incidents.states import Event, Progress
from dispatch.incidents.timers import Timers
from dispatch.settings import DispatchSettings
from geo.distance import destination
from schemas.config import ConfigError


def test_intervals_follow_nfpa_names() -> None:
    got = response_intervals(
        Milestones(reported_at=100.0, dispatched_at=130.0, en_route_at=160.0, on_scene_at=400.0)
    )
    assert got.as_dict() == {"processing_s": 30.0, "turnout_s": 30.0, "travel_s": 240.0, "total_s": 300.0}


def test_missing_milestones_are_unknown_not_guessed() -> None:
    got = response_intervals(Milestones(reported_at=100.0, dispatched_at=130.0, on_scene_at=400.0))
    assert got.turnout_s is None and got.travel_s is None and got.total_s == 300.0


def test_sla_targets_per_priority_and_tier() -> None:
    sla = parse_sla(DispatchSettings().sla_s)
    assert sla.target_s("P1", 0) == 240.0 and sla.target_s("P1", 3) == 900.0
    assert sla.due_at("P2", 1, 1000.0) == 1900.0
    assert breach_event(Progress(tier=2)) == Event.ESCALATE
    assert breach_event(Progress(tier=3)) == Event.SLA_BREACH


@pytest.mark.parametrize(
    "bad",
    [
        ("P1=1/2",),
        ("P9=1/2/3/4", "P1=1", "P2=1", "P3=1", "P4=1"),
        ("P1=x", "P2=1", "P3=1", "P4=1"),
        ("P1=0", "P2=1", "P3=1", "P4=1"),
    ],
)
def test_bad_sla_settings_name_the_variable(bad: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError, match="OUTPOST_SLA_S"):
        parse_sla(bad)


def test_p1_needs_a_police_officer_and_an_auxiliary() -> None:
    policy = policy_from(DispatchSettings())
    assert policy.needed("P1") == ("police", "auxiliary") and policy.needed("P3") == ("any",)
    assert policy.automatic("P1") and not policy.automatic("P3")
    assert open_slots(("police", "auxiliary"), ["police"]) == ["auxiliary"]
    assert open_slots(("any", "any"), ["any"]) == ["any"]
    assert slot_for("vehicle", ("police", "auxiliary"), []) == "extra"
    assert slot_for("police", ("any",), []) == "any"


def test_bad_unit_needs_are_refused() -> None:
    with pytest.raises(ConfigError, match="OUTPOST_UNITS_NEEDED"):
        policy_from(DispatchSettings(units_needed=("P1=police+dragon",)))


def test_arrival_and_departure_are_detected_once() -> None:
    watch = ArrivalWatch(arrival_radius_m=75.0, departure_distance_m=100.0)
    inc_lon, inc_lat = -122.4194, 37.7749
    start = destination(inc_lon, inc_lat, 90.0, 1000.0)
    watch.watch("u1", Watched("i1", inc_lon, inc_lat, "assigned", *start))
    assert watch.check("u1", *destination(*start, 270.0, 50.0)) is None  # jitter, not a departure
    left = watch.check("u1", *destination(*start, 270.0, 150.0))
    assert left is not None and left.event == Event.EN_ROUTE
    assert watch.check("u1", *destination(*start, 270.0, 200.0)) is None  # reported, not yet confirmed
    watch.advance("u1", "en_route")
    there = watch.check("u1", *destination(inc_lon, inc_lat, 0.0, 60.0))
    assert (
        there is not None and there.event == Event.ARRIVE and there.distance_m == pytest.approx(60.0, abs=0.1)
    )
    assert watch.check("u2", inc_lon, inc_lat) is None


async def test_timers_fire_on_the_manual_clock_in_deadline_order() -> None:
    clock = ManualClock(1000.0)
    timers = Timers(clock)
    fired: list[tuple[str, float]] = []

    def record(name: str):  # type: ignore[no-untyped-def]
        async def fire() -> None:
            fired.append((name, clock.now()))

        return fire

    timers.arm("b", 1020.0, record("b"))
    timers.arm("a", 1010.0, record("a"))
    timers.arm("c", 1030.0, record("c"))
    timers.cancel("c")
    timers.arm("b", 1025.0, record("b2"))  # re-arming replaces
    await asyncio.sleep(0)
    await clock.tick(30.0)
    await timers.settle()
    assert fired == [("a", 1010.0), ("b2", 1025.0)]
    assert timers.armed == []
    timers.arm("late", 900.0, record("late"))  # already due: fires at once
    await timers.settle()
    assert fired[-1][0] == "late"
    await timers.close()
