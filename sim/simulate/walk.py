"""A cheap synthetic fleet for load tests: thousands of devices wandering randomly inside a box."""

from __future__ import annotations

import math
import random

from sim.simulate.sample import Sample, Schedule

_M_PER_DEG_LAT = 111_320.0
# Northern San Francisco (the road graph's box): the default playground.
SF_NORTH_BBOX = (-122.4925, 37.7729, -122.3939, 37.8110)


class WalkFleet:
    """`n` devices on a correlated random walk within `bbox` (west, south, east, north), bouncing at edges."""

    def __init__(
        self,
        n: int,
        interval_s: float,
        *,
        bbox: tuple[float, float, float, float] = SF_NORTH_BBOX,
        prefix: str = "walk",
        seed: int = 0,
    ) -> None:
        self.rng = random.Random(seed)
        self.bbox = bbox
        west, south, east, north = bbox
        self.ids = [f"{prefix}-{i + 1:05d}" for i in range(n)]
        self.lon = [self.rng.uniform(west, east) for _ in range(n)]
        self.lat = [self.rng.uniform(south, north) for _ in range(n)]
        self.heading_deg = [self.rng.uniform(0, 360) for _ in range(n)]
        self.speed_mps = [self.rng.uniform(0, 15) for _ in range(n)]
        self.last_s = [0.0] * n
        self.schedule = Schedule(n, interval_s, [self.rng.uniform(0, interval_s) for _ in range(n)])

    def next_due_s(self) -> float | None:
        """Simulated time of the next report."""
        return self.schedule.next_due_s()

    def due(self, sim_s: float) -> list[Sample]:
        """Step and sample every device due by `sim_s`."""
        return [self._step(i, at_s) for at_s, i in self.schedule.pop_due(sim_s)]

    def _step(self, i: int, at_s: float) -> Sample:
        dt_s = at_s - self.last_s[i]
        self.last_s[i] = at_s
        rng = self.rng
        heading = (self.heading_deg[i] + rng.gauss(0, 25)) % 360
        speed = min(20.0, max(0.0, self.speed_mps[i] + rng.gauss(0, 1.5)))
        rad = math.radians(heading)
        lat = self.lat[i] + speed * dt_s * math.cos(rad) / _M_PER_DEG_LAT
        lon = self.lon[i] + speed * dt_s * math.sin(rad) / (_M_PER_DEG_LAT * math.cos(math.radians(lat)))
        west, south, east, north = self.bbox
        if not west <= lon <= east:  # bounce off the east or west edge
            lon = min(east, max(west, lon))
            heading = (360 - heading) % 360
        if not south <= lat <= north:
            lat = min(north, max(south, lat))
            heading = (180 - heading) % 360
        self.lon[i], self.lat[i], self.heading_deg[i], self.speed_mps[i] = lon, lat, heading, speed
        return Sample(
            self.ids[i],
            at_s,
            round(lon, 7),
            round(lat, 7),
            round(speed, 2),
            round(heading, 1),
            round(rng.uniform(3, 15), 1),
            80.0,
        )
