"""Named areas in memory (patrol grids of one level, geofences): which cover a point, where the segment
between two fixes enters and leaves them, and how far a point is from the nearest border.

A `ZoneSet` keeps one STRtree over prepared geometries, sorted by id so that every answer comes in id
order, the same on every run. "Inside" means *covered*: the boundary belongs to the area. Coordinates are
lon, lat (x, y) in degrees; `clearance_deg` measures in that plane, which is the plane the segments between
fixes are drawn in, so a disc of that radius around a point is crossed by no border at all.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Generic, Literal, NamedTuple, Protocol, TypeVar

import shapely
from shapely import STRtree
from shapely.geometry import LineString, Point
from shapely.geometry.base import BaseGeometry


class Zone(Protocol):
    """Anything with an id and an areal geometry (a `geo.grids.Grid`, a `geo.fences.Fence`)."""

    @property
    def id(self) -> str: ...
    @property
    def geometry(self) -> BaseGeometry: ...


Z = TypeVar("Z", bound=Zone)


class Crossing(NamedTuple):
    """A segment enters or leaves a zone at `fraction` (0 = the first fix, 1 = the second)."""

    fraction: float
    grid_id: str
    kind: Literal["enter", "exit"]


class ZoneSet(Generic[Z]):
    """Zones, their STRtree, their prepared geometries and their boundaries (indices agree, by id)."""

    def __init__(self, zones: Iterable[Z]) -> None:
        self.zones = sorted(zones, key=lambda z: z.id)
        self.geoms = [z.geometry for z in self.zones]
        for geom in self.geoms:
            shapely.prepare(geom)
        self.boundaries = [g.boundary for g in self.geoms]
        self.tree = STRtree(self.geoms)
        self._by_id = {z.id: z for z in self.zones}

    def __len__(self) -> int:
        return len(self.zones)

    def __contains__(self, zone_id: object) -> bool:
        return zone_id in self._by_id

    def covering(self, lon: float, lat: float) -> list[int]:
        """Indices (ascending, so by id) of the zones that cover the point."""
        hits = self.tree.query(Point(lon, lat))
        if len(hits) == 0:
            return []
        hits.sort()
        return [int(i) for i in hits if shapely.intersects_xy(self.geoms[i], lon, lat)]

    def covering_ids(self, lon: float, lat: float) -> list[str]:
        """The ids of the zones that cover the point, sorted."""
        return [self.zones[i].id for i in self.covering(lon, lat)]

    def crossing(self, start: tuple[float, float], end: tuple[float, float]) -> list[Z]:
        """The zones whose box the segment touches (candidates for `crossings_of`), by id."""
        return [self.zones[int(i)] for i in sorted(self.tree.query(LineString([start, end])))]

    def crossings(
        self, zone_id: str | None, start: tuple[float, float], end: tuple[float, float]
    ) -> list[Crossing]:
        """Where the segment from `start` to `end` enters and leaves one zone (or any), in order."""
        zones = self.crossing(start, end) if zone_id is None else [self._by_id[zone_id]]
        return ordered(c for zone in zones for c in crossings_of(zone, start, end))

    def get(self, zone_id: str) -> Z:
        """The zone with this id (KeyError when there is none)."""
        return self._by_id[zone_id]

    def clearance_deg(self, lon: float, lat: float, cap_deg: float) -> float:
        """The distance (lon/lat degrees, at most `cap_deg`) from the point to the nearest zone border."""
        point = Point(lon, lat)
        best = cap_deg
        for i in self.tree.query(point, predicate="dwithin", distance=cap_deg):
            best = min(best, float(shapely.distance(self.boundaries[i], point)))
        return best


def crossings_of(zone: Zone, start: tuple[float, float], end: tuple[float, float]) -> list[Crossing]:
    """Where the straight segment from `start` to `end` (lon, lat) enters and leaves one zone.

    The kinds alternate, the first is an enter exactly when the zone does not cover `start`, and the state
    after the last is whether it covers `end`: exactly what a point lookup sees at either end.
    """
    if start == end:
        return []
    segment = LineString([start, end])
    geom = zone.geometry
    cuts = shapely.intersection(segment, geom.boundary)
    fractions = sorted(
        {0.0, 1.0, *(segment.project(Point(xy), normalized=True) for xy in shapely.get_coordinates(cuts))}
    )
    (x0, y0), (x1, y1) = start, end

    def inside(t: float) -> bool:
        return bool(shapely.intersects_xy(geom, x0 + (x1 - x0) * t, y0 + (y1 - y0) * t))

    # The state is constant between consecutive cuts: sample each interval's middle, and both ends.
    states = [inside(0.0)]
    states += [inside((a + b) / 2) for a, b in itertools.pairwise(fractions)]
    states.append(inside(1.0))
    # A change between states j and j+1 happens at fractions[j].
    return [
        Crossing(fractions[j], zone.id, "enter" if states[j + 1] else "exit")
        for j in range(len(states) - 1)
        if states[j] != states[j + 1]
    ]


def ordered(found: Iterable[Crossing]) -> list[Crossing]:
    """Crossings by fraction; at the same fraction exits before enters, then by id."""
    return sorted(found, key=lambda c: (c.fraction, c.kind != "exit", c.grid_id))
