"""Distances and bearings: properties, and known values checked against formulas written independently."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.distance import EARTH_RADIUS_M, destination, haversine_m, initial_bearing_deg

lons = st.floats(min_value=-180.0, max_value=180.0, allow_nan=False)
lats = st.floats(min_value=-90.0, max_value=90.0, allow_nan=False)
points = st.tuples(lons, lats)

CITY_HALL = (-122.41924, 37.77927)  # San Francisco City Hall, lon/lat
FERRY_BUILDING = (-122.39348, 37.79554)
HALF_CIRCUMFERENCE_M = math.pi * EARTH_RADIUS_M


def sphere_atan2_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance by the atan2 (spherical Vincenty) formula: other algebra, well conditioned."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.hypot(
        math.cos(p2) * math.sin(dl), math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    )
    x = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return EARTH_RADIUS_M * math.atan2(y, x)


def vincenty_wgs84_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Vincenty's inverse formula on the WGS84 ellipsoid (reference for short, non-antipodal distances)."""
    a, f = 6_378_137.0, 1 / 298.257223563
    b = (1 - f) * a
    u1 = math.atan((1 - f) * math.tan(math.radians(lat1)))
    u2 = math.atan((1 - f) * math.tan(math.radians(lat2)))
    big_l = math.radians(lon2 - lon1)
    lam = big_l
    for _ in range(200):
        sin_sigma = math.hypot(
            math.cos(u2) * math.sin(lam),
            math.cos(u1) * math.sin(u2) - math.sin(u1) * math.cos(u2) * math.cos(lam),
        )
        cos_sigma = math.sin(u1) * math.sin(u2) + math.cos(u1) * math.cos(u2) * math.cos(lam)
        sigma = math.atan2(sin_sigma, cos_sigma)
        sin_alpha = math.cos(u1) * math.cos(u2) * math.sin(lam) / sin_sigma
        cos2_alpha = 1 - sin_alpha**2
        cos_2sm = cos_sigma - 2 * math.sin(u1) * math.sin(u2) / cos2_alpha
        c = f / 16 * cos2_alpha * (4 + f * (4 - 3 * cos2_alpha))
        lam_prev = lam
        lam = big_l + (1 - c) * f * sin_alpha * (
            sigma + c * sin_sigma * (cos_2sm + c * cos_sigma * (-1 + 2 * cos_2sm**2))
        )
        if abs(lam - lam_prev) < 1e-12:
            break
    u_sq = cos2_alpha * (a**2 - b**2) / b**2
    big_a = 1 + u_sq / 16384 * (4096 + u_sq * (-768 + u_sq * (320 - 175 * u_sq)))
    big_b = u_sq / 1024 * (256 + u_sq * (-128 + u_sq * (74 - 47 * u_sq)))
    d_sigma = (
        big_b
        * sin_sigma
        * (
            cos_2sm
            + big_b
            / 4
            * (
                cos_sigma * (-1 + 2 * cos_2sm**2)
                - big_b / 6 * cos_2sm * (-3 + 4 * sin_sigma**2) * (-3 + 4 * cos_2sm**2)
            )
        )
    )
    return b * big_a * (sigma - d_sigma)


def test_city_hall_to_ferry_building_is_about_three_km() -> None:
    d_m = haversine_m(*CITY_HALL, *FERRY_BUILDING)
    assert 2_850.0 < d_m < 2_950.0
    # The sphere is within ~0.5 % of the ellipsoid; at 37.8° N the gap is about 0.1 %.
    assert d_m == pytest.approx(vincenty_wgs84_m(*CITY_HALL, *FERRY_BUILDING), rel=5e-3)
    assert d_m == pytest.approx(sphere_atan2_m(*CITY_HALL, *FERRY_BUILDING), rel=1e-12)


def test_one_degree_along_the_equator() -> None:
    assert haversine_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(EARTH_RADIUS_M * math.pi / 180, rel=1e-14)
    assert haversine_m(179.5, 0.0, -179.5, 0.0) == pytest.approx(EARTH_RADIUS_M * math.pi / 180, rel=1e-12)


def test_pole_to_pole_is_half_a_circumference() -> None:
    assert haversine_m(0.0, 90.0, 123.0, -90.0) == pytest.approx(HALF_CIRCUMFERENCE_M, rel=1e-15)


@given(points, points)
def test_symmetric_non_negative_and_bounded(p: tuple[float, float], q: tuple[float, float]) -> None:
    d_m = haversine_m(*p, *q)
    assert d_m == haversine_m(*q, *p)
    assert 0.0 <= d_m <= HALF_CIRCUMFERENCE_M * (1 + 1e-15)


@given(points)
def test_distance_to_itself_is_zero(p: tuple[float, float]) -> None:
    assert haversine_m(*p, *p) == 0.0


@given(points, points, points)
def test_triangle_inequality(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> None:
    # Haversine loses precision near antipodes (up to ~0.1 m), hence the slack.
    assert haversine_m(*p, *r) <= haversine_m(*p, *q) + haversine_m(*q, *r) + 0.5


@given(points, points)
def test_agrees_with_independent_formula(p: tuple[float, float], q: tuple[float, float]) -> None:
    expected_m = sphere_atan2_m(*p, *q)
    near_antipode = expected_m > HALF_CIRCUMFERENCE_M - 1_000.0  # haversine is ill-conditioned there
    assert haversine_m(*p, *q) == pytest.approx(expected_m, rel=1e-9, abs=0.5 if near_antipode else 1e-6)


@given(
    st.floats(min_value=-180.0, max_value=180.0),
    st.floats(min_value=-80.0, max_value=80.0),
    st.floats(min_value=0.0, max_value=360.0, exclude_max=True),
    st.floats(min_value=1.0, max_value=5_000_000.0),
)
@settings(max_examples=200)
def test_destination_round_trip(lon: float, lat: float, bearing_deg: float, distance_m: float) -> None:
    lon2, lat2 = destination(lon, lat, bearing_deg, distance_m)
    assert -180.0 <= lon2 < 180.0 and -90.0 <= lat2 <= 90.0
    assert haversine_m(lon, lat, lon2, lat2) == pytest.approx(distance_m, rel=1e-9, abs=1e-6)
    back_deg = initial_bearing_deg(lon, lat, lon2, lat2)
    gap_deg = abs((back_deg - bearing_deg + 180.0) % 360.0 - 180.0)
    assert gap_deg < 1e-6


def test_initial_bearing_cardinal_directions() -> None:
    assert initial_bearing_deg(0.0, 0.0, 0.0, 1.0) == pytest.approx(0.0)
    assert initial_bearing_deg(0.0, 0.0, 1.0, 0.0) == pytest.approx(90.0)
    assert initial_bearing_deg(0.0, 1.0, 0.0, 0.0) == pytest.approx(180.0)
    assert initial_bearing_deg(179.9, 0.0, -179.9, 0.0) == pytest.approx(
        90.0
    )  # east, across the antimeridian
