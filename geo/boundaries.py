"""Grid boundaries from GeoJSON, checked before anything is stored; how a boundary nests in a coarser level.

`read_boundary` takes a GeoJSON geometry object (already parsed JSON) and returns a valid MultiPolygon, or
raises `BoundaryError` with one sentence naming what is wrong and where (polygon, ring, position). A ring
that intersects itself is not an error: it is repaired with `make_valid` and the repair is reported, so
that a person can look at it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.validation import explain_validity

from geo.grids import Grid


class BoundaryError(ValueError):
    """A geometry that cannot be a grid's boundary (the message says what and where)."""


@dataclass(frozen=True)
class Boundary:
    """A checked boundary and the repairs made to it (empty when it was valid as given)."""

    geometry: MultiPolygon
    repairs: tuple[str, ...] = ()


def read_boundary(geometry: Any) -> Boundary:
    """The MultiPolygon of a GeoJSON (Multi)Polygon, checked and, where it self-intersects, repaired."""
    if not isinstance(geometry, dict):
        raise BoundaryError("has no geometry object")
    kind = geometry.get("type")
    if kind not in ("Polygon", "MultiPolygon"):
        raise BoundaryError(f"geometry is {kind!r}: a grid needs a Polygon or MultiPolygon")
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list) or not coordinates:
        raise BoundaryError("geometry is empty")
    polygons = [coordinates] if kind == "Polygon" else coordinates
    shells = [_polygon(p, i) for i, p in enumerate(polygons)]
    shape = MultiPolygon(shells)
    repairs: list[str] = []
    if not shape.is_valid:
        reason = explain_validity(shape)
        shape = _polygonal(shapely.make_valid(shape))
        if shape.is_empty:
            raise BoundaryError(f"is invalid ({reason}) and nothing polygonal is left after make_valid")
        repairs.append(f"{reason}: repaired with make_valid")
    if shape.area <= 0:
        raise BoundaryError("has no area")
    return Boundary(shape, tuple(repairs))


def _polygon(polygon: Any, p: int) -> Polygon:
    if not isinstance(polygon, list) or not polygon:
        raise BoundaryError(f"polygon {p} is empty")
    rings = [_ring(ring, p, r) for r, ring in enumerate(polygon)]
    return Polygon(rings[0], rings[1:])


def _ring(ring: Any, p: int, r: int) -> list[tuple[float, float]]:
    where = f"ring {r} of polygon {p}"
    if not isinstance(ring, list):
        raise BoundaryError(f"{where} is not a list of positions")
    points = [_position(pos, f"position {k} of {where}") for k, pos in enumerate(ring)]
    if len(points) < 4:
        raise BoundaryError(f"{where} has {len(points)} positions; a closed ring needs at least 4")
    if points[0] != points[-1]:
        raise BoundaryError(f"{where} is not closed: its first and last positions differ")
    return points


def _position(pos: Any, where: str) -> tuple[float, float]:
    if not isinstance(pos, list) or len(pos) not in (2, 3) or not all(_is_number(v) for v in pos):
        raise BoundaryError(f"{where} is not [lon, lat] numbers: {str(pos)[:60]}")
    lon, lat = float(pos[0]), float(pos[1])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise BoundaryError(f"{where} is not finite: {pos}")
    if -180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0:
        return lon, lat
    hint = " (it looks like lat, lon: GeoJSON is lon, lat)" if abs(lon) <= 90.0 < abs(lat) <= 180.0 else ""
    raise BoundaryError(f"{where} [{lon:g}, {lat:g}] is outside lon -180..180, lat -90..90{hint}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _polygonal(shape: Any) -> MultiPolygon:
    parts = [g for g in shapely.get_parts(shape) if g.geom_type in ("Polygon", "MultiPolygon")]
    polygons = [p for g in parts for p in shapely.get_parts(g)]
    return MultiPolygon(polygons)


@dataclass(frozen=True)
class Share:
    """How much of a grid's area lies in one grid of the coarser level (0..1)."""

    grid_id: str
    share: float


def area_shares(geometry: MultiPolygon, candidates: Iterable[Grid]) -> list[Share]:
    """The share of `geometry`'s area in each candidate that it overlaps, largest first (ties: by id).

    Areas in square degrees: the ratio of two areas at the same latitude does not need metres.
    """
    total = geometry.area
    shares = [
        Share(grid.id, shapely.intersection(geometry, grid.geometry).area / total)
        for grid in candidates
        if shapely.intersects(geometry, grid.geometry)
    ]
    return sorted((s for s in shares if s.share > 0), key=lambda s: (-s.share, s.grid_id))


def parent_by_area(geometry: MultiPolygon, police: Sequence[Grid]) -> tuple[Share | None, list[Share]]:
    """The police grid that holds the largest share of `geometry` (None: it overlaps none), and all shares."""
    shares = area_shares(geometry, police)
    return (shares[0] if shares else None), shares
