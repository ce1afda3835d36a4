"""The directed road graph simulated units drive on (built by `build_roads` from OpenStreetMap).

Shipped as sim/data/sf_north_roads.json.gz: node coordinates in 1e-6 degrees and flat
(from, to, speed dm/s) edge triples; edge lengths are computed at load. Shortest paths minimise travel time.
Map data © OpenStreetMap contributors, ODbL 1.0.
"""

from __future__ import annotations

import gzip
import heapq
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from geo import haversine_m

GRAPH_FORMAT = "outpost-roads-1"
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
DEFAULT_GRAPH_PATH = DATA_DIR / "sf_north_roads.json.gz"


@dataclass(frozen=True)
class Edge:
    """One directed road segment."""

    to: int
    length_m: float
    speed_mps: float


class RoadGraph:
    """Nodes (lon, lat) and directed edges with speed limits; shortest paths by travel time."""

    def __init__(self, lon: list[float], lat: list[float], edges: list[tuple[int, int, float]]) -> None:
        """`edges`: (from, to, speed m/s) over node indices."""
        self.lon = lon
        self.lat = lat
        self.out: list[list[Edge]] = [[] for _ in lon]
        for a, b, speed_mps in edges:
            self.out[a].append(Edge(b, haversine_m(lon[a], lat[a], lon[b], lat[b]), speed_mps))
        self.bbox = (min(lon), min(lat), max(lon), max(lat))

    @property
    def node_count(self) -> int:
        """Number of nodes."""
        return len(self.lon)

    def edge(self, a: int, b: int) -> Edge | None:
        """The edge a -> b, if the road allows driving that way."""
        return next((e for e in self.out[a] if e.to == b), None)

    def nearest_node(self, lon: float, lat: float) -> int:
        """The node closest to a point (linear scan: called once per unit, not per fix)."""
        return min(range(len(self.lon)), key=lambda i: haversine_m(lon, lat, self.lon[i], self.lat[i]))

    def shortest_path(self, source: int, target: int) -> list[int]:
        """Fastest route as node indices from source to target (Dijkstra); [] if unreachable."""
        best = {source: 0.0}
        prev: dict[int, int] = {}
        heap = [(0.0, source)]
        while heap:
            t_s, node = heapq.heappop(heap)
            if node == target:
                break
            if t_s > best[node]:
                continue
            for e in self.out[node]:
                cand = t_s + e.length_m / e.speed_mps
                if cand < best.get(e.to, float("inf")):
                    best[e.to] = cand
                    prev[e.to] = node
                    heapq.heappush(heap, (cand, e.to))
        if target not in best:
            return []
        path = [target]
        while path[-1] != source:
            path.append(prev[path[-1]])
        path.reverse()
        return path


def load_graph(path: Path = DEFAULT_GRAPH_PATH) -> RoadGraph:
    """Read a graph written by `python -m sim.simulate.build_roads`."""
    doc = json.loads(gzip.decompress(path.read_bytes()))
    if doc.get("format") != GRAPH_FORMAT:
        raise ValueError(
            f"{path}: not an {GRAPH_FORMAT} road graph; rebuild it with sim.simulate.build_roads"
        )
    lon = [v / 1e6 for v in doc["lon_e6"]]
    lat = [v / 1e6 for v in doc["lat_e6"]]
    flat = doc["edge_from_to_speed_dmps"]
    edges = [(flat[i], flat[i + 1], flat[i + 2] / 10) for i in range(0, len(flat), 3)]
    return RoadGraph(lon, lat, edges)


@cache
def shipped_graph() -> RoadGraph:
    """The northern San Francisco graph shipped in sim/data (loaded once per process)."""
    return load_graph(DEFAULT_GRAPH_PATH)
