"""The shipped road graph and the units driving on it."""

from __future__ import annotations

import itertools
import math
import random
from collections import defaultdict
from pathlib import Path

import pytest

from geo import haversine_m
from sim.simulate.build_roads import compact, parse_maxspeed, read_osm, way_edges
from sim.simulate.driving import RoadFleet
from sim.simulate.roads import DEFAULT_GRAPH_PATH, RoadGraph, shipped_graph


@pytest.fixture(scope="module")
def graph() -> RoadGraph:
    return shipped_graph()


def test_shipped_graph_loads_northern_san_francisco(graph: RoadGraph) -> None:
    west, south, east, north = graph.bbox
    assert graph.node_count > 10_000
    assert -122.50 < west < east < -122.39 and 37.77 < south < north < 37.82
    assert all(e.length_m > 0 and 2.0 < e.speed_mps < 25.0 for out in graph.out for e in out)


def test_shortest_paths_follow_roads_in_their_direction(graph: RoadGraph) -> None:
    rng = random.Random(7)
    for _ in range(10):
        a, b = rng.randrange(graph.node_count), rng.randrange(graph.node_count)
        path = graph.shortest_path(a, b)
        assert path[0] == a and path[-1] == b  # strongly connected: every node reaches every other
        assert all(graph.edge(u, v) is not None for u, v in itertools.pairwise(path))


def test_oneway_and_speed_rules() -> None:
    assert [(a, b) for a, b, _ in way_edges([1, 2, 3], {"highway": "residential", "oneway": "yes"})] == [
        (1, 2),
        (2, 3),
    ]
    assert [(a, b) for a, b, _ in way_edges([1, 2], {"highway": "primary", "oneway": "-1"})] == [(2, 1)]
    assert len(way_edges([1, 2], {"highway": "motorway"})) == 1  # implied oneway
    assert len(way_edges([1, 2], {"highway": "residential"})) == 2
    assert way_edges([1, 2], {"highway": "residential", "access": "private"}) == []
    assert way_edges([1, 2], {"highway": "footway"}) == []
    assert parse_maxspeed("25 mph") == pytest.approx(11.176)
    assert parse_maxspeed("50") == pytest.approx(13.889, abs=1e-3)
    assert parse_maxspeed("signals") is None
    ((_, _, speed),) = way_edges([1, 2], {"highway": "primary", "maxspeed": "35 mph", "oneway": "yes"})
    assert speed == pytest.approx(35 * 0.44704)


def test_shipped_graph_is_what_the_builder_makes_from_the_osm_extract(shared_data: Path) -> None:
    import gzip
    import json

    rebuilt = compact(read_osm(shared_data / "sf_north_roads_osm.osm"))
    shipped = json.loads(gzip.decompress(DEFAULT_GRAPH_PATH.read_bytes()))
    assert rebuilt == shipped


def test_units_report_valid_fixes_on_the_road_network(graph: RoadGraph) -> None:
    fleet = RoadFleet(graph, 8, interval_s=5.0, seed=3, gps_noise=False)
    west, south, east, north = graph.bbox
    by_device: dict[str, list[float]] = defaultdict(list)
    positions: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for minute in range(1, 31):
        for s in fleet.due(minute * 60.0):
            assert all(math.isfinite(v) for v in (s.lon, s.lat, s.speed_mps, s.heading_deg, s.acc_m))  # type: ignore[arg-type]
            assert west <= s.lon <= east and south <= s.lat <= north
            assert 0 <= s.speed_mps <= 25 and 0 <= s.heading_deg < 360  # type: ignore[operator]
            assert 0 < s.battery_pct <= 100  # type: ignore[operator]
            by_device[s.device_id].append(s.sim_s)
            positions[s.device_id].append((s.lon, s.lat))
    assert len(by_device) == 8
    for times in by_device.values():
        assert times == sorted(times) and len(times) == 360  # every 5 s for 30 min
        assert all(b - a == pytest.approx(5.0) for a, b in itertools.pairwise(times))
    for track in positions.values():
        steps = [haversine_m(*p, *q) for p, q in itertools.pairwise(track)]
        assert max(steps) <= 25 * 5.0  # never faster than the fastest road allows
        assert sum(steps) > 1000  # and they do drive: at least a kilometre in half an hour


def test_gps_scatter_stays_near_the_road(graph: RoadGraph) -> None:
    exact = RoadFleet(graph, 3, interval_s=10.0, seed=11, gps_noise=False)
    noisy = RoadFleet(graph, 3, interval_s=10.0, seed=11, gps_noise=True)
    for t in (60.0, 600.0):
        for a, b in zip(exact.due(t), noisy.due(t), strict=True):
            assert a.device_id == b.device_id
            assert a.speed_mps == b.speed_mps
            assert haversine_m(a.lon, a.lat, b.lon, b.lat) < 6 * 12.0  # 6 sigma of the worst accuracy
