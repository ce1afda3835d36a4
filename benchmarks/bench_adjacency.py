"""Benchmark grid adjacency as the incident loop uses it: `geo.adjacency.Adjacency`, built once per version
of the grids, then read by id; against `GridIndex.neighbours`, one STRtree query per call, in the same run.

    .venv/bin/python benchmarks/bench_adjacency.py [--rounds 20]

The grids are bench_grids.py's: the 51 SF districts and neighbourhoods, and 1,000 synthetic Voronoi cells.
Each round asks every grid's neighbours once (what the recommendation cascade asks per incident is the
neighbours of two grids). Build: one Adjacency from the index, best of 5. Best of 5 repeats for the reads.
With OUTPOST_BENCH_RESULT set, the figures are also written there as JSON. No figure here is an assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_grids import sf_grids, voronoi
from geo.adjacency import Adjacency
from geo.grids import Grid, GridIndex

ROW = "{:32} {:>6} {:>9} {:>12} {:>13} {:>8}"


def best_us(fn: Callable[[], object], calls: int) -> float:
    """Best of 5 runs of `fn`, in µs per call of the `calls` it makes."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        fn()
        best = min(best, (time.perf_counter_ns() - start) / calls / 1000)
    return best


def measure(label: str, grids: list[Grid], rounds: int) -> dict[str, float]:
    index = GridIndex(grids)
    ids = [g.id for g in grids] * rounds
    build_ms = best_us(lambda: Adjacency(index), 1) / 1000
    adjacency = Adjacency(index)
    read_us = best_us(lambda: [adjacency.neighbours(i) for i in ids], len(ids))
    query_us = best_us(lambda: [index.neighbours(i) for i in ids], len(ids))
    ratio = query_us / read_us
    print(
        ROW.format(label, len(grids), f"{build_ms:.1f}", f"{read_us:.3f}", f"{query_us:.1f}", f"{ratio:.0f}")
    )
    return {
        "grids": len(grids),
        "build_ms": build_ms,
        "read_us": read_us,
        "query_us": query_us,
        "ratio": ratio,
    }


def _rounds() -> int:
    """--rounds, by default fewer under OUTPOST_BENCH_QUICK=1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = 5 if os.environ.get("OUTPOST_BENCH_QUICK") == "1" else 20
    parser.add_argument("--rounds", type=int, default=default, help="asks of every grid per run")
    return int(parser.parse_args().rounds)


def main() -> None:
    rounds, rng = _rounds(), random.Random(42)
    suites = {
        "sf_51": ("SF districts + neighbourhoods", sf_grids()),
        "synthetic_1000": (
            "synthetic Voronoi (100 + 900)",
            voronoi("police", 100, rng) + voronoi("community", 900, rng),
        ),
    }
    print(f"grid adjacency benchmark: every grid's neighbours, {rounds} rounds, best of 5")
    print(ROW.format("grids", "count", "build ms", "read µs/call", "query µs/call", "ratio"))
    results = {key: measure(label, grids, rounds) for key, (label, grids) in suites.items()}
    print("ratio: GridIndex.neighbours (an STRtree query per call) / Adjacency.neighbours (built once)")
    if target := os.environ.get("OUTPOST_BENCH_RESULT"):
        Path(target).write_text(json.dumps(results), encoding="utf-8")


if __name__ == "__main__":
    main()
