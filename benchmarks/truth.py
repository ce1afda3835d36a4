"""Checks every nearest answer against the geodesic truth (WGS84, pyproj's Geod) at the time it was asked.

Units move while the run goes on, so "the truth" of a request is a window: every position a unit had from
`lag_s` before the request was sent (the design may not have applied the newest fixes yet) until its answer
came back (it may already have applied fixes sent meanwhile). For unit v, dmin(v) and dmax(v) are the least
and greatest geodesic distance from the request's point over those positions. An answer A (ids, nearest
first) is wrong when:

- `http`: the status was not 200;
- `status`: it names a unit that is not available (or not a unit at all), or one twice;
- `short`: it has fewer than k units (there are always more than k available);
- `order`: some available unit v outside A was surely nearer than a unit of A: dmax(v) < T·(1 − TOL) − 1 m,
  T = max over A of dmin(u);
- `distance`: a reported distance is outside [dmin(u)·(1 − TOL) − 1 m, dmax(u)·(1 + TOL) + 1 m].

TOL = 0.3 %: Outpost and Redis measure on a sphere, which at San Francisco's latitude is off from the
ellipsoid by up to ±0.25 % depending on the bearing; nearer than that is a tie, whichever way it is ordered.
Candidates for `order` are found among the available units whose *initial* position lies within T plus the
largest drift of any unit so far (a planar bound with a 1 % margin), then measured exactly.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from pyproj import Geod

from benchmarks.fleet_stream import Fleet, LoggedFixes
from benchmarks.loadgen import Records

TOL = 0.003
SLACK_M = 1.0
_M_PER_DEG = 111_320.0
_GEOD = Geod(ellps="WGS84")


@dataclass
class Verdicts:
    """How many answers were checked and how many were wrong, by reason."""

    checked: int = 0
    wrong: Counter[str] = field(default_factory=Counter)

    @property
    def error_rate(self) -> float:
        """Wrong answers per answer checked (one reason counted per answer)."""
        return sum(self.wrong.values()) / self.checked if self.checked else 0.0


def _geodesic_m(lon: float, lat: float, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
    if not len(lons):
        return np.empty(0)
    _, _, dist = _GEOD.inv(np.full(len(lons), lon), np.full(len(lons), lat), lons, lats)
    return np.asarray(dist)


class Checker:
    """Replays the fix log alongside the requests (in order of their window's start) and judges each."""

    def __init__(self, fleet: Fleet, log: LoggedFixes, lag_s: float, k: int) -> None:
        self.fleet, self.log, self.k = fleet, log, k
        self.lag_ns = int(lag_s * 1e9)
        self.available = fleet.status_codes == 0
        self.index = {unit_id: i for i, unit_id in enumerate(fleet.ids)}
        self.lons, self.lats = fleet.lons.copy(), fleet.lats.copy()
        self.applied = 0
        self.drift_m = 0.0
        order = np.argsort(fleet.lons, kind="stable")
        self.by_lon = order[self.available[order]]
        self.sorted_lons = fleet.lons[self.by_lon]

    def _advance(self, t_ns: int) -> None:
        upto = int(np.searchsorted(self.log.t_ns, t_ns, side="right"))
        if upto <= self.applied:
            return
        idx = self.log.idx[self.applied : upto]
        self.lons[idx], self.lats[idx] = self.log.lon[self.applied : upto], self.log.lat[self.applied : upto]
        moved = np.hypot(
            (self.lons[idx] - self.fleet.lons[idx]) * _M_PER_DEG * math.cos(math.radians(37.76)),
            (self.lats[idx] - self.fleet.lats[idx]) * _M_PER_DEG,
        )
        self.drift_m = max(self.drift_m, float(moved.max()) * 1.01 + SLACK_M)
        self.applied = upto

    def _spread(self, lon: float, lat: float, units: np.ndarray, end: int) -> tuple[np.ndarray, np.ndarray]:
        """dmin, dmax of each of `units` over its position now and its fixes in the window (to `end`)."""
        d = _geodesic_m(lon, lat, self.lons[units], self.lats[units])
        dmin, dmax = d.copy(), d.copy()
        rows = np.nonzero(np.isin(self.log.idx[self.applied : end], units))[0] + self.applied
        if len(rows):
            slot = np.searchsorted(np.sort(units), self.log.idx[rows])
            where = np.argsort(units)[slot]
            dw = _geodesic_m(lon, lat, self.log.lon[rows], self.log.lat[rows])
            np.minimum.at(dmin, where, dw)
            np.maximum.at(dmax, where, dw)
        return dmin, dmax

    def judge(
        self, lon: float, lat: float, sent_ns: int, done_ns: int, ids: list[str], dists: list[float]
    ) -> str:
        """'' when the answer is right, else the reason it is wrong."""
        self._advance(sent_ns - self.lag_ns)
        end = int(np.searchsorted(self.log.t_ns, done_ns, side="right"))
        found = [self.index.get(i, -1) for i in ids]
        if len(set(found)) != len(found) or any(i < 0 or not self.available[i] for i in found):
            return "status"
        if len(found) < self.k:
            return "short"
        answered = np.array(found, dtype=np.int64)
        dmin, dmax = self._spread(lon, lat, answered, end)
        lo, hi = dmin * (1 - TOL) - SLACK_M, dmax * (1 + TOL) + SLACK_M
        if np.any((np.array(dists) < lo) | (np.array(dists) > hi)):
            return "distance"
        threshold_m = float(dmin.max())
        reach_m = threshold_m * 1.01 + self.drift_m + SLACK_M
        cos_lat = math.cos(math.radians(lat))
        span_deg = reach_m / (_M_PER_DEG * cos_lat)
        a, b = np.searchsorted(self.sorted_lons, [lon - span_deg, lon + span_deg])
        near = self.by_lon[a:b]
        near = near[np.abs(self.fleet.lats[near] - lat) * _M_PER_DEG <= reach_m]
        dx = (self.fleet.lons[near] - lon) * _M_PER_DEG * cos_lat
        dy = (self.fleet.lats[near] - lat) * _M_PER_DEG
        near = near[np.hypot(dx, dy) <= reach_m]
        others = np.setdiff1d(near, answered)
        if not len(others):
            return ""
        _, omax = self._spread(lon, lat, others, end)
        return "order" if np.any(omax < threshold_m * (1 - TOL) - SLACK_M) else ""


def check(fleet: Fleet, log: LoggedFixes, records: Records, lag_s: float, k: int) -> Verdicts:
    """Judge every recorded answer; the counts by reason."""
    checker = Checker(fleet, log, lag_s, k)
    verdicts = Verdicts()
    for j in np.argsort(np.array(records.sent_ns, dtype=np.int64), kind="stable").tolist():
        verdicts.checked += 1
        if records.http_status[j] != 200:
            verdicts.wrong["http"] += 1
            continue
        reason = checker.judge(
            records.lon[j],
            records.lat[j],
            records.sent_ns[j],
            records.done_ns[j],
            records.ids[j],
            records.distances_m[j],
        )
        if reason:
            verdicts.wrong[reason] += 1
    return verdicts
