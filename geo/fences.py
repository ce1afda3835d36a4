"""Geofences: arbitrary areas (a school, an event, a hospital) drawn as a polygon or as a circle.

A circle is kept as the polygon it is on the ground: a disc of `radius_m` metres around its centre, built in
local equirectangular metres and brought back to lon/lat, so the enter and exit maths is the grids' maths
(`geo.zones`). Accurate to well under 1 % for radii up to tens of kilometres.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from shapely.affinity import affine_transform
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from geo.distance import EARTH_RADIUS_M

_M_PER_DEG = math.pi * EARTH_RADIUS_M / 180.0
# Segments per quarter circle: 16 keeps the polygon within 0.5 % of the radius (cos(pi/64)).
_QUADRANT_SEGMENTS = 16
# The largest circle: beyond, the local plane is no longer the ground (and such a fence means nothing).
MAX_RADIUS_M = 50_000.0


class Fence(NamedTuple):
    """One geofence: its id, name, area (lon/lat) and how long a stay inside makes a dwell (s)."""

    id: str
    name: str
    geometry: BaseGeometry
    dwell_s: float


def circle(lon: float, lat: float, radius_m: float) -> BaseGeometry:
    """The disc of `radius_m` metres around (lon, lat), as a lon/lat polygon."""
    if not (0 < radius_m <= MAX_RADIUS_M):
        raise ValueError(f"a circle's radius must be above 0 and at most {MAX_RADIUS_M:g} m")
    if not (-180 <= lon <= 180 and -85 <= lat <= 85):
        raise ValueError("a circle's centre must be a lon in [-180, 180] and a lat in [-85, 85]")
    disc = Point(0.0, 0.0).buffer(radius_m, quad_segs=_QUADRANT_SEGMENTS)
    kx, ky = _M_PER_DEG * math.cos(math.radians(lat)), _M_PER_DEG
    return affine_transform(disc, [1 / kx, 0.0, 0.0, 1 / ky, lon, lat])
