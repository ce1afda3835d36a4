"""The patrol watch's pure rules, with no database: the zone tracker on change records (its disc, its
events, reloads, dwells), out of grid (tolerance, dwell, hysteresis, incidents), coverage gaps."""

from __future__ import annotations

import geo
from dispatch.live.coverage import Coverage
from dispatch.live.out_of_grid import OutOfGrid
from dispatch.live.zones import ZoneTracker
from geo.fences import Fence, circle
from geo.grids import GridIndex
from geo.zones import ZoneSet
from tests.geo.test_transitions import INDEX, LEFT, POLICE, RIGHT, X0, Y0


def _at(lon: float, lat: float, ts_s: float, unit_id: str = "u1") -> geo.UnitPosition:
    return geo.UnitPosition(unit_id, lon, lat, ts_s)


def test_the_tracker_follows_change_records_and_skips_moves_inside_its_disc() -> None:
    tracker = ZoneTracker(INDEX, ZoneSet([]))
    first = _at(X0 + 0.005, Y0 + 0.005, 100.0)
    events = tracker.observe(geo.Change(None, first))
    assert [(e.zone_id, e.kind, e.at_s) for e in events] == [
        ("c-left", "enter", 100.0),
        ("p", "enter", 100.0),
    ]
    seen = tracker.seen("u1")
    assert seen is not None and seen.location.community is LEFT and seen.location.police is POLICE
    # A step of 1 m stays inside the disc: nothing is looked up, nothing happens.
    step = _at(X0 + 0.00501, Y0 + 0.005, 101.0)
    assert tracker.observe(geo.Change(first, step)) == []
    assert tracker.seen("u1") is seen
    # Across the border: exit and enter, halfway in time and place.
    across = _at(X0 + 0.01501, Y0 + 0.005, 111.0)
    events = tracker.observe(geo.Change(step, across))
    assert [(e.zone_id, e.kind) for e in events] == [("c-left", "exit"), ("c-right", "enter")]
    assert abs(events[0].at_s - 105.99) < 1e-6 and abs(events[0].lon - (X0 + 0.01)) < 1e-9
    assert tracker.location("u1", across.lon, across.lat).community is RIGHT
    assert tracker.seen("u1").since[("grid", "c-right")] == events[1].at_s  # type: ignore[union-attr]
    # Leaving the index exits everything it was in.
    gone = tracker.observe(geo.Change(across, None))
    assert sorted((e.zone_id, e.kind) for e in gone) == [("c-right", "exit"), ("p", "exit")]
    assert tracker.seen("u1") is None


def test_reloading_grids_enters_and_exits_where_units_stand_and_fences_dwell_once() -> None:
    tracker = ZoneTracker(GridIndex([]), ZoneSet([]))
    here = _at(X0 + 0.005, Y0 + 0.005, 100.0)
    assert tracker.observe(geo.Change(None, here)) == []
    school = Fence("school", "School", circle(X0 + 0.005, Y0 + 0.005, 50.0), dwell_s=60.0)
    events = tracker.reload(INDEX, ZoneSet([school]), 200.0)
    assert sorted((e.area, e.zone_id, e.kind) for e in events) == [
        ("fence", "school", "enter"),
        ("grid", "c-left", "enter"),
        ("grid", "p", "enter"),
    ]
    assert tracker.dwells(259.0) == []
    assert [(e.zone_id, e.kind) for e in tracker.dwells(260.0)] == [("school", "dwell")]
    assert tracker.dwells(1000.0) == []  # once a stay
    events = tracker.reload(GridIndex([LEFT]), ZoneSet([]), 300.0)
    assert sorted((e.zone_id, e.kind) for e in events) == [("p", "exit"), ("school", "exit")]


def test_out_of_grid_needs_the_tolerance_and_the_dwell_and_clears_only_back_inside() -> None:
    rules = OutOfGrid(tolerance_m=50.0, dwell_s=300.0)

    def judge(now_s: float, distance_m: float | None, status: str = "available") -> list[str]:
        found = rules.judge("u1", now_s, grid_id="g", status=status, distance_m=distance_m)
        return [a.kind for a in found]

    assert judge(0.0, 0.0) == []
    assert judge(10.0, 40.0) == [] and rules.judgement("u1").state == "near_border"  # type: ignore[union-attr]
    assert judge(20.0, 60.0) == []  # outside beyond the tolerance: the dwell starts
    assert judge(200.0, 45.0) == []  # back within the tolerance but not inside: still counting
    assert judge(319.0, 70.0) == []
    assert judge(320.0, 70.0) == ["raised"]
    assert rules.judgement("u1").state == "out_of_grid"  # type: ignore[union-attr]
    assert judge(330.0, 10.0) == []  # hysteresis: at the border, not yet back
    assert judge(340.0, 0.0) == ["cleared"]
    # Flapping across the tolerance line for ever never raises when it keeps coming back inside.
    for k in range(100):
        assert judge(400.0 + 10 * k, 80.0 if k % 2 else 0.0) == []


def test_a_unit_on_an_incident_is_excused_with_the_reason_and_off_duty_is_not_watched() -> None:
    rules = OutOfGrid(tolerance_m=50.0, dwell_s=0.0)
    assert [a.kind for a in rules.judge("u1", 0.0, grid_id="g", status="available", distance_m=500.0)] == [
        "raised"
    ]
    alerts = rules.judge("u1", 1.0, grid_id="g", status="en_route", distance_m=900.0)
    assert [(a.kind, a.reason) for a in alerts] == [("cleared", "on an incident (status en_route)")]
    j = rules.judgement("u1")
    assert j is not None and j.state == "excused" and "incident" in j.reason
    rules.judge("u1", 2.0, grid_id="g", status="available", distance_m=900.0)
    alerts = rules.judge("u1", 3.0, grid_id="g", status="off_duty", distance_m=900.0)
    assert [a.kind for a in alerts] == ["cleared"] and rules.judgement("u1") is None
    assert rules.forget_others(set(), 4.0) == []


def test_a_coverage_gap_needs_its_time_and_clears_when_covered_or_unassigned() -> None:
    cover = Coverage(gap_s=600.0)
    assert cover.judge("g", "u1", 0.0, uncovered=None) == []
    assert cover.judge("g", "u1", 10.0, uncovered="off duty") == []
    assert cover.judge("g", "u1", 609.0, uncovered="absent (no recent position)") == []
    raised = cover.judge("g", "u1", 610.0, uncovered="absent (80 m outside)")
    assert [(g.kind, g.reason) for g in raised] == [("raised", "u1 is absent (80 m outside)")]
    assert [g.kind for g in cover.judge("g", "u1", 620.0, uncovered=None)] == ["cleared"]
    cover.judge("g", "u1", 630.0, uncovered="off duty")
    cover.judge("g", "u1", 1300.0, uncovered="off duty")
    assert [(g.kind, g.reason) for g in cover.forget_others(set(), 1400.0)] == [
        ("cleared", "no longer assigned")
    ]
    assert cover.cover("g") is None


def test_units_of_two_trackers_do_not_mix() -> None:
    tracker = ZoneTracker(INDEX, ZoneSet([]))
    tracker.observe(geo.Change(None, _at(X0 + 0.005, Y0 + 0.005, 1.0, "a")))
    tracker.observe(geo.Change(None, _at(X0 + 0.015, Y0 + 0.005, 1.0, "b")))
    assert {u: s.location.community.id for u, s in tracker.units() if s.location.community} == {
        "a": "c-left",
        "b": "c-right",
    }
    assert RIGHT.id == "c-right"
