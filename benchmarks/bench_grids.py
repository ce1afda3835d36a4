"""Benchmark the point-in-grid lookup (geo.GridIndex.locate): per-fix time with the 51 SF grids and 1,000
synthetic grids, against a bare shapely STRtree query over the same geometries in the same run.

    .venv/bin/python benchmarks/bench_grids.py [--n 20000]

- SF: the 10 police districts and 41 analysis neighbourhoods shipped in sim/data (6,588 + 3,300 vertices).
- synthetic: 100 police and 900 community Voronoi cells tiling the same box (simple polygons, ~6 vertices).
Fixes are uniform over the San Francisco box (-122.52, 37.70, -122.35, 37.84): some fall outside every grid.
`locate` answers both levels (one STRtree query per level, then an exact covers test on prepared geometries
and the deterministic border rule); the baseline is `STRtree.query(Point, predicate="intersects")` over all
the grids at once (one query, no per-level answer, no tie rule). Best of 5 repeats. With OUTPOST_BENCH_RESULT
set, the figures are also written there as JSON. No figure here is an assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable

import shapely
from shapely import STRtree
from shapely.geometry import Point, box

from geo.boundaries import parent_by_area, read_boundary
from geo.grids import Grid, GridIndex, Level, as_geometry
from sim.simulate.build_demo_data import DISTRICTS_PATH, NEIGHBORHOODS_PATH

BBOX = (-122.52, 37.70, -122.35, 37.84)
ROW = "{:32} {:>6} {:>9} {:>10} {:>10} {:>6} {:>7}"


def sf_grids() -> list[Grid]:
    def load(path: object, level: Level, prop: str) -> list[Grid]:
        features = json.loads(path.read_text(encoding="utf-8"))["features"]  # type: ignore[attr-defined]
        return [
            Grid(f"{level}-{k}", level, f["properties"][prop], None, read_boundary(f["geometry"]).geometry)
            for k, f in enumerate(features)
        ]

    police = load(DISTRICTS_PATH, "police", "district")
    community = []
    for g in load(NEIGHBORHOODS_PATH, "community", "neighborhood"):
        best, _ = parent_by_area(g.geometry, police)
        community.append(Grid(g.id, g.level, g.name, best.grid_id if best else None, g.geometry))
    return police + community


def voronoi(level: Level, n: int, rng: random.Random) -> list[Grid]:
    frame = box(*BBOX)
    seeds = shapely.MultiPoint(
        [(rng.uniform(BBOX[0], BBOX[2]), rng.uniform(BBOX[1], BBOX[3])) for _ in range(n)]
    )
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=frame))
    return [
        Grid(f"{level}-{k}", level, f"{level} {k}", None, as_geometry(c.intersection(frame)))
        for k, c in enumerate(cells)
    ]


def ns_per_fix(fn: Callable[[float, float], object], points: list[tuple[float, float]]) -> float:
    """Best of 5 repeats over all points, in ns per fix."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        for lon, lat in points:
            fn(lon, lat)
        best = min(best, (time.perf_counter_ns() - start) / len(points))
    return best


def measure(label: str, grids: list[Grid], points: list[tuple[float, float]]) -> dict[str, float]:
    index = GridIndex(grids)
    tree = STRtree([g.geometry for g in grids])

    def bare(lon: float, lat: float) -> object:
        return tree.query(Point(lon, lat), predicate="intersects")

    located = sum(1 for p in points if index.locate(*p).police is not None) / len(points)
    locate_ns = ns_per_fix(index.locate, points)
    bare_ns = ns_per_fix(bare, points)
    vertices = int(sum(shapely.get_num_coordinates([g.geometry for g in grids])))
    ratio = locate_ns / bare_ns
    cells = (
        label,
        len(grids),
        f"{vertices:,}",
        f"{locate_ns:.0f}",
        f"{bare_ns:.0f}",
        f"{ratio:.2f}",
        f"{located:.0%}",
    )
    print(ROW.format(*cells))
    return {"grids": len(grids), "locate_ns": locate_ns, "strtree_ns": bare_ns, "ratio": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    parser.add_argument("--n", type=int, default=5_000 if quick else 20_000, help="fixes per repeat")
    n = parser.parse_args().n
    rng = random.Random(42)
    points = [(rng.uniform(BBOX[0], BBOX[2]), rng.uniform(BBOX[1], BBOX[3])) for _ in range(n)]
    print(f"geo.GridIndex.locate benchmark: {n:,} fixes uniform over the SF box, best of 5")
    header = ("grids", "count", "vertices", "locate ns", "STRtree ns", "ratio", "policed")
    print(ROW.format(*header))
    results = {
        "sf_51": measure("SF districts + neighbourhoods", sf_grids(), points),
        "synthetic_1000": measure(
            "synthetic Voronoi (100 + 900)",
            voronoi("police", 100, rng) + voronoi("community", 900, rng),
            points,
        ),
    }
    print("ratio: locate (both levels, exact, tie rule) / one bare STRtree query with predicate=intersects;")
    print("policed: share of fixes inside a police grid")
    if path := os.environ.get("OUTPOST_BENCH_RESULT"):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(results, f)


if __name__ == "__main__":
    main()
