"""Track maths: one line from a unit's devices, Douglas–Peucker in metres, distance, stops and trips.

Pure functions over time-ordered `TrackPoint`s (seconds since the epoch, lon/lat degrees). Distances are
great-circle (`haversine_m`); the simplification measures offsets in a local equirectangular projection
around each segment, which is exact to well under a metre at patrol scales (segments of a few km).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from geo.distance import EARTH_RADIUS_M, haversine_m


class TrackPoint(NamedTuple):
    """One stored fix, as a track needs it."""

    ts_s: float
    lon: float
    lat: float
    device_id: str
    accuracy_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    flags: int = 0


class OneLine:
    """One line through a unit's devices (body cam, phone, radio publishing at once), in time order.

    The line follows one device, the leader, and switches when another device is more accurate than the
    leader's last fix, or when the leader has been silent for more than `window_s`; the other devices'
    points are left out, so the line does not zigzag between two devices a few metres apart. A unit with one
    device gets its points unchanged. `take` may be called page after page: the leader carries over.
    """

    def __init__(self, window_s: float = 15.0) -> None:
        self.window_s = window_s
        self._leader: TrackPoint | None = None

    def take(self, points: Iterable[TrackPoint]) -> list[TrackPoint]:
        """The points of this page that stay on the line."""
        kept: list[TrackPoint] = []
        leader = self._leader
        for p in points:
            if (
                leader is not None
                and p.device_id != leader.device_id
                and p.ts_s - leader.ts_s <= self.window_s
                and not _better(p, leader)
            ):
                continue
            kept.append(p)
            leader = p
        self._leader = leader
        return kept


def follow_best_device(points: Iterable[TrackPoint], window_s: float = 15.0) -> list[TrackPoint]:
    """`OneLine(window_s).take(points)`: the whole track at once."""
    return OneLine(window_s).take(points)


def _better(p: TrackPoint, leader: TrackPoint) -> bool:
    if p.accuracy_m is None:
        return False
    return leader.accuracy_m is None or p.accuracy_m < leader.accuracy_m


def simplify(points: Sequence[TrackPoint], tolerance_m: float) -> list[TrackPoint]:
    """Douglas–Peucker: the fewest points such that no dropped point lies more than `tolerance_m` from the
    simplified line (measured in `project_m`'s plane). The first and last points always stay; kept points
    keep their own timestamps. Vectorised: a day at 1 Hz (86,400 points) takes milliseconds."""
    if len(points) <= 2 or tolerance_m <= 0:
        return list(points)
    lons = np.fromiter((p.lon for p in points), dtype=np.float64, count=len(points))
    lats = np.fromiter((p.lat for p in points), dtype=np.float64, count=len(points))
    return [points[int(i)] for i in simplify_indices(lons, lats, tolerance_m)]


def simplify_indices(
    lons: npt.NDArray[np.float64], lats: npt.NDArray[np.float64], tolerance_m: float
) -> npt.NDArray[np.intp]:
    """`simplify` over coordinate arrays: the indices of the points kept, ascending (for callers that hold
    a track as columns and build only the points that stay)."""
    n = len(lons)
    if n <= 2 or tolerance_m <= 0:
        return np.arange(n)
    xs, ys = _plane_m(lons, lats)
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:  # iterative: a day at 1 Hz would overflow a recursive version's stack
        first, last = stack.pop()
        if last - first < 2:
            continue
        offsets = _offsets(
            xs[first + 1 : last], ys[first + 1 : last], xs[first], ys[first], xs[last], ys[last]
        )
        worst = int(np.argmax(offsets))
        if offsets[worst] > tolerance_m:
            middle = first + 1 + worst
            keep[middle] = True
            stack.append((first, middle))
            stack.append((middle, last))
    return np.flatnonzero(keep)


def project_m(points: Sequence[TrackPoint]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The points in metres on a plane tangent at the track's mean latitude (equirectangular): exact to a
    fraction of a per cent across a city, which is what a tolerance in metres needs."""
    lons = np.fromiter((p.lon for p in points), dtype=np.float64, count=len(points))
    lats = np.fromiter((p.lat for p in points), dtype=np.float64, count=len(points))
    return _plane_m(lons, lats)


def _plane_m(
    lons: npt.NDArray[np.float64], lats: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    metres = math.radians(1.0) * EARTH_RADIUS_M
    k = math.cos(math.radians(float(lats.mean())))
    return (lons - lons[0]) * k * metres, (lats - lats[0]) * metres


def _offsets(
    px: npt.NDArray[np.float64], py: npt.NDArray[np.float64], ax: float, ay: float, bx: float, by: float
) -> npt.NDArray[np.float64]:
    """Distances from the points (px, py) to the segment a–b, in the plane."""
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    if length2 == 0:
        return np.hypot(px - ax, py - ay)
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / length2, 0.0, 1.0)
    return np.hypot(px - (ax + t * dx), py - (ay + t * dy))


def offset_m(p: TrackPoint, a: TrackPoint, b: TrackPoint) -> float:
    """Distance in metres from `p` to the segment a–b, in the plane `project_m` gives the three points."""
    xs, ys = project_m([a, b, p])
    return float(_offsets(xs[2:], ys[2:], xs[0], ys[0], xs[1], ys[1])[0])


def distance_m(points: Iterable[TrackPoint], skip_flags: int) -> float:
    """Distance patrolled along the points: great-circle legs between consecutive points, leaving out the
    points whose flags meet `skip_flags` (a jump to an impossible place is not distance driven)."""
    total, previous = 0.0, None
    for p in points:
        if p.flags & skip_flags:
            continue
        if previous is not None:
            total += haversine_m(previous.lon, previous.lat, p.lon, p.lat)
        previous = p
    return total


@dataclass(frozen=True)
class Stop:
    """A stay: every point from `start_s` to `end_s` within `radius_m` of (lon, lat), their centre."""

    start_s: float
    end_s: float
    lon: float
    lat: float
    points: int

    @property
    def duration_s(self) -> float:
        """How long the unit stayed."""
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Trip:
    """The movement between two stops (or before the first, or after the last)."""

    start_s: float
    end_s: float
    distance_m: float
    points: int


def stops_and_trips(
    points: Sequence[TrackPoint], radius_m: float, min_stop_s: float, skip_flags: int = 0
) -> tuple[list[Stop], list[Trip]]:
    """Split a time-ordered track into stops (a stay within `radius_m` of where it began for at least
    `min_stop_s`) and the trips between them. Points whose flags meet `skip_flags` are left out."""
    usable = [p for p in points if not p.flags & skip_flags]
    stops: list[Stop] = []
    trips: list[Trip] = []
    trip_from = 0
    i = 0
    while i < len(usable):
        j = _stay_end(usable, i, radius_m)
        if usable[j].ts_s - usable[i].ts_s >= min_stop_s:
            if i > trip_from:
                trips.append(_trip(usable[trip_from : i + 1]))
            stops.append(_stop(usable[i : j + 1]))
            trip_from = j
            i = j + 1
        else:
            i += 1
    if len(usable) - trip_from > 1:
        trips.append(_trip(usable[trip_from:]))
    return stops, trips


def _stay_end(points: Sequence[TrackPoint], i: int, radius_m: float) -> int:
    """The last index j such that points i..j all lie within `radius_m` of point i."""
    anchor, j = points[i], i
    while (
        j + 1 < len(points)
        and haversine_m(anchor.lon, anchor.lat, points[j + 1].lon, points[j + 1].lat) <= radius_m
    ):
        j += 1
    return j


def _stop(points: Sequence[TrackPoint]) -> Stop:
    lon = sum(p.lon for p in points) / len(points)
    lat = sum(p.lat for p in points) / len(points)
    return Stop(points[0].ts_s, points[-1].ts_s, lon, lat, len(points))


def _trip(points: Sequence[TrackPoint]) -> Trip:
    return Trip(points[0].ts_s, points[-1].ts_s, distance_m(points, 0), len(points))
