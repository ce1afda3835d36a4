"""Patrol units driving the road graph: random destinations, fastest routes, realistic speeds, stops.

Each unit drives its route at a fraction of each road's speed limit (its own "traffic" factor), stays at its
destination for a while (a call, a break), then picks another. Motion is advanced lazily, only when the unit
reports, so a unit costs nothing between fixes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from geo import initial_bearing_deg
from sim.simulate.roads import RoadGraph
from sim.simulate.sample import Sample, Schedule

_M_PER_DEG_LAT = 111_320.0
_DWELL_S = (20.0, 180.0)  # time at a destination before driving on
_TRAFFIC = (0.55, 0.9)  # share of the speed limit a unit drives at
_BATTERY_DRAIN_PCT_PER_S = 10 / 3600  # a phone loses about 10 %/h with GPS on


@dataclass
class RoadUnit:
    """One unit's progress: the route it follows, where on it, and until when it stays put."""

    device_id: str
    node: int  # the node the unit is at, or the start of the edge it is on
    traffic: float
    battery_pct: float
    route: list[int] = field(default_factory=list)  # nodes still ahead, the next one first
    along_m: float = 0.0  # metres driven along the current edge (node -> route[0])
    dwell_until_s: float = 0.0
    sim_s: float = 0.0
    heading_deg: float = 0.0
    speed_mps: float = 0.0
    dark_until_s: float = 0.0  # in a dead spot (no signal): it drives on but reports nothing until then


class RoadFleet:
    """`n` units on a road graph reporting every `interval_s` simulated seconds (a `Source`)."""

    def __init__(
        self,
        graph: RoadGraph,
        n: int,
        interval_s: float,
        *,
        prefix: str = "patrol",
        seed: int = 0,
        gps_noise: bool = True,
    ) -> None:
        """`gps_noise`: scatter each fix by its reported accuracy (about acc_m / 2, like a real receiver)."""
        self.graph = graph
        self.rng = random.Random(seed)
        # Scatter draws from its own generator, so switching it off does not change where units drive.
        self.noise_rng = random.Random(seed + 1)
        self.gps_noise = gps_noise
        self.units = [
            RoadUnit(
                f"{prefix}-{i + 1:04d}",
                self.rng.randrange(graph.node_count),
                self.rng.uniform(*_TRAFFIC),
                self.rng.uniform(60.0, 100.0),
            )
            for i in range(n)
        ]
        self._by_device = {u.device_id: u for u in self.units}
        self.schedule = Schedule(n, interval_s, [self.rng.uniform(0, interval_s) for _ in range(n)])

    def next_due_s(self) -> float | None:
        """Simulated time of the next report."""
        return self.schedule.next_due_s()

    def due(self, sim_s: float) -> list[Sample]:
        """Advance and sample every unit due by `sim_s`."""
        out = []
        for at_s, i in self.schedule.pop_due(sim_s):
            unit = self.units[i]
            self.advance(unit, at_s)
            if at_s >= unit.dark_until_s:
                out.append(self.sample(unit))
        return out

    # ------------------------------------------------------------------------------------------- dispatch
    def send_to(self, device_id: str, lon: float, lat: float) -> bool:
        """Send the unit reporting as `device_id` to (lon, lat); it stays there until `release`d."""
        unit = self._by_device.get(device_id)
        if unit is None:
            return False
        start = unit.route[0] if unit.route else unit.node  # finish the edge it is on first
        path = self.graph.shortest_path(start, self.graph.nearest_node(lon, lat))
        unit.route = ([start] if unit.route else []) + path[1:]
        unit.dwell_until_s = math.inf  # on the call until released
        return True

    def go_dark(self, device_id: str, for_s: float) -> bool:
        """The unit reporting as `device_id` loses its signal for `for_s` simulated seconds (a dead spot)."""
        unit = self._by_device.get(device_id)
        if unit is None:
            return False
        unit.dark_until_s = unit.sim_s + for_s
        return True

    def release(self, device_id: str) -> None:
        """The unit is free again: it resumes patrolling from where it is."""
        unit = self._by_device.get(device_id)
        if unit is not None:
            unit.dwell_until_s = unit.sim_s

    # -------------------------------------------------------------------------------------------- motion
    def advance(self, unit: RoadUnit, to_s: float) -> None:
        """Move `unit` along its route until simulated time `to_s`."""
        left_s = to_s - unit.sim_s
        unit.battery_pct = max(1.0, unit.battery_pct - left_s * _BATTERY_DRAIN_PCT_PER_S)
        if unit.battery_pct < 15.0:
            unit.battery_pct = 100.0  # charged in the car
        while left_s > 1e-9:
            t_s = to_s - left_s
            if not unit.route:
                if unit.dwell_until_s > t_s:
                    unit.speed_mps = 0.0
                    left_s -= min(left_s, unit.dwell_until_s - t_s)
                    continue
                self._new_route(unit)
                if not unit.route:  # already at the chosen node: stay a while
                    unit.dwell_until_s = t_s + self.rng.uniform(*_DWELL_S)
                continue
            left_s = self._drive(unit, left_s, t_s)
        unit.sim_s = to_s

    def _new_route(self, unit: RoadUnit) -> None:
        target = self.rng.randrange(self.graph.node_count)
        unit.route = self.graph.shortest_path(unit.node, target)[1:]
        unit.along_m = 0.0

    def _drive(self, unit: RoadUnit, left_s: float, t_s: float) -> float:
        """Drive along the current edge for at most `left_s`; returns the time left."""
        edge = self.graph.edge(unit.node, unit.route[0])
        if edge is None:  # cannot happen with routes from the graph; recover rather than stall
            unit.route = []
            return left_s
        g = self.graph
        unit.speed_mps = edge.speed_mps * unit.traffic
        unit.heading_deg = initial_bearing_deg(
            g.lon[unit.node], g.lat[unit.node], g.lon[edge.to], g.lat[edge.to]
        )
        remaining_m = edge.length_m - unit.along_m
        need_s = remaining_m / unit.speed_mps
        if need_s > left_s:
            unit.along_m += left_s * unit.speed_mps
            return 0.0
        unit.node = unit.route.pop(0)
        unit.along_m = 0.0
        if not unit.route and unit.dwell_until_s != math.inf:
            unit.dwell_until_s = t_s + need_s + self.rng.uniform(*_DWELL_S)
        return left_s - need_s

    # ---------------------------------------------------------------------------------------- reporting
    def position(self, unit: RoadUnit) -> tuple[float, float]:
        """Exact (lon, lat) of the unit, interpolated along its edge."""
        g = self.graph
        lon, lat = g.lon[unit.node], g.lat[unit.node]
        if unit.route and unit.along_m > 0:
            edge = g.edge(unit.node, unit.route[0])
            if edge is not None and edge.length_m > 0:
                f = min(1.0, unit.along_m / edge.length_m)
                lon += (g.lon[edge.to] - lon) * f
                lat += (g.lat[edge.to] - lat) * f
        return lon, lat

    def sample(self, unit: RoadUnit) -> Sample:
        """The unit's report: position (with GPS scatter), speed, heading, accuracy, battery."""
        lon, lat = self.position(unit)
        acc_m = round(self.noise_rng.uniform(3.0, 12.0), 1)
        if self.gps_noise:
            scatter_m = acc_m / 2
            lat += self.noise_rng.gauss(0.0, scatter_m) / _M_PER_DEG_LAT
            lon += self.noise_rng.gauss(0.0, scatter_m) / (_M_PER_DEG_LAT * math.cos(math.radians(lat)))
        return Sample(
            unit.device_id,
            unit.sim_s,
            round(lon, 7),
            round(lat, 7),
            round(unit.speed_mps, 2),
            round(unit.heading_deg, 1),
            acc_m,
            round(unit.battery_pct, 1),
        )
