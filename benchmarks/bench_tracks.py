"""A day's 1 Hz track of one unit as simplified GeoJSON over the real API, against the naive read.

Target: p50 ≤ 100 ms on PostgreSQL.

    .venv/bin/python benchmarks/bench_tracks.py [--others 9] [--runs 15] [--simplify 5]

Starts its own PostgreSQL with PostGIS (tests.support.services.PgCluster), migrates it (native daily
partitions here), and stores one day of 1 Hz fixes (86,400) of the unit under test, driving a loop of
streets with stops, plus `--others` units reporting at 1 Hz over the same day (so the index serves one unit
among many). Then, in the same run:

- outpost: `GET /v1/units/u0/track?from=&to=&simplify_m=` through the real app (bearer auth, audit, keyset
  pages of 5,000 rows, one line through the unit's devices, Douglas–Peucker, GeoJSON);
- rows-path: the simplification as it was before the columnar read, in process (no HTTP): every fix a
  point object (`store.tracks.track_points`), one line, Douglas–Peucker; what a unit with several devices
  and SQLite still take;
- outpost-stream: the same without `simplify_m` (every fix, streamed);
- naive: what one would write first: `store.fixes.fetch_fixes(unit_id=…, start, end)` (every column into
  `Fix` objects in one list) and `json.dumps` of a FeatureCollection of every fix, no simplification.

Prints p50/p90/max per variant over `--runs` (after one warm-up each), the points answered, the ratio
naive/outpost, and a last JSON line. OUTPOST_BENCH_QUICK=1: 3 other units, 7 runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.api_reads import api_over, print_row, run_on_postgres, summary, timed, verdict  # noqa: E402
from geo.distance import destination  # noqa: E402
from geo.track import OneLine, simplify  # noqa: E402
from schemas.fix import Fix  # noqa: E402
from store import registry  # noqa: E402
from store.engine import open_engine  # noqa: E402
from store.fixes import FixWriter, fetch_fixes  # noqa: E402
from store.migrate import migrate  # noqa: E402
from store.settings import StoreSettings  # noqa: E402
from store.tracks import TrackQuery, track_points  # noqa: E402

DAY_S = 86_400
LON, LAT = -122.4194, 37.7793


def day_of_driving(unit: str, start: datetime, offset: float) -> list[Fix]:
    """1 Hz for a day: 10 min legs at 8 m/s on a square of streets, a 5 min stop after each leg."""
    fixes, lon, lat = [], LON + offset, LAT + offset
    for s in range(DAY_S):
        phase = s % 900
        if phase < 600:
            bearing = 90.0 * ((s // 900) % 4)
            lon, lat = destination(lon, lat, bearing, 8.0)
        jitter = math.sin(s) * 2e-6  # GPS noise of ~0.2 m, so no two fixes are on one exact line
        fixes.append(
            Fix(
                device_id=f"dev-{unit}",
                unit_id=unit,
                ts=start + timedelta(seconds=s),
                received_at=start + timedelta(seconds=s),
                lon=lon + jitter,
                lat=lat - jitter,
                accuracy_m=5.0,
                speed_mps=8.0 if phase < 600 else 0.0,
            )
        )
    return fixes


def naive_geojson(engine: Any, unit: str, start: datetime, end: datetime) -> bytes:
    """The first thing one would write: every fix into a list, every fix into the document."""
    fixes = fetch_fixes(engine, unit_id=unit, start=start, end=end)
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [f.lon, f.lat]},
            "properties": {"time": f.ts.isoformat(), "device_id": f.device_id, "flags": f.flags},
        }
        for f in fixes
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


def general_path(engine: Any, unit: str, start: datetime, end: datetime, tolerance_m: float) -> list[Any]:
    """What the simplified track did before the columnar read (and still does for a unit with several
    devices, or on SQLite): every fix as a point object, one line, Douglas–Peucker; no HTTP."""
    points = track_points(engine, TrackQuery(start, end, unit_id=unit), 1_000_000)
    return simplify(OneLine(15.0).take(points), tolerance_m)


async def bench(url: str, args: argparse.Namespace) -> dict[str, Any]:
    engine = open_engine(url, pool_size=4)
    migrate(engine, StoreSettings(database_url=url))
    start = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    end = start + timedelta(seconds=DAY_S)
    now = datetime.now(UTC)
    writer = FixWriter(engine)
    for i in range(args.others + 1):
        unit = f"u{i}"
        registry.insert_unit(engine, id=unit, name=unit, kind="police", now=now)
        fixes = day_of_driving(unit, start, i * 1e-3)
        for j in range(0, len(fixes), 5000):
            writer.write(fixes[j : j + 5000])
    print(f"stored {DAY_S * (args.others + 1):,} fixes: u0 and {args.others} other units, 1 Hz for a day")
    app, token = api_over(engine)
    span = f"from={start.isoformat().replace('+00:00', 'Z')}&to={end.isoformat().replace('+00:00', 'Z')}"
    results: dict[str, Any] = {}
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {token}"}

        async def track(query: str) -> int:
            async with http.get(server.make_url(f"/v1/units/u0/track?{span}{query}"), headers=headers) as r:
                assert r.status == 200, await r.text()
                return len(json.loads(await r.read())["features"])

        async def naive() -> int:
            body = await asyncio.to_thread(naive_geojson, engine, "u0", start, end)
            return len(json.loads(body)["features"])

        async def general() -> int:
            return len(await asyncio.to_thread(general_path, engine, "u0", start, end, args.simplify))

        for name, call in (
            ("outpost", lambda: track(f"&simplify_m={args.simplify:g}")),
            ("rows-path", general),
            ("outpost-stream", lambda: track("")),
            ("naive", naive),
        ):
            times, points = await timed(args.runs, call)
            results[name] = {**summary(times), "points": points}
            print_row(name, results[name], points, "points")
    engine.dispose()
    ratio = results["naive"]["p50_ms"] / results["outpost"]["p50_ms"]
    stream_ratio = results["naive"]["p50_ms"] / results["outpost-stream"]["p50_ms"]
    rows_ratio = results["rows-path"]["p50_ms"] / results["outpost"]["p50_ms"]
    print(
        f"ratio naive/outpost (simplified) {ratio:.2f}x   rows-path/outpost {rows_ratio:.2f}x   "
        f"naive/outpost-stream {stream_ratio:.2f}x   " + verdict(results["outpost"]["p50_ms"], 100)
    )
    return {
        "runs": args.runs,
        "others": args.others,
        "simplify_m": args.simplify,
        **results,
        "ratio": round(ratio, 2),
        "ratio_rows_path": round(rows_ratio, 2),
    }


def main() -> None:
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--others", type=int, default=3 if quick else 9, help="other units stored alongside")
    parser.add_argument("--runs", type=int, default=7 if quick else 15)
    parser.add_argument("--simplify", type=float, default=5.0, help="simplify_m of the outpost variant")
    args = parser.parse_args()
    run_on_postgres(bench, args)


if __name__ == "__main__":
    main()
