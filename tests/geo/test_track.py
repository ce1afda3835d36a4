"""Track maths against hand-computed fixtures and properties: one line, Douglas–Peucker, distance, stops."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from geo.distance import destination, haversine_m
from geo.track import (
    OneLine,
    TrackPoint,
    distance_m,
    follow_best_device,
    offset_m,
    project_m,
    simplify,
    stops_and_trips,
)

LON, LAT = -122.4194, 37.7793


def walk(
    legs: list[tuple[float, float, int]], *, start_s: float = 0.0, device: str = "d1"
) -> list[TrackPoint]:
    """Points every 1 s along legs of (bearing, metres per second, seconds)."""
    lon, lat, t = LON, LAT, start_s
    points = [TrackPoint(t, lon, lat, device)]
    for bearing, speed, seconds in legs:
        for _ in range(seconds):
            lon, lat = destination(lon, lat, bearing, speed)
            t += 1.0
            points.append(TrackPoint(t, lon, lat, device))
    return points


def test_a_straight_line_simplifies_to_its_ends_and_a_corner_stays() -> None:
    straight = walk([(90.0, 10.0, 100)])
    assert simplify(straight, 1.0) == [straight[0], straight[-1]]
    corner = walk([(90.0, 10.0, 50), (0.0, 10.0, 50)])
    kept = simplify(corner, 1.0)
    assert kept == [corner[0], corner[50], corner[-1]]  # the corner point keeps its own time
    assert kept[1].ts_s == 50.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 359), st.floats(0.5, 20), st.integers(1, 30)), min_size=1, max_size=8),
    st.floats(0.5, 200),
)
def test_no_dropped_point_is_further_than_the_tolerance_from_the_simplified_line(
    legs: list[tuple[float, float, int]], tolerance_m: float
) -> None:
    points = walk(legs)
    kept = simplify(points, tolerance_m)
    assert kept[0] == points[0] and kept[-1] == points[-1]
    position = {p.ts_s: i for i, p in enumerate(points)}
    xs, ys = project_m(points)  # the plane the tolerance is measured in
    for a, b in itertools.pairwise(kept):
        i, j = position[a.ts_s], position[b.ts_s]
        for m in range(i + 1, j):
            assert _segment_distance((xs[m], ys[m]), (xs[i], ys[i]), (xs[j], ys[j])) <= tolerance_m + 1e-6


def test_offset_is_the_distance_to_the_segment_not_the_line() -> None:
    a, b = TrackPoint(0, LON, LAT, "d"), TrackPoint(1, *destination(LON, LAT, 90.0, 100.0), "d")
    beside = TrackPoint(2, *destination(*destination(LON, LAT, 90.0, 50.0), 0.0, 30.0), "d")
    beyond = TrackPoint(3, *destination(LON, LAT, 90.0, 140.0), "d")  # on the line, 40 m past b
    assert math.isclose(offset_m(beside, a, b), 30.0, rel_tol=1e-3)
    assert math.isclose(offset_m(beyond, a, b), 40.0, rel_tol=1e-3)


def test_distance_leaves_out_flagged_jumps() -> None:
    points = walk([(90.0, 10.0, 10)])  # 100 m
    jump = TrackPoint(4.5, LON + 0.5, LAT, "d1", flags=2)  # 44 km away, flagged impossible speed
    with_jump = sorted([*points, jump])
    assert math.isclose(distance_m(with_jump, skip_flags=2), 100.0, rel_tol=1e-6)
    assert distance_m(with_jump, skip_flags=0) > 80_000


def test_one_line_follows_the_leader_and_switches_when_it_falls_silent_or_a_sharper_device_reports() -> None:
    cam = [TrackPoint(t, LON + t * 1e-5, LAT, "cam", accuracy_m=5.0) for t in range(0, 60, 5)]
    phone = [
        TrackPoint(t + 1, LON + t * 1e-5, LAT + 2e-5, "phone", accuracy_m=12.0) for t in range(0, 100, 5)
    ]
    line = follow_best_device(sorted([*cam, *phone]))
    assert [p.device_id for p in line if p.ts_s < 60] == ["cam"] * len(cam)  # the phone is less accurate
    assert all(p.device_id == "phone" for p in line if p.ts_s > 75)  # the cam fell silent at 55 s
    sharper = [TrackPoint(61 + t, LON, LAT, "radio", accuracy_m=3.0) for t in range(0, 10, 5)]
    switched = follow_best_device(sorted([*phone, *sharper]))
    assert [p.device_id for p in switched if 60 < p.ts_s < 72] == ["radio", "radio"]


def test_stops_and_trips_of_a_hand_made_day() -> None:
    # 10 min parked, 5 min driving east at 10 m/s (3 km), 20 min parked, 2 min driving north (1.2 km).
    points = walk([(0.0, 0.0, 600), (90.0, 10.0, 300), (0.0, 0.0, 1200), (0.0, 10.0, 120)])
    stops, trips = stops_and_trips(points, radius_m=50.0, min_stop_s=300.0)
    # A stay begins at the first point within 50 m of all that follow: 40 m (4 s) before the car halts at
    # 900 s, and it lasts while the points stay within 50 m of that one: the north leg leaves at 2103 s
    # (30 m north of the halt, 50 m from the stay's first point).
    assert [(s.start_s, s.end_s) for s in stops] == [(0.0, 605.0), (896.0, 2103.0)]
    assert [(t.start_s, t.end_s) for t in trips] == [(605.0, 896.0), (2103.0, 2220.0)]
    assert math.isclose(trips[0].distance_m, 2910.0, rel_tol=1e-6)
    assert math.isclose(trips[1].distance_m, 1170.0, rel_tol=1e-6)
    first = stops[0]
    assert haversine_m(first.lon, first.lat, LON, LAT) < 10.0 and first.duration_s == 605.0


def test_a_short_pause_is_not_a_stop() -> None:
    points = walk([(90.0, 10.0, 60), (0.0, 0.0, 120), (90.0, 10.0, 60)])
    stops, trips = stops_and_trips(points, radius_m=50.0, min_stop_s=300.0)
    assert stops == [] and len(trips) == 1 and trips[0].points == len(points)


def test_one_line_taken_page_by_page_equals_the_whole_track() -> None:
    cam = [TrackPoint(t, LON + t * 1e-5, LAT, "cam", accuracy_m=5.0) for t in range(0, 300, 5)]
    phone = [TrackPoint(t + 1, LON, LAT + 2e-5, "phone", accuracy_m=9.0) for t in range(100, 400, 3)]
    track = sorted([*cam, *phone])
    line = OneLine(15.0)
    paged = [p for i in range(0, len(track), 7) for p in line.take(track[i : i + 7])]
    assert paged == follow_best_device(track, 15.0)


def _segment_distance(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    """Plain-Python point-to-segment distance: the oracle of the vectorised one."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / length2))
    return math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy))
