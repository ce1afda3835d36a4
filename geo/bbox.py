"""Bounding boxes that provably contain a great-circle disc, and coordinate validation."""

from __future__ import annotations

import math

from geo.distance import EARTH_RADIUS_M

BBox = tuple[float, float, float, float]
"""(min_lon, min_lat, max_lon, max_lat) in degrees."""

# Widen every edge by this much (~0.1 mm) so floating-point rounding can never leave out a point lying exactly
# on the circle; a box is a pre-filter, so a hair too large costs nothing.
_PAD_DEG = 1e-9


def valid_lon_lat(lon: float, lat: float) -> bool:
    """True when lon is in [-180, 180] and lat in [-90, 90] (NaN and ±inf fail the comparisons)."""
    return -180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0


def bbox_around(lon: float, lat: float, radius_m: float) -> list[BBox]:
    """Boxes whose union contains every point within radius_m (great-circle) of (lon, lat).

    One box normally; two when the disc crosses the antimeridian (each ending at ±180). When the disc
    contains a pole the box spans all longitudes.
    """
    if not valid_lon_lat(lon, lat):
        raise ValueError(f"invalid coordinates lon={lon!r} lat={lat!r}")
    if not radius_m >= 0.0:  # also rejects NaN
        raise ValueError(f"radius_m must be >= 0, got {radius_m!r}")
    r_deg = math.degrees(radius_m / EARTH_RADIUS_M)
    # Within a degree of antipodal, haversine (the distance every caller measures with) is ill-conditioned
    # and can come out ~0.3 m short, so the box grows by ~1 m there.
    pad_deg = _PAD_DEG if r_deg < 179.0 else 1e-5
    min_lat = lat - r_deg - pad_deg
    max_lat = lat + r_deg + pad_deg
    if min_lat <= -90.0 or max_lat >= 90.0:
        # The disc reaches a pole, so every meridian crosses it (so does any radius over a quarter
        # circumference).
        return [(-180.0, max(min_lat, -90.0), 180.0, min(max_lat, 90.0))]
    # Meridians tangent to the circle (Matuschek): sin(dlon) = sin(r) / cos(lat). Below the pole case above,
    # the ratio is < 1 mathematically; the clamp only guards rounding right at the boundary.
    ratio = math.sin(math.radians(r_deg)) / math.cos(math.radians(lat))
    if ratio >= 1.0:
        return [(-180.0, min_lat, 180.0, max_lat)]
    dlon_deg = math.degrees(math.asin(ratio)) * (1.0 + 1e-12) + pad_deg
    west = lon - dlon_deg
    east = lon + dlon_deg
    if west < -180.0 and east > 180.0:
        return [(-180.0, min_lat, 180.0, max_lat)]
    if west < -180.0:
        return [(west + 360.0, min_lat, 180.0, max_lat), (-180.0, min_lat, east, max_lat)]
    if east > 180.0:
        return [(west, min_lat, 180.0, max_lat), (-180.0, min_lat, east - 360.0, max_lat)]
    return [(west, min_lat, east, max_lat)]
