"""Enter and exit events as a pure function of (old, new) positions, on hand-made geometry: a small square
crossed between two fixes, neighbours, appearing and leaving, geofence circles, and the clearance disc."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, box

from geo.distance import haversine_m
from geo.fences import MAX_RADIUS_M, Fence, circle
from geo.grids import Grid, GridIndex
from geo.transitions import transitions
from geo.zones import Crossing, ZoneSet

# Two community squares side by side (0.01° wide), one police grid around both, and a tiny square
# (0.0002°, ~20 m) in the middle of the police grid's northern half, all near San Francisco.
X0, Y0 = -122.42, 37.76
LEFT = Grid("c-left", "community", "Left", "p", MultiPolygon([box(X0, Y0, X0 + 0.01, Y0 + 0.01)]))
RIGHT = Grid("c-right", "community", "Right", "p", MultiPolygon([box(X0 + 0.01, Y0, X0 + 0.02, Y0 + 0.01)]))
POLICE = Grid("p", "police", "P", None, MultiPolygon([box(X0, Y0, X0 + 0.02, Y0 + 0.02)]))
TINY = Grid(
    "c-tiny", "community", "Tiny", "p", MultiPolygon([box(X0 + 0.0099, Y0 + 0.015, X0 + 0.0101, Y0 + 0.0152)])
)
INDEX = GridIndex([LEFT, RIGHT, POLICE, TINY])


def test_a_unit_crossing_a_small_grid_between_two_fixes_enters_and_leaves_it() -> None:
    # Both fixes are outside the tiny square; the segment between them goes straight through it.
    old, new = (X0 + 0.005, Y0 + 0.0151), (X0 + 0.015, Y0 + 0.0151)
    assert INDEX.locate(*old).community is None and INDEX.locate(*new).community is None
    found = transitions(INDEX, old, new)
    assert [(c.grid_id, c.kind) for c in found] == [("c-tiny", "enter"), ("c-tiny", "exit")]
    enter, leave = found
    assert enter.fraction == pytest.approx(0.49) and leave.fraction == pytest.approx(0.51)


def test_moving_between_neighbours_exits_one_before_entering_the_other() -> None:
    found = transitions(INDEX, (X0 + 0.005, Y0 + 0.005), (X0 + 0.015, Y0 + 0.005))
    assert [(c.grid_id, c.kind) for c in found] == [("c-left", "exit"), ("c-right", "enter")]
    assert [c.fraction for c in found] == pytest.approx([0.5, 0.5])


def test_a_move_inside_one_grid_and_a_move_that_stays_put_are_no_events() -> None:
    assert transitions(INDEX, (X0 + 0.001, Y0 + 0.001), (X0 + 0.009, Y0 + 0.009)) == []
    assert transitions(INDEX, (X0 + 0.001, Y0 + 0.001), (X0 + 0.001, Y0 + 0.001)) == []
    assert transitions(INDEX, None, None) == []


def test_appearing_enters_what_covers_the_point_and_leaving_exits_it() -> None:
    point = (X0 + 0.005, Y0 + 0.005)
    assert transitions(INDEX, None, point) == [Crossing(0.0, "c-left", "enter"), Crossing(0.0, "p", "enter")]
    assert transitions(INDEX, point, None) == [Crossing(1.0, "c-left", "exit"), Crossing(1.0, "p", "exit")]
    assert transitions(INDEX, None, (X0 - 1.0, Y0)) == []


def test_leaving_the_police_grid_exits_both_levels_in_order() -> None:
    found = transitions(INDEX, (X0 + 0.015, Y0 + 0.005), (X0 + 0.025, Y0 + 0.005))
    assert [(c.grid_id, c.kind) for c in found] == [("c-right", "exit"), ("p", "exit")]
    assert [c.fraction for c in found] == pytest.approx([0.5, 0.5])


OFFSETS = st.tuples(st.floats(-0.005, 0.025), st.floats(-0.005, 0.025))  # around and across every grid


@given(OFFSETS, OFFSETS)
def test_events_alternate_per_grid_and_agree_with_locate_at_both_ends(
    a: tuple[float, float], b: tuple[float, float]
) -> None:
    old, new = (X0 + a[0], Y0 + a[1]), (X0 + b[0], Y0 + b[1])
    found = transitions(INDEX, old, new)
    assert [c.fraction for c in found] == sorted(c.fraction for c in found)
    for grid in INDEX.grids():
        kinds = [c.kind for c in found if c.grid_id == grid.id]
        inside = grid.id in INDEX.covering_ids(*old)
        for kind in kinds:
            assert kind == ("exit" if inside else "enter")
            inside = not inside
        assert inside == (grid.id in INDEX.covering_ids(*new))


def test_a_circle_fence_is_its_radius_on_the_ground() -> None:
    disc = circle(-122.4194, 37.7793, 200.0)
    for x, y in disc.exterior.coords:
        assert haversine_m(-122.4194, 37.7793, x, y) == pytest.approx(200.0, rel=0.005)
    assert disc.area > 0.99 * math.pi * (200.0 / 111_195) ** 2 * math.cos(math.radians(37.7793))


@pytest.mark.parametrize("radius_m", [0.0, -5.0, MAX_RADIUS_M * 2, math.inf, math.nan])
def test_a_circle_needs_a_sensible_radius(radius_m: float) -> None:
    with pytest.raises(ValueError, match="radius"):
        circle(-122.4, 37.7, radius_m)


def test_geofences_cross_like_grids() -> None:
    school = Fence("school", "School", circle(X0 + 0.005, Y0 + 0.005, 100.0), dwell_s=60.0)
    fences = ZoneSet([school])
    assert fences.covering_ids(X0 + 0.005, Y0 + 0.005) == ["school"]
    found = transitions(fences, (X0 + 0.002, Y0 + 0.005), (X0 + 0.008, Y0 + 0.005))
    assert [(c.grid_id, c.kind) for c in found] == [("school", "enter"), ("school", "exit")]


def test_the_clearance_disc_is_crossed_by_no_border() -> None:
    lon, lat = X0 + 0.002, Y0 + 0.005  # 0.002° from the left square's western edge
    r = INDEX.clearance_deg(lon, lat, 0.01)
    assert r == pytest.approx(0.002)
    assert INDEX.clearance_deg(lon, lat, 0.001) == 0.001  # capped
    assert INDEX.clearance_deg(X0 - 1.0, Y0, 0.003) == 0.003  # far from everything
    # Any segment inside the disc crosses nothing.
    for k in range(16):
        angle = 2 * math.pi * k / 16
        end = (lon + 0.99 * r * math.cos(angle), lat + 0.99 * r * math.sin(angle))
        assert transitions(INDEX, (lon, lat), end) == []
