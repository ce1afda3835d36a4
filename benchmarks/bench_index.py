"""Benchmark the live position index (geo.PositionIndex) at 10k, 100k and 1M units over San Francisco.

    .venv/bin/python benchmarks/bench_index.py [--sizes 10000,100000,1000000] [--json out.json]

Per size, each in a fresh process (so memory deltas do not reuse an earlier size's heap):
- nearest: k=5, statuses={"available"}, exact in metres, random query points in the same box;
- move: upsert of an existing unit to a point within ~30 m, right after bulk load and once settled by up to
  300k moves (bulk loading packs nodes at the minimum fill, so the first delete from each leaf dissolves it);
- insert of new units, remove, set_status, bulk-load time, memory per unit (RSS delta over building the
  entries and bulk loading them).
Baselines measured in the same run: a brute-force numpy haversine scan for the same nearest query, and raw
rtree (the same 3-D points, public API, built by insertion) with default vs tuned Property for move, delete
and k-NN. The headline ratio (our filtered nearest / the bare tuned tree's unfiltered k-NN) is also measured
side by side, the two alternating query by query, since figures taken a minute apart on a shared machine
can differ by half. Also the tree calls alone of the filtered query in one tree and in two trees partitioned
by status (the available, the rest), the design geo/index.py's docstring weighs.

Units are uniform over the San Francisco box (-122.52, 37.70, -122.35, 37.83). Statuses: available 40 %,
busy 15 %, assigned, en_route, on_scene 10 % each, offered, off_duty, out_of_service 5 % each, break 0 %
(kept at zero so the figures compare with those before `break` existed); so the status filter passes 40 %
of units and the search must examine about 2.5x k candidates.

OUTPOST_BENCH_QUICK=1 runs 10k and 100k with fewer repetitions. With OUTPOST_BENCH_RESULT set, the figures are
also written there as JSON (see benchmarks/run_all.py). No figure here is an assertion.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import multiprocessing
import os
import platform
import random
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rtree import index as rtree_index

from geo import EARTH_RADIUS_M, STATUSES, PositionIndex, UnitPosition
from geo._tree import SphereTree, _prototype, _unconverted, sphere_point, tuned_properties

BBOX = (-122.52, 37.70, -122.35, 37.83)
STATUS_WEIGHTS = {"available": 40, "busy": 15, "assigned": 10, "en_route": 10, "on_scene": 10,
                  "offered": 5, "off_duty": 5, "out_of_service": 5, "break": 0}  # fmt: skip
assert set(STATUS_WEIGHTS) == STATUSES
K = 5
MOVE_JITTER_DEG = 0.0003  # ~30 m: a fix a few seconds after the last one


def percentiles_us(samples_ns: list[int]) -> dict[str, float]:
    s = sorted(samples_ns)
    return {"p50_us": s[len(s) // 2] / 1e3, "p99_us": s[min(len(s) - 1, int(len(s) * 0.99))] / 1e3}


def timed(fn: Callable[[int], object], reps: int) -> dict[str, float]:
    samples: list[int] = []
    clock = time.perf_counter_ns
    for i in range(reps):
        t0 = clock()
        fn(i)
        samples.append(clock() - t0)
    return percentiles_us(samples)


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: peak RSS is the best portable figure
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def random_point(rng: random.Random) -> tuple[float, float]:
    return rng.uniform(BBOX[0], BBOX[2]), rng.uniform(BBOX[1], BBOX[3])


def nudge(rng: random.Random, lon: float, lat: float) -> tuple[float, float]:
    lon = min(max(lon + rng.uniform(-MOVE_JITTER_DEG, MOVE_JITTER_DEG), BBOX[0]), BBOX[2])
    lat = min(max(lat + rng.uniform(-MOVE_JITTER_DEG, MOVE_JITTER_DEG), BBOX[1]), BBOX[3])
    return lon, lat


class Fleet:
    """The index under test plus what the benchmark needs to drive it (positions, a clock)."""

    def __init__(self, n: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.n = n
        self.coords = [random_point(self.rng) for _ in range(n)]
        self.statuses = self.rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()), k=n)
        self.index = PositionIndex()
        self.clock_s = 1_000.0

    def load(self) -> tuple[float, float]:
        """Build the entries and bulk load them: (seconds, bytes per unit by RSS delta)."""
        gc.collect()
        rss0 = rss_bytes()
        pairs = zip(self.coords, self.statuses, strict=True)
        entries = [UnitPosition(f"u{i}", lon, lat, 0.0, status=s) for i, ((lon, lat), s) in enumerate(pairs)]
        t0 = time.perf_counter()
        self.index.bulk_load(entries)
        load_s = time.perf_counter() - t0
        del entries  # the index keeps the entries themselves
        gc.collect()
        return load_s, (rss_bytes() - rss0) / self.n

    def move(self, _: int) -> None:
        i = self.rng.randrange(self.n)
        lon, lat = self.coords[i] = nudge(self.rng, *self.coords[i])
        self.clock_s += 0.001
        self.index.upsert(f"u{i}", lon, lat, self.clock_s)


def numpy_scan(fleet: Fleet) -> Callable[[float, float], list[int]]:
    """The baseline: haversine over every unit with numpy, status mask, partial sort for the k nearest."""
    lon_r = np.radians(np.array([c[0] for c in fleet.coords]))
    lat_r = np.radians(np.array([c[1] for c in fleet.coords]))
    cos_lat = np.cos(lat_r)
    available = np.array([s == "available" for s in fleet.statuses])

    def nearest(lon: float, lat: float) -> list[int]:
        q_lon, q_lat = math.radians(lon), math.radians(lat)
        a = np.sin((lat_r - q_lat) / 2) ** 2 + math.cos(q_lat) * cos_lat * np.sin((lon_r - q_lon) / 2) ** 2
        d_m = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a))
        d_m[~available] = np.inf
        top = np.argpartition(d_m, K)[:K]
        return [int(i) for i in top[np.argsort(d_m[top])]]

    return nearest


def raw_rtree(
    fleet: Fleet, props: rtree_index.Property, reps: int, side_by_side: bool = False
) -> dict[str, Any]:
    """Move (delete + insert), delete and k-NN on a bare rtree of the same 3-D points, public API.

    Built by inserting the points one by one (random order), so both property sets are measured in the
    steady state of a dynamic tree, free of bulk loading's minimum-fill artefact. With side_by_side, our
    filtered nearest and the bare tree's unfiltered k-NN are first timed alternately (see `alternate`).
    """
    rng = random.Random(7)
    boxes = [sphere_point(*c)[3:] * 2 for c in fleet.coords]
    t0 = time.perf_counter()
    tree = rtree_index.Index(properties=props)
    for i, box in enumerate(boxes):
        tree.insert(i, box)
    result: dict[str, Any] = {"insert_build_s": time.perf_counter() - t0}
    if side_by_side:
        result["side_by_side"] = alternate(fleet, tree, reps)

    def move(_: int) -> None:
        i = rng.randrange(fleet.n)
        tree.delete(i, boxes[i])
        boxes[i] = sphere_point(*nudge(rng, *fleet.coords[i]))[3:] * 2
        tree.insert(i, boxes[i])

    result["move"] = timed(move, reps)
    q = [sphere_point(*random_point(rng))[3:] * 2 for _ in range(reps)]
    result["nearest_k5_unfiltered"] = timed(lambda j: list(tree.nearest(q[j], K)), reps)

    def delete(_: int) -> None:
        i = rng.randrange(fleet.n)
        tree.delete(i, boxes[i])

    result["delete"] = timed(delete, reps)
    return result


def alternate(fleet: Fleet, tree: rtree_index.Index, reps: int) -> dict[str, Any]:
    """Our nearest (status filter, excluded counts read) and the bare tree's unfiltered k-NN on the same
    query, in random order query by query: on a shared machine the load then skews both alike, so their
    ratio holds where the ratio of figures measured a minute apart does not."""
    rng = random.Random(11)
    queries = [random_point(rng) for _ in range(2 * reps)]
    boxes = [sphere_point(*q)[3:] * 2 for q in queries]
    index = fleet.index
    ours: list[int] = []
    bare: list[int] = []
    clock = time.perf_counter_ns
    for (lon, lat), box in zip(queries, boxes, strict=True):
        first_ours = rng.random() < 0.5
        for turn in (first_ours, not first_ours):
            t0 = clock()
            if turn:
                _ = index.nearest(lon, lat, K, statuses=("available",)).excluded
                ours.append(clock() - t0)
            else:
                list(tree.nearest(box, K))
                bare.append(clock() - t0)
    return {"nearest": percentiles_us(ours), "rtree_k5_unfiltered": percentiles_us(bare)}


def partition_costs(fleet: Fleet, reps: int) -> dict[str, Any]:
    """The tree calls alone (no Python refine) of the filtered query, in one tree and partitioned.

    one tree: the k-NN of PositionIndex's first fetch for k=5 among 40 % available (18 candidates). Two
    trees (the available, the rest; each unit in one): a k-NN of 5 in the first, then, for the exact
    `excluded` counts, the ids in the 3-D box around the chord ball of the 5th (Index_Intersects_id) in
    the second, or only their number (Index_Intersects_count, which would not even be exact).
    """
    geo = [sphere_point(*c) for c in fleet.coords]
    avail = [i for i, s in enumerate(fleet.statuses) if s == "available"]
    rest = [i for i, s in enumerate(fleet.statuses) if s != "available"]
    one, t_avail, t_rest = (
        SphereTree((i, geo[i][3:] * 2, None) for i in ids) for ids in (range(fleet.n), avail, rest)
    )
    want = math.ceil(K / (len(avail) / fleet.n) * 1.2) + 2
    lo, hi = (ctypes.c_double * 3)(), (ctypes.c_double * 3)()
    found = ctypes.POINTER(ctypes.c_int64)()
    count = ctypes.c_uint64(0)
    intersects, intersects_count, free = (
        _prototype("Index_Intersects_id"),
        _prototype("Index_Intersects_count"),
        _unconverted("Index_Free"),
    )
    handle = t_rest._handle
    rng = random.Random(13)
    qs = [sphere_point(*random_point(rng)) for _ in range(reps)]

    def box(q: tuple[float, ...]) -> None:
        fifth = geo[t_avail.nearest(q[3], q[4], q[5], K)[-1]]
        r = math.dist(fifth[3:], q[3:]) * (1.0 + 1e-12) + 1e-11
        for d in range(3):
            lo[d], hi[d] = q[3 + d] - r, q[3 + d] + r

    def by_ids(j: int) -> None:
        box(qs[j])
        intersects(handle, lo, hi, 3, ctypes.byref(found), ctypes.byref(count))
        _ = found[: count.value]
        free(found)

    def by_count(j: int) -> None:
        box(qs[j])
        intersects_count(handle, lo, hi, 3, ctypes.byref(count))

    return {
        "one_tree_knn": timed(lambda j: one.nearest(qs[j][3], qs[j][4], qs[j][5], want), reps),
        "avail_knn_rest_ids": timed(by_ids, reps),
        "avail_knn_rest_count": timed(by_count, reps),
    }


def status_flip(fleet: Fleet) -> Callable[[int], None]:
    """set_status of a random unit between available and busy (a dispatcher's offer, an arrival...)."""

    def flip(_: int) -> None:
        i = fleet.rng.randrange(fleet.n)
        fleet.statuses[i] = "busy" if fleet.statuses[i] == "available" else "available"
        fleet.index.set_status(f"u{i}", fleet.statuses[i])

    return flip


def bench_size(n: int, quick: bool) -> dict[str, Any]:
    """Every figure for one size (run in a child process)."""
    reps = 1_000 if n >= 1_000_000 else 3_000
    reps = reps // 3 if quick else reps
    fleet = Fleet(n, seed=n)
    out: dict[str, Any] = {"units": n}
    out["bulk_load_s"], out["bytes_per_unit"] = fleet.load()
    out["move_fresh"] = timed(fleet.move, min(reps, 2_000))
    warm = min(n, 300_000)  # enough moves for most bulk-loaded leaves to have been touched
    for i in range(warm):
        fleet.move(i)
    out["move"] = timed(fleet.move, reps)
    queries = [random_point(fleet.rng) for _ in range(reps)]

    def nearest(j: int) -> None:
        fleet.index.nearest(*queries[j], K, statuses=("available",))

    out["nearest"] = timed(nearest, reps)
    out["nearest_unfiltered"] = timed(lambda j: fleet.index.nearest(*queries[j], K), reps)
    scan = numpy_scan(fleet)
    probe = fleet.index.nearest(*queries[0], K, statuses=("available",))
    same = [n_.entry.unit_id for n_ in probe.neighbors] == [f"u{i}" for i in scan(*queries[0])]
    out["numpy_scan"] = timed(lambda j: scan(*queries[j]), max(20, min(reps, 20_000_000 // n)))
    out["numpy_scan_agrees"] = same
    new_points = [random_point(fleet.rng) for _ in range(reps)]
    out["insert"] = timed(lambda j: fleet.index.upsert(f"new{j}", *new_points[j], fleet.clock_s), reps)
    out["remove"] = timed(lambda j: fleet.index.remove(f"new{j}"), reps)
    out["set_status"] = timed(status_flip(fleet), reps)
    out["partition"] = partition_costs(fleet, reps)
    out["rtree_tuned"] = raw_rtree(fleet, tuned_properties(), reps, side_by_side=True)
    del fleet.index
    gc.collect()
    out["rtree_default"] = raw_rtree(fleet, rtree_index.Property(dimension=3), reps)
    return out


def print_table(results: list[dict[str, Any]]) -> None:
    cols = [f"{r['units']:,}" for r in results]
    print(f"\n{'':44s}" + "".join(f"{c:>22s}" for c in cols))

    def row(label: str, get: Callable[[dict[str, Any]], str]) -> None:
        print(f"{label:44s}" + "".join(f"{get(r):>22s}" for r in results))

    def pp(*path: str) -> Callable[[dict[str, Any]], str]:
        def get(r: dict[str, Any]) -> str:
            for p in path:
                r = r[p]
            return f"{r['p50_us']:.1f} / {r['p99_us']:.1f}"

        return get

    print("PositionIndex (p50 / p99 µs)")
    row("  nearest k=5, status filter, exact m", pp("nearest"))
    row("  nearest k=5, no filter", pp("nearest_unfiltered"))
    row("  move (settled)", pp("move"))
    row("  move (right after bulk load)", pp("move_fresh"))
    row("  insert new unit", pp("insert"))
    row("  remove", pp("remove"))
    row("  set_status (available <-> busy)", pp("set_status"))
    row("  bulk load (s)", lambda r: f"{r['bulk_load_s']:.2f}")
    row("  memory per unit (bytes, RSS)", lambda r: f"{r['bytes_per_unit']:.0f}")
    print("Baselines (p50 / p99 µs)")
    row("  numpy brute-force haversine scan", pp("numpy_scan"))
    row("  raw rtree tuned: nearest k=5, no filter", pp("rtree_tuned", "nearest_k5_unfiltered"))
    row("  raw rtree default: move", pp("rtree_default", "move"))
    row("  raw rtree tuned: move", pp("rtree_tuned", "move"))
    row("  raw rtree default: delete", pp("rtree_default", "delete"))
    row("  raw rtree tuned: delete", pp("rtree_tuned", "delete"))
    row(
        "  raw rtree built by insertion (s): default/tuned",
        lambda r: f"{r['rtree_default']['insert_build_s']:.1f} / {r['rtree_tuned']['insert_build_s']:.1f}",
    )
    print("Ratios (p50; p99 in brackets)")

    def ratio(a: tuple[str, ...], b: tuple[str, ...]) -> Callable[[dict[str, Any]], str]:
        def get(r: dict[str, Any]) -> str:
            x, y = r, r
            for p in a:
                x = x[p]
            for p in b:
                y = y[p]
            return f"{x['p50_us'] / y['p50_us']:.1f}x [{x['p99_us'] / y['p99_us']:.1f}x]"

        return get

    row("  numpy scan / our nearest", ratio(("numpy_scan",), ("nearest",)))
    row("  rtree default / tuned: move", ratio(("rtree_default", "move"), ("rtree_tuned", "move")))
    row("  rtree default / tuned: delete", ratio(("rtree_default", "delete"), ("rtree_tuned", "delete")))
    row("  our move / raw tuned move", ratio(("move",), ("rtree_tuned", "move")))
    row(
        "  our nearest / raw tuned k-NN (no filter)",
        ratio(("nearest",), ("rtree_tuned", "nearest_k5_unfiltered")),
    )
    row(
        "  our nearest, no filter / raw tuned k-NN",
        ratio(("nearest_unfiltered",), ("rtree_tuned", "nearest_k5_unfiltered")),
    )
    row("  numpy scan agrees with ours (ids)", lambda r: str(r["numpy_scan_agrees"]))
    print("Tree calls alone for the filtered query (p50 / p99 µs): one tree vs partitioned by status")
    row("  one tree: k-NN of the first fetch", pp("partition", "one_tree_knn"))
    row("  available tree k-NN 5 + rest tree box ids", pp("partition", "avail_knn_rest_ids"))
    row("  available tree k-NN 5 + rest tree box count", pp("partition", "avail_knn_rest_count"))
    print("Side by side, query by query (p50 / p99 µs; ratio p50 [p99])")
    side = ("rtree_tuned", "side_by_side")
    row("  our nearest k=5, status filter", pp(*side, "nearest"))
    row("  raw rtree tuned: nearest k=5, no filter", pp(*side, "rtree_k5_unfiltered"))
    row("  our nearest / raw tuned k-NN", ratio((*side, "nearest"), (*side, "rtree_k5_unfiltered")))


def _load() -> str:
    """The 1-minute load average: on a shared machine it says how far to trust the figures."""
    try:
        return f"load average {os.getloadavg()[0]:.2f}"
    except OSError:
        return "load average unknown"


def main() -> int:
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000" if quick else "10000,100000,1000000")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    machine = f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cpu(s)"
    print(f"geo.PositionIndex benchmark: sizes {sizes}, {machine}{', quick' if quick else ''}, {_load()}")
    results = []
    ctx = multiprocessing.get_context("fork")
    started = time.perf_counter()
    for n in sizes:
        t0 = time.perf_counter()
        with ctx.Pool(1) as pool:
            results.append(pool.apply(bench_size, (n, quick)))
        print(f"  {n:>9,} units measured in {time.perf_counter() - t0:.0f} s", flush=True)
    print_table(results)
    print(f"\ntotal {time.perf_counter() - started:.0f} s, {_load()} (other processes skew every figure)")
    report = {"benchmark": "bench_index", "load_average_end": _load(), "results": results}
    for path in filter(None, (args.json, os.environ.get("OUTPOST_BENCH_RESULT"))):
        with open(path, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
