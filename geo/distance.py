"""Great-circle distances and bearings on a spherical Earth (pure math, no numpy: called in hot loops)."""

from __future__ import annotations

import math

# Mean Earth radius (IUGG R1). A sphere is off from the WGS84 ellipsoid by at most ~0.5 %, which is far below
# GPS noise at dispatch ranges and keeps every formula cheap and symmetric.
EARTH_RADIUS_M = 6_371_008.8

_radians = math.radians
_sin = math.sin
_cos = math.cos
_asin = math.asin
_sqrt = math.sqrt


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two lon/lat points (degrees)."""
    phi1 = _radians(lat1)
    phi2 = _radians(lat2)
    # Same operation order as PositionIndex's refine step, so both give bit-identical distances.
    s_dphi = _sin((phi2 - phi1) * 0.5)
    s_dlam = _sin((_radians(lon2) - _radians(lon1)) * 0.5)
    a = s_dphi * s_dphi + _cos(phi1) * _cos(phi2) * s_dlam * s_dlam
    return hav_to_m(a)


def hav_to_m(a: float) -> float:
    """Convert the haversine term a = sin²(θ/2) to metres (clamped: rounding can push a above 1)."""
    return 2.0 * EARTH_RADIUS_M * _asin(_sqrt(a if a < 1.0 else 1.0))


def initial_bearing_deg(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Initial great-circle bearing from point 1 towards point 2, degrees clockwise from north in [0, 360)."""
    phi1 = _radians(lat1)
    phi2 = _radians(lat2)
    dlam = _radians(lon2 - lon1)
    y = _sin(dlam) * _cos(phi2)
    x = _cos(phi1) * _sin(phi2) - _sin(phi1) * _cos(phi2) * _cos(dlam)
    return math.degrees(math.atan2(y, x)) % 360.0


def destination(lon: float, lat: float, bearing_deg: float, distance_m: float) -> tuple[float, float]:
    """The (lon, lat) reached by travelling distance_m along a great circle at an initial bearing_deg.

    The longitude is normalised to [-180, 180).
    """
    delta = distance_m / EARTH_RADIUS_M
    theta = _radians(bearing_deg)
    phi1 = _radians(lat)
    sin_phi2 = _sin(phi1) * _cos(delta) + _cos(phi1) * _sin(delta) * _cos(theta)
    phi2 = _asin(max(-1.0, min(1.0, sin_phi2)))
    y = _sin(theta) * _sin(delta) * _cos(phi1)
    x = _cos(delta) - _sin(phi1) * sin_phi2
    lam2 = _radians(lon) + math.atan2(y, x)
    lon2 = (math.degrees(lam2) + 540.0) % 360.0 - 180.0
    return lon2, math.degrees(phi2)
