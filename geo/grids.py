"""Patrol grids in memory: which police and community grid holds a point, how far outside one a point is,
where the segment between two fixes enters and leaves grids, and which grids touch.

A `GridIndex` keeps one STRtree per level over prepared geometries, beside a by-id map. "Inside" means
*covered* (the boundary belongs to the grid), so a point on a border shared by two grids of one level is in
both; `locate` then answers the one whose id sorts first, the same on every run and in every process.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import shapely
from shapely.affinity import affine_transform
from shapely.geometry import MultiPolygon, Point
from shapely.geometry.base import BaseGeometry

from geo.distance import EARTH_RADIUS_M
from geo.zones import Crossing, ZoneSet, crossings_of, ordered

# The same values as schemas.tables.grids.GRID_LEVELS, spelled out because geo stays pure (that module
# pulls in SQLAlchemy); tests/geo/test_grids.py checks they agree. Coarse first.
Level = Literal["police", "community"]
LEVELS: tuple[Level, ...] = ("police", "community")

# Grids of one level closer than this count as touching: real coverages (DataSF's among them) have slivers
# of gap and overlap well below a metre; raising it also joins grids that merely come close.
TOUCH_TOLERANCE_DEG = 1e-6  # ≈ 0.1 m

_M_PER_DEG = math.pi * EARTH_RADIUS_M / 180.0


@dataclass(frozen=True, eq=False)
class Grid:
    """One patrol grid: a police district or a community grid (whose parent is a police grid)."""

    id: str
    level: Level
    name: str
    parent_id: str | None
    geometry: MultiPolygon


class Location(NamedTuple):
    """The grids that hold a point, one per level (None: outside every grid of that level)."""

    community: Grid | None
    police: Grid | None


class GridIndex:
    """Every current grid, searchable by point, segment and id. Derived state: rebuilt from the store."""

    def __init__(self, grids: Iterable[Grid]) -> None:
        self._by_id: dict[str, Grid] = {}
        for grid in grids:
            if grid.id in self._by_id:
                raise ValueError(f"grid id {grid.id!r} appears twice")
            if grid.level not in LEVELS:
                raise ValueError(f"grid {grid.id!r}: level must be one of {', '.join(LEVELS)}")
            self._by_id[grid.id] = grid
        self._levels: dict[Level, ZoneSet[Grid]] = {
            level: ZoneSet([g for g in self._by_id.values() if g.level == level]) for level in LEVELS
        }

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, grid_id: object) -> bool:
        return grid_id in self._by_id

    def get(self, grid_id: str) -> Grid:
        """The grid with this id (KeyError when there is none)."""
        return self._by_id[grid_id]

    def grids(self, level: Level | None = None) -> list[Grid]:
        """The grids of one level (or all), by id."""
        levels = LEVELS if level is None else (level,)
        return [g for lv in levels for g in self._levels[lv].zones]

    def locate(self, lon: float, lat: float) -> Location:
        """The community and the police grid that hold the point; on a shared border, the lower id."""
        found: dict[Level, Grid | None] = {}
        for level in LEVELS:
            lv = self._levels[level]
            hits = lv.covering(lon, lat)
            found[level] = lv.zones[hits[0]] if hits else None
        return Location(community=found["community"], police=found["police"])

    def covering(self, level: Level, lon: float, lat: float) -> list[Grid]:
        """Every grid of `level` that covers the point (more than one only on borders and overlaps)."""
        lv = self._levels[level]
        return [lv.zones[i] for i in lv.covering(lon, lat)]

    def distance_outside_m(self, grid_id: str, lon: float, lat: float) -> float:
        """Metres from the point to the grid (0 inside or on its border), in local equirectangular metres."""
        geom = self._by_id[grid_id].geometry
        if shapely.intersects_xy(geom, lon, lat):
            return 0.0
        # Metres east and north of the point: accurate to well under 1 % within tens of kilometres.
        kx, ky = _M_PER_DEG * math.cos(math.radians(lat)), _M_PER_DEG
        local = affine_transform(geom, [kx, 0.0, 0.0, ky, -lon * kx, -lat * ky])
        return float(shapely.distance(local, Point(0.0, 0.0)))

    def crossings(
        self,
        grid_id: str | None,
        start: tuple[float, float],
        end: tuple[float, float],
    ) -> list[Crossing]:
        """Where the straight segment from `start` to `end` (lon, lat) enters and leaves one grid (or all).

        Seen even when both fixes lie outside a small grid the segment passes through. Ordered by fraction;
        at the same fraction, exits come before enters. For each grid the kinds alternate, the first is an
        enter exactly when the grid does not cover `start`, and the last leaves it as it covers `end`.
        """
        if grid_id is not None:
            grids = [self._by_id[grid_id]]
        else:
            grids = [g for lv in self._levels.values() for g in lv.crossing(start, end)]
        return ordered(c for grid in grids for c in crossings_of(grid, start, end))

    def covering_ids(self, lon: float, lat: float) -> list[str]:
        """The ids of every grid of either level that covers the point, police first."""
        return [i for lv in self._levels.values() for i in lv.covering_ids(lon, lat)]

    def clearance_deg(self, lon: float, lat: float, cap_deg: float) -> float:
        """Degrees (lon/lat plane, at most `cap_deg`) from the point to the nearest border of any grid."""
        return min(lv.clearance_deg(lon, lat, cap_deg) for lv in self._levels.values())

    def neighbours(self, grid_id: str) -> list[Grid]:
        """The other grids of the same level that touch this one (a shared border or corner), by id."""
        grid = self._by_id[grid_id]
        lv = self._levels[grid.level]
        hits = lv.tree.query(grid.geometry, predicate="dwithin", distance=TOUCH_TOLERANCE_DEG)
        return [lv.zones[int(i)] for i in sorted(hits) if lv.zones[int(i)].id != grid_id]

    def children(self, police_id: str) -> list[Grid]:
        """The community grids whose parent is this police grid, by id."""
        return [g for g in self._levels["community"].zones if g.parent_id == police_id]


def as_geometry(geometry: BaseGeometry) -> MultiPolygon:
    """A Polygon or MultiPolygon as a MultiPolygon (what grids hold)."""
    if isinstance(geometry, MultiPolygon):
        return geometry
    if geometry.geom_type == "Polygon":
        return MultiPolygon([geometry])
    raise ValueError(f"a grid needs a Polygon or MultiPolygon, not a {geometry.geom_type}")
