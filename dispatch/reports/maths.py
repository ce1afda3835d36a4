"""The report's arithmetic over fixes and intervals (pure, vectorised): percentiles, distance patrolled on
duty, time inside a grid.

Distance: great-circle legs between consecutive fixes of the unit's one line (`geo.track.OneLine` when it
has several devices), leaving out fixes flagged low accuracy, impossible speed, out of order or mock, and
counting a leg when both its fixes lie in on-duty time. Time inside: a fix stands for where the unit is
from its time until the next fix, at most `max_gap_s` (beyond that nothing is known of where it is).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geo.distance import EARTH_RADIUS_M
from geo.track import TrackPoint, follow_best_device
from schemas.fix import NOT_FOR_DISPATCH, FixFlag
from store.reports import UnitFixes

# Fixes that are not where the unit went (the same rule as a track's summary).
NOT_MOVEMENT = NOT_FOR_DISPATCH | int(FixFlag.MOCK)

Bools = npt.NDArray[np.bool_]


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least p % of the values at or below it
    (None for no values). P50 of 10, 20, 30, 40 is 20; P90 is 40."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def usable(fixes: UnitFixes, window_s: float) -> UnitFixes:
    """The unit's fixes (read without those flagged NOT_MOVEMENT) on one line through its devices."""
    if len(np.unique(fixes.devices)) <= 1:
        return fixes
    points = [
        TrackPoint(t, x, y, str(d), None if math.isnan(a) else a)
        for t, x, y, d, a in zip(
            fixes.ts_s.tolist(),
            fixes.lon.tolist(),
            fixes.lat.tolist(),
            fixes.devices.tolist(),
            fixes.accuracy_m.tolist(),
            strict=True,
        )
    ]
    kept = {id(p) for p in follow_best_device(points, window_s)}
    return _subset(fixes, np.array([id(p) in kept for p in points], dtype=bool))


def _subset(fixes: UnitFixes, mask: Bools) -> UnitFixes:
    return UnitFixes(
        fixes.ts_s[mask],
        fixes.lon[mask],
        fixes.lat[mask],
        fixes.accuracy_m[mask],
        fixes.devices[mask],
    )


def within(ts_s: npt.NDArray[np.float64], spans: Sequence[tuple[float, float]]) -> Bools:
    """Which of the sorted times lie in one of the sorted, disjoint half-open spans."""
    if not spans:
        return np.zeros(len(ts_s), dtype=bool)
    starts = np.array([s for s, _ in spans])
    ends = np.array([e for _, e in spans])
    k = np.searchsorted(starts, ts_s, side="right") - 1
    return (k >= 0) & (ts_s < ends[np.clip(k, 0, None)])


def distance_m(fixes: UnitFixes, duty: Sequence[tuple[float, float]]) -> float:
    """Great-circle length of the legs between consecutive usable fixes that both lie on duty."""
    if len(fixes) < 2:
        return 0.0
    lon, lat = np.radians(fixes.lon), np.radians(fixes.lat)
    s_dphi = np.sin((lat[1:] - lat[:-1]) * 0.5)
    s_dlam = np.sin((lon[1:] - lon[:-1]) * 0.5)
    a = s_dphi * s_dphi + np.cos(lat[:-1]) * np.cos(lat[1:]) * s_dlam * s_dlam
    legs = 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
    on = within(fixes.ts_s, duty)
    return float(legs[on[:-1] & on[1:]].sum())


def inside_s(
    fixes: UnitFixes, windows: Sequence[tuple[float, float]], grid: BaseGeometry, max_gap_s: float
) -> float:
    """Seconds of the `windows` (sorted, disjoint) during which the unit's last usable fix, at most
    `max_gap_s` old, lay inside `grid` (its border counts as inside)."""
    if not windows or not len(fixes):
        return 0.0
    first, last = windows[0][0], windows[-1][1]
    lo = max(0, int(np.searchsorted(fixes.ts_s, first - max_gap_s, side="left")) - 1)
    hi = int(np.searchsorted(fixes.ts_s, last, side="left"))
    ts = fixes.ts_s[lo:hi]
    if not len(ts):
        return 0.0
    nxt = np.append(ts[1:], np.inf) if hi >= len(fixes) else fixes.ts_s[lo + 1 : hi + 1]
    hold_end = np.minimum(nxt, ts + max_gap_s)
    inside = shapely.intersects_xy(grid, fixes.lon[lo:hi], fixes.lat[lo:hi])
    starts, ends = ts[inside], hold_end[inside]
    total = 0.0
    for w0, w1 in windows:
        total += float(np.clip(np.minimum(ends, w1) - np.maximum(starts, w0), 0.0, None).sum())
    return total
