"""bbox_around must contain every point within the radius: anywhere, across ±180°, around the poles."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from geo.bbox import BBox, bbox_around, valid_lon_lat
from geo.distance import EARTH_RADIUS_M, destination, haversine_m

lons = st.floats(min_value=-180.0, max_value=180.0, allow_nan=False)
lats = st.floats(min_value=-90.0, max_value=90.0, allow_nan=False)
# Centres drawn anywhere, plus a good share right at the awkward places.
special_lons = st.sampled_from([-180.0, -179.9999, -179.99, 0.0, 179.99, 179.9999, 180.0])
special_lats = st.sampled_from([-90.0, -89.9999, -89.9, -85.0, 0.0, 85.0, 89.9, 89.9999, 90.0])
centres = st.tuples(st.one_of(lons, special_lons), st.one_of(lats, special_lats))


def contains(boxes: list[BBox], lon: float, lat: float) -> bool:
    return any(w <= lon <= e and s <= lat <= n for w, s, e, n in boxes)


@given(centres, st.one_of(lons, special_lons), st.one_of(lats, special_lats))
@settings(max_examples=400)
@example((179.99, 0.0), -179.99, 0.0)
@example((0.0, 89.99), 180.0, 89.99)
@example((-180.0, -89.0), 180.0, -89.0)
def test_contains_a_point_exactly_on_the_circle(centre: tuple[float, float], lon: float, lat: float) -> None:
    """Radius = the point's own distance: the hardest case, a point on the boundary."""
    radius_m = haversine_m(*centre, lon, lat)
    assert contains(bbox_around(*centre, radius_m), lon, lat)


@given(
    centres,
    st.floats(min_value=0.0, max_value=360.0),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=25_000_000.0),
)
@settings(max_examples=400)
def test_contains_every_point_within_the_radius(
    centre: tuple[float, float], bearing_deg: float, fraction: float, radius_m: float
) -> None:
    lon, lat = destination(*centre, bearing_deg, fraction * radius_m)
    assume(haversine_m(*centre, lon, lat) <= radius_m)
    assert contains(bbox_around(*centre, radius_m), lon, lat)


@given(centres, st.floats(min_value=0.0, max_value=2_000_000.0))
def test_boxes_are_well_formed(centre: tuple[float, float], radius_m: float) -> None:
    boxes = bbox_around(*centre, radius_m)
    assert 1 <= len(boxes) <= 2
    for w, s, e, n in boxes:
        assert -180.0 <= w <= e <= 180.0 and -90.0 <= s <= n <= 90.0
    if len(boxes) == 2:  # split exactly at the antimeridian
        assert boxes[0][2] == 180.0 and boxes[1][0] == -180.0


def test_crossing_the_antimeridian_gives_two_boxes() -> None:
    boxes = bbox_around(179.99, 0.0, 5_000.0)
    assert len(boxes) == 2
    assert contains(boxes, -179.99, 0.0) and contains(boxes, 179.97, 0.0)
    assert not contains(boxes, 0.0, 0.0)


def test_circle_around_a_pole_spans_all_longitudes() -> None:
    (box,) = bbox_around(45.0, 89.99, 5_000.0)
    assert box[0] == -180.0 and box[2] == 180.0 and box[3] == 90.0
    assert contains([box], -135.0, 89.99)  # the other side of the pole, ~2.2 km away


def test_box_is_tight_at_city_scale() -> None:
    ((w, s, e, n),) = bbox_around(-122.4194, 37.7749, 1_000.0)
    r_deg = math.degrees(1_000.0 / EARTH_RADIUS_M)
    assert n - s == pytest.approx(2 * r_deg, rel=1e-6)
    assert e - w == pytest.approx(2 * r_deg / math.cos(math.radians(37.7749)), rel=1e-3)


def test_zero_radius_contains_the_centre() -> None:
    assert contains(bbox_around(10.0, 20.0, 0.0), 10.0, 20.0)


@pytest.mark.parametrize(
    ("lon", "lat", "radius_m"),
    [(math.nan, 0.0, 1.0), (0.0, math.inf, 1.0), (181.0, 0.0, 1.0), (0.0, -90.5, 1.0), (0.0, 0.0, -1.0),
     (0.0, 0.0, math.nan)],
)  # fmt: skip
def test_rejects_invalid_input(lon: float, lat: float, radius_m: float) -> None:
    with pytest.raises(ValueError):
        bbox_around(lon, lat, radius_m)


@pytest.mark.parametrize(
    ("lon", "lat", "valid"),
    [(0.0, 0.0, True), (-180.0, -90.0, True), (180.0, 90.0, True), (180.0001, 0.0, False),
     (0.0, -90.0001, False), (math.nan, 0.0, False), (0.0, math.nan, False), (math.inf, 0.0, False),
     (0.0, -math.inf, False)],
)  # fmt: skip
def test_valid_lon_lat(lon: float, lat: float, valid: bool) -> None:
    assert valid_lon_lat(lon, lat) is valid
