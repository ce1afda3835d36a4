"""Where each simulated device is: a random walk inside an area, or a replayed real trace.

Both move at plausible speeds, so Outpost's impossible-speed rule stays quiet for the valid fleet and every
flag it raises is a finding, not noise we made.
"""

from __future__ import annotations

import csv
import gzip
import math
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from geo.distance import destination, haversine_m, initial_bearing_deg
from sim.loadtest.plan import BBox


@dataclass(frozen=True)
class Sample:
    """One position of one device (lon, lat in degrees)."""

    lon: float
    lat: float
    speed_mps: float
    heading_deg: float


class Motion(Protocol):
    """A device's path: its position `at` a time in seconds since the run started."""

    def at(self, t_s: float) -> Sample:
        """The device's position at run time `t_s` (non-decreasing between calls)."""
        ...


class RandomWalk:
    """A patrol wandering in `area` at 2..15 m/s, turning a little at each step, bouncing off the edges."""

    def __init__(self, area: BBox, rng: random.Random) -> None:
        self.area = area
        min_lon, min_lat, max_lon, max_lat = area
        self.lon = rng.uniform(min_lon, max_lon)
        self.lat = rng.uniform(min_lat, max_lat)
        self.speed_mps = rng.uniform(2.0, 15.0)
        self.heading_deg = rng.uniform(0.0, 360.0)
        self.t_s = 0.0
        self._rng = rng

    def at(self, t_s: float) -> Sample:
        """Advance the walk to `t_s` and return the position there."""
        dt_s = max(0.0, t_s - self.t_s)
        self.t_s = max(self.t_s, t_s)
        self.heading_deg = (self.heading_deg + self._rng.gauss(0.0, 15.0)) % 360.0
        lon, lat = destination(self.lon, self.lat, self.heading_deg, self.speed_mps * dt_s)
        min_lon, min_lat, max_lon, max_lat = self.area
        if not (min_lon <= lon <= max_lon and min_lat <= lat <= max_lat):
            # Turn back and stay put for this step: never leaves the area, never jumps.
            self.heading_deg = (self.heading_deg + 180.0) % 360.0
            lon, lat = self.lon, self.lat
        self.lon, self.lat = lon, lat
        return Sample(lon, lat, self.speed_mps, self.heading_deg)


@dataclass(frozen=True)
class Trace:
    """One object's recorded path: epoch seconds and positions, sorted by time."""

    object_id: str
    t_s: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    lat: npt.NDArray[np.float64]


class TraceReplay:
    """A real trace replayed in real time from `offset_s` into it, looping; positions interpolated."""

    def __init__(self, trace: Trace, offset_s: float) -> None:
        self.trace = trace
        self.span_s = max(1.0, float(trace.t_s[-1] - trace.t_s[0]))
        self.offset_s = offset_s % self.span_s

    def at(self, t_s: float) -> Sample:
        """The interpolated position `t_s` seconds after the replay's start."""
        tr = self.trace
        rel = tr.t_s[0] + (self.offset_s + t_s) % self.span_s
        lon = float(np.interp(rel, tr.t_s, tr.lon))
        lat = float(np.interp(rel, tr.t_s, tr.lat))
        # Speed and heading of the recorded segment we are on.
        i = int(np.clip(np.searchsorted(tr.t_s, rel), 1, len(tr.t_s) - 1))
        dt_s = float(tr.t_s[i] - tr.t_s[i - 1]) or 1.0
        a = (float(tr.lon[i - 1]), float(tr.lat[i - 1]))
        b = (float(tr.lon[i]), float(tr.lat[i]))
        speed_mps = haversine_m(a[0], a[1], b[0], b[1]) / dt_s
        heading_deg = initial_bearing_deg(a[0], a[1], b[0], b[1]) if a != b else 0.0
        return Sample(lon, lat, speed_mps, heading_deg)


def load_traces(path: Path, min_points: int = 2) -> list[Trace]:
    """Read `object_id,ts_iso8601_utc,lat,lon` CSV (optionally gzipped), one `Trace` per object."""
    rows: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        for rec in csv.DictReader(f):
            lat, lon = float(rec["lat"]), float(rec["lon"])
            if not (math.isfinite(lat) and math.isfinite(lon)):
                continue
            t_s = datetime.fromisoformat(rec["ts_iso8601_utc"].replace("Z", "+00:00")).timestamp()
            rows[rec["object_id"]].append((t_s, lon, lat))
    traces = []
    for object_id, points in sorted(rows.items()):
        if len(points) < min_points:
            continue
        arr = np.array(sorted(points), dtype=np.float64)
        traces.append(Trace(object_id, arr[:, 0], arr[:, 1], arr[:, 2]))
    if not traces:
        raise ValueError(f"{path}: no object with at least {min_points} fixes")
    return traces


def build_motions(count: int, area: BBox, seed: int, traces: list[Trace] | None = None) -> list[Motion]:
    """`count` device paths: replayed traces (round robin, staggered in time) or random walks in `area`."""
    rng = random.Random(seed)
    if traces:
        return [TraceReplay(traces[i % len(traces)], offset_s=rng.uniform(0, 3600)) for i in range(count)]
    return [RandomWalk(area, random.Random(rng.getrandbits(64))) for _ in range(count)]
