"""Enter and exit events as a pure function of a unit's (old, new) positions (Tile38's `fence.go` idea).

They are computed on the straight segment between consecutive fixes, so a unit that crosses a small area
between two fixes is still seen entering and leaving it. An old position of None means the unit has just
appeared (it enters what covers its new position); a new one of None that it has gone (it leaves what
covered the old). Each event carries the fraction of the way along the segment where it happened, which
the caller turns into a time.
"""

from __future__ import annotations

from typing import Protocol

from geo.zones import Crossing, ordered

Point = tuple[float, float]  # lon, lat


class Areas(Protocol):
    """What transitions need of a set of areas (`geo.zones.ZoneSet`, `geo.grids.GridIndex`)."""

    def covering_ids(self, lon: float, lat: float) -> list[str]: ...

    def crossings(self, grid_id: str | None, start: Point, end: Point) -> list[Crossing]: ...


def transitions(areas: Areas, old: Point | None, new: Point | None) -> list[Crossing]:
    """The enters and exits from `old` to `new` (None: not there), in the order they happen."""
    if old is None and new is None:
        return []
    if old is None:
        assert new is not None
        return ordered(Crossing(0.0, zone_id, "enter") for zone_id in areas.covering_ids(*new))
    if new is None:
        return ordered(Crossing(1.0, zone_id, "exit") for zone_id in areas.covering_ids(*old))
    return areas.crossings(None, old, new)
