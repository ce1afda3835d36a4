"""A fleet snapshot of 1,000 units at a past instant over the real API, against the naive read.

Target: p50 ≤ 200 ms on PostgreSQL.

    .venv/bin/python benchmarks/bench_snapshot.py [--units 1000] [--hours 2] [--every 5] [--runs 15]

Starts its own PostgreSQL with PostGIS (tests.support.services.PgCluster), migrates it (native daily
partitions), and stores, generated in SQL, `--units` units each reporting every `--every` seconds for
`--hours` hours from one device (a tenth of them from two), each with a status change every 20 minutes
in the status history. Then, in the same run, at an instant 90 minutes in:

- outpost: `GET /v1/units/snapshot?at=` through the real app (bearer auth, audit; one statement, a few
  index probes per unit);
- playback: `GET /v1/units/snapshot?from=&to=&step_s=60` over ten minutes (11 frames);
- naive: what one would write first: every fix of the look-back window (`store.fixes.fetch_fixes`) and the
  whole status history read into Python, the latest of each unit kept there.

Prints p50/p90/max per variant over `--runs` (after one warm-up each), the units answered, the ratio
naive/outpost, and a last JSON line. OUTPOST_BENCH_QUICK=1: 7 runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.api_reads import print_row, run_on_postgres, serving, summary, timed, verdict  # noqa: E402
from store import registry  # noqa: E402
from store.engine import open_engine  # noqa: E402
from store.fixes import fetch_fixes  # noqa: E402
from store.migrate import migrate  # noqa: E402
from store.registry.statuses import history  # noqa: E402
from store.settings import StoreSettings  # noqa: E402

LOOKBACK = timedelta(minutes=15)
FIXES = """
INSERT INTO fixes (device_id, unit_id, ts, received_at, lon, lat, speed_mps, heading_deg, flags)
SELECT d.device, 'u' || u, :start + k * :every * INTERVAL '1 second',
       :start + k * :every * INTERVAL '1 second',
       -122.5 + (u % 40) * 0.004 + 0.002 * sin(k * 0.05 + u),
       37.70 + (u / 40) * 0.004 + 0.002 * cos(k * 0.05), 4.5, (k * 7) % 360, 0
FROM generate_series(0, :units - 1) AS u, generate_series(0, :steps - 1) AS k,
     LATERAL (SELECT 'cam-u' || u AS device UNION ALL SELECT 'phone-u' || u WHERE u % 10 = 0) AS d
"""
STATUSES = """
INSERT INTO status_history (unit_id, from_status, to_status, at, actor, why)
SELECT 'u' || u, CASE WHEN n % 2 = 0 THEN 'off_duty' ELSE 'available' END,
       CASE WHEN n % 2 = 0 THEN 'available' ELSE 'busy' END,
       :start + n * INTERVAL '20 minutes' + (u % 60) * INTERVAL '1 second', 'bench', ''
FROM generate_series(0, :units - 1) AS u, generate_series(0, :changes - 1) AS n
"""


def naive_snapshot(engine: Engine, at: datetime) -> int:
    """Every fix of the window and every status change into Python; the latest per unit kept."""
    latest: dict[str, Any] = {}
    for f in fetch_fixes(engine, start=at - LOOKBACK, end=at + timedelta(microseconds=1)):
        if f.unit_id is not None:
            latest[f.unit_id] = f  # in time order: the last one wins
    status: dict[str, str] = {}
    with engine.connect() as conn:
        for unit_id, to_status, when in conn.execute(
            select(history.c.unit_id, history.c.to_status, history.c.at).order_by(history.c.at, history.c.id)
        ):
            if when.replace(tzinfo=UTC) <= at:
                status[unit_id] = to_status
    units = registry.list_units(engine, limit=100_000)
    return len([(u.id, latest.get(u.id), status.get(u.id, u.status)) for u in units])


async def bench(url: str, args: argparse.Namespace) -> dict[str, Any]:
    engine = open_engine(url, pool_size=4)
    migrate(engine, StoreSettings(database_url=url))
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=args.hours + 1)
    registry.insert_units_bulk(
        engine, [{"id": f"u{u}", "name": f"Unit {u}", "kind": "police"} for u in range(args.units)]
    )
    began = time.perf_counter()
    steps = int(args.hours * 3600 / args.every)
    with engine.begin() as conn:
        conn.execute(text(FIXES), {"start": start, "every": args.every, "units": args.units, "steps": steps})
        conn.execute(text(STATUSES), {"start": start, "units": args.units, "changes": args.hours * 3})
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
        stored = conn.execute(text("SELECT count(*) FROM fixes")).scalar()
    print(f"stored {stored:,} fixes of {args.units:,} units in {time.perf_counter() - began:.1f} s")
    at = start + timedelta(minutes=90)
    iso = at.isoformat().replace("+00:00", "Z")
    later = (at + timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
    results: dict[str, Any] = {}
    async with serving(engine) as get_json:

        async def get(query: str) -> Any:
            return await get_json(f"/v1/units/snapshot?{query}")

        async def outpost() -> int:
            found = (await get(f"at={iso}"))["units"]
            assert sum(1 for u in found if u["ts"] is not None) == args.units
            return len(found)

        async def playback() -> int:
            return len((await get(f"from={iso}&to={later}&step_s=60"))["frames"])

        async def naive() -> int:
            return await asyncio.to_thread(naive_snapshot, engine, at)

        for name, call in (("outpost", outpost), ("playback", playback), ("naive", naive)):
            times, counted = await timed(args.runs, call)
            results[name] = {**summary(times), "counted": counted}
            print_row(name, results[name], counted, "frames" if name == "playback" else "units")
    engine.dispose()
    ratio = results["naive"]["p50_ms"] / results["outpost"]["p50_ms"]
    print(f"ratio naive/outpost {ratio:.2f}x   " + verdict(results["outpost"]["p50_ms"], 200))
    return {"runs": args.runs, "units": args.units, "fixes": stored, **results, "ratio": round(ratio, 2)}


def main() -> None:
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--hours", type=int, default=2, help="hours of fixes stored")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between a device's fixes")
    parser.add_argument("--runs", type=int, default=7 if quick else 15)
    args = parser.parse_args()
    run_on_postgres(bench, args)


if __name__ == "__main__":
    main()
