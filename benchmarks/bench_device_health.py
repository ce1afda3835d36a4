"""Benchmark what the device health watch costs on the hot path: the live picture taking batches of fixes
(`Fleet.apply`) with `dispatch.patrol.health.HealthWatch` following them, against the same picture without
it, in the same run; the watch's subscriber alone on the same batches; and one check of the whole fleet
(`HealthWatch.check`) with nothing due.

    .venv/bin/python benchmarks/bench_device_health.py [--units 10000] [--rounds 5]

Each unit has one bound device and is on duty; every round each device reports once (its battery
draining), in batches of 400 as ingest hands them over; best of 5 repeats, without and with taken
turn about. With OUTPOST_BENCH_RESULT set, the figures are also written there as JSON. No figure
here is an assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dispatch.clock import ManualClock
from dispatch.fleet import Fleet
from dispatch.patrol.health import HealthWatch
from dispatch.settings import ApiSettings
from schemas.fix import Fix
from store.engine import open_engine
from tests.dispatch.test_live import Binding, Device, Unit  # the registry records stand-ins

START_S = 1_717_088_400.0
BATCH = 400


def _fleet(engine: object, units: int, clock: ManualClock) -> Fleet:
    fleet = Fleet(engine, clock, ApiSettings())  # type: ignore[arg-type]  # apply never reads the store
    ids = [f"u{i}" for i in range(units)]
    devices = [Device(f"d-{u}", priority=30) for u in ids]
    fleet.picture.load([Unit(u) for u in ids], devices, [Binding(f"d-{u}", u) for u in ids], [])
    return fleet


def _batches(units: int, rounds: int) -> list[list[Fix]]:
    fixes = []
    for r in range(rounds):
        for i in range(units):
            ts = datetime.fromtimestamp(START_S + r * 5.0 + i * 1e-4, UTC)
            lon, lat = -122.5 + (i % 300) * 0.0005, 37.70 + (i // 300) * 0.0005 + r * 1e-5
            fixes.append(
                Fix(device_id=f"d-u{i}", ts=ts, lon=lon, lat=lat, received_at=ts, battery_pct=90.0 - r)
            )
    return [fixes[k : k + BATCH] for k in range(0, len(fixes), BATCH)]


def _best_of_alternating(run: Callable[[bool], float], repeats: int = 5) -> tuple[float, float]:
    """Best time without and with, measured turn about (so warm-up and noise fall on both alike)."""
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for with_health in (False, True):
            times[with_health].append(run(with_health))
    return min(times[False]), min(times[True])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    parser.add_argument("--units", type=int, default=2_000 if quick else 10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_engine(f"sqlite:///{Path(tmp) / 'bench.db'}", pool_size=1)
        batches = _batches(args.units, args.rounds)
        n = sum(len(b) for b in batches)

        def apply(with_health: bool) -> float:
            clock = ManualClock(START_S)
            fleet = _fleet(engine, args.units, clock)
            if with_health:
                watch = HealthWatch(fleet, clock, ApiSettings(), lambda alerts: None)
                watch.follow()
            started = time.perf_counter()
            for batch in batches:
                fleet.apply(batch)
            return (time.perf_counter() - started) / n

        bare_s, health_s = _best_of_alternating(apply)
        clock = ManualClock(START_S)
        fleet = _fleet(engine, args.units, clock)
        watch = HealthWatch(fleet, clock, ApiSettings(), lambda alerts: None)
        watch.follow()
        for batch in batches:
            fleet.apply(batch)
        started = time.perf_counter()
        watch.check()  # nothing due: the cost of a patrol check
        judge_s = time.perf_counter() - started
        alone = HealthWatch(fleet, clock, ApiSettings(), lambda alerts: None)  # what the subscriber costs
        started = time.perf_counter()
        for batch in batches:
            alone._on_fixes(batch)
        alone_s = (time.perf_counter() - started) / n
        engine.dispose()
    print(f"device health benchmark: {args.units:,} on-duty units, {n:,} fixes in batches of {BATCH}")
    print(f"  Fleet.apply without the health watch  {bare_s * 1e6:8.2f} µs a fix")
    print(f"  Fleet.apply with the health watch     {health_s * 1e6:8.2f} µs a fix")
    print(f"  ratio with / without                  {health_s / bare_s:8.2f}")
    share = f"{alone_s / bare_s:.2f} of apply"
    print(f"  the health watch's subscriber alone   {alone_s * 1e6:8.2f} µs a fix ({share})")
    print(f"  one check with nothing due            {judge_s * 1e3:8.3f} ms for {args.units:,} devices")
    figures = {
        "units": args.units,
        "fixes": n,
        "apply_us_per_fix": round(bare_s * 1e6, 3),
        "apply_with_health_us_per_fix": round(health_s * 1e6, 3),
        "ratio_with_health": round(health_s / bare_s, 3),
        "health_alone_us_per_fix": round(alone_s * 1e6, 3),
        "check_nothing_due_ms": round(judge_s * 1e3, 3),
    }
    if path := os.environ.get("OUTPOST_BENCH_RESULT"):
        Path(path).write_text(json.dumps(figures), encoding="utf-8")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
