"""A year of incidents as a resolution-8 heat map, and a month of patrol presence, over the real API, each
against the naive way in the same run.

Targets: incidents p50 ≤ 300 ms; patrol presence of a month of 100 units at 30 s p50 ≤ 1 s (PostgreSQL).

    .venv/bin/python benchmarks/bench_heatmap.py [--incidents 100000] [--runs 15] [--res 8]
        [--units 100] [--days 30] [--only incidents|patrol]

Starts its own PostgreSQL with PostGIS (tests.support.services.PgCluster), migrates it, and stores
`--incidents` historic incidents drawn from the SFPD week in ../shared/data (the shipped day where that is
absent): each draws a real row (its place, category and time of week) and lands in one of the 52 weeks of
2008, a few metres off its place. Then, in the same run:

- outpost: `GET /v1/heatmap/incidents?res=&from=&to=` for the whole year through the real app (bearer auth,
  GROUP BY the stored cell's parent in PostgreSQL, hexagon boundaries, GeoJSON);
- naive: what one would write first: read every incident's lon, lat in the range, bin each point with
  `h3.latlng_to_cell` in Python, then the same GeoJSON.

Patrol presence: `--units` units report every 30 s for `--days` days (generated in SQL: each loops through
its own square kilometre of San Francisco at 2–3 m/s), each on duty one 8-hour shift a day (status
history). Then:

- cold: the first `GET /v1/heatmap/patrol?res=9&from=&to=` of the month, which materializes its hours;
- outpost: the same request again (p50 over `--runs`), and with `unit=` one unit;
- naive: the same arithmetic over the month's raw fixes read in one go (`store.presence.computed`: every
  fix, its successor, the status history), summed per cell; one run (it is the cold path's work).

Prints p50/p90/max per variant over `--runs` (after one warm-up each), the hexagons answered, the ratio
naive/outpost, and a last JSON line. OUTPOST_BENCH_QUICK=1: 20,000 incidents, 7 days of presence, 7 runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import h3
from aiohttp.test_utils import TestServer
from sqlalchemy import Engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.api_reads import api_over, print_row, run_on_postgres, serving, summary, timed, verdict  # noqa: E402
from geo.hexes import boundary, cell_of  # noqa: E402
from outpost.incident_csv import open_text, read_rows  # noqa: E402
from store import registry  # noqa: E402
from store.engine import open_engine  # noqa: E402
from store.incidents.history import HistoricIncident, import_batch  # noqa: E402
from store.migrate import migrate  # noqa: E402
from store.presence import PresenceSettings, computed  # noqa: E402
from store.settings import StoreSettings  # noqa: E402
from tests.support.services import SHARED_DATA  # noqa: E402

WEEK = SHARED_DATA / "sf_police_incidents_2008-05-26_to_06-01.csv.gz"
DAY = REPO / "sim" / "data" / "sf_incidents_2008-05-30.csv.gz"
YEAR_START = datetime(2007, 12, 31, 8, tzinfo=UTC)  # Monday 00:00 PST, the first ISO week of 2008
WEEK_S = 7 * 86400


def sample(n: int) -> list[HistoricIncident]:
    """`n` incidents with the shipped week's places, categories and times of week, over 52 weeks."""
    source = WEEK if WEEK.exists() else DAY
    with open_text(source) as rows:
        seeds = [r for r in read_rows(rows, {}) if isinstance(r, HistoricIncident)]
    print(f"drawing {n:,} incidents from {len(seeds):,} rows of {source.name}")
    rng = random.Random(2008)
    week0 = min(s.reported_at for s in seeds)
    week0 -= timedelta(days=week0.weekday())
    out = []
    for i in range(n):
        seed = rng.choice(seeds)
        into_week = (seed.reported_at - week0).total_seconds() % WEEK_S
        at = YEAR_START + timedelta(seconds=rng.randrange(52) * WEEK_S + into_week)
        out.append(
            replace(
                seed,
                id=f"bench-{i}",
                reported_at=at,
                lon=seed.lon + rng.gauss(0, 1e-4),
                lat=seed.lat + rng.gauss(0, 1e-4),
            )
        )
    return out


def naive_geojson(engine: Engine, start: datetime, end: datetime, res: int) -> bytes:
    """Every incident read, binned in Python, the same document."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT lon, lat FROM incidents WHERE reported_at >= :s AND reported_at < :e"),
            {"s": start, "e": end},
        ).all()
    counts = Counter(h3.latlng_to_cell(lat, lon, res) for lon, lat in rows)
    features = []
    for cell, n in sorted(counts.items()):
        centre_lat, centre_lon = h3.cell_to_latlng(cell)
        as_int = cell_of(centre_lon, centre_lat, res)
        features.append(
            {
                "type": "Feature",
                "id": cell,
                "geometry": boundary(as_int),
                "properties": {"cell": cell, "count": n},
            }
        )
    return json.dumps({"type": "FeatureCollection", "features": features}).encode()


async def bench(url: str, args: argparse.Namespace) -> dict[str, Any]:
    engine = open_engine(url, pool_size=4)
    migrate(engine, StoreSettings(database_url=url))
    figures: dict[str, Any] = {"runs": args.runs}
    if args.only in ("", "incidents"):
        figures["incidents"] = await bench_incidents(engine, args)
    if args.only in ("", "patrol"):
        figures["patrol"] = await bench_patrol(engine, args)
    engine.dispose()
    return figures


async def bench_incidents(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    incidents = sample(args.incidents)
    began = time.perf_counter()
    for j in range(0, len(incidents), 5000):
        import_batch(engine, incidents[j : j + 5000], created_by="bench")
    with engine.begin() as conn:
        conn.execute(text("ANALYZE incidents"))
    print(f"stored {len(incidents):,} incidents in {time.perf_counter() - began:.1f} s")
    app, token = api_over(engine)
    start, end = YEAR_START, YEAR_START + timedelta(seconds=52 * WEEK_S)
    span = f"from={start.isoformat().replace('+00:00', 'Z')}&to={end.isoformat().replace('+00:00', 'Z')}"
    results: dict[str, Any] = {}
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {token}"}

        async def outpost() -> int:
            path = f"/v1/heatmap/incidents?res={args.res}&{span}"
            async with http.get(server.make_url(path), headers=headers) as r:
                assert r.status == 200, await r.text()
                document = json.loads(await r.read())
                assert document["total"] == len(incidents)
                return len(document["features"])

        async def naive() -> int:
            body = await asyncio.to_thread(naive_geojson, engine, start, end, args.res)
            return len(json.loads(body)["features"])

        for name, call in (("outpost", outpost), ("naive", naive)):
            times, hexes = await timed(args.runs, call)
            results[name] = {**summary(times), "hexagons": hexes}
            print_row(name, results[name], hexes, "hexagons")
    ratio = results["naive"]["p50_ms"] / results["outpost"]["p50_ms"]
    print(f"ratio naive/outpost {ratio:.2f}x   " + verdict(results["outpost"]["p50_ms"], 300))
    return {
        "incidents": args.incidents,
        "res": args.res,
        **results,
        "ratio": round(ratio, 2),
    }


UNIT_FIXES = """
INSERT INTO fixes (device_id, unit_id, ts, received_at, lon, lat, flags)
SELECT 'dev-u' || u, 'u' || u, :start + k * INTERVAL '30 seconds', :start + k * INTERVAL '30 seconds',
       -122.47 + (u % 10) * 0.009 + 0.004 * sin(k * 0.2 + u),
       37.73 + (u / 10) * 0.007 + 0.003 * sin(k * 0.15 + 2 * u), 0
FROM generate_series(0, :units - 1) AS u, generate_series(0, :steps - 1) AS k
"""
SHIFTS = """
INSERT INTO status_history (unit_id, from_status, to_status, at, actor, why)
SELECT 'u' || u, s.from_status, s.to_status,
       :start + d * INTERVAL '1 day' + (u % 3) * INTERVAL '8 hours' + s.offset_h * INTERVAL '1 hour',
       'bench', ''
FROM generate_series(0, :units - 1) AS u, generate_series(0, :days - 1) AS d,
     (VALUES ('off_duty', 'available', 0), ('available', 'off_duty', 8)) AS s(from_status, to_status,
     offset_h)
"""


def naive_presence(engine: Engine, start: datetime, end: datetime) -> int:
    """The month's raw fixes through the same arithmetic in one go, summed per cell: the cells counted."""
    with engine.connect() as conn:
        rows = computed(conn, start, end, PresenceSettings(), ())
    cells: Counter[int] = Counter()
    for (_, _, cell), seconds in rows.items():
        cells[cell] += int(seconds)
    return len(cells)


async def bench_patrol(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=args.days, hours=2)
    end = start + timedelta(days=args.days)
    registry.insert_units_bulk(
        engine, [{"id": f"u{u}", "name": f"u{u}", "kind": "police"} for u in range(args.units)]
    )
    began = time.perf_counter()
    with engine.begin() as conn:
        steps = args.days * 2880
        conn.execute(text(UNIT_FIXES), {"start": start, "units": args.units, "steps": steps})
        conn.execute(text(SHIFTS), {"start": start, "units": args.units, "days": args.days})
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    fixes = args.units * args.days * 2880
    print(
        f"stored {fixes:,} fixes ({args.units} units, 30 s, {args.days} days)"
        f" in {time.perf_counter() - began:.1f} s"
    )
    span = f"from={start.isoformat().replace('+00:00', 'Z')}&to={end.isoformat().replace('+00:00', 'Z')}"
    results: dict[str, Any] = {}
    async with serving(engine) as get:

        async def outpost(extra: str = "") -> int:
            return len((await get(f"/v1/heatmap/patrol?res=9&{span}{extra}"))["features"])

        async def naive() -> int:
            return await asyncio.to_thread(naive_presence, engine, start, end)

        began = time.perf_counter()
        hexes = await outpost()
        results["cold"] = {"ms": round((time.perf_counter() - began) * 1000, 1), "hexagons": hexes}
        print(f"{'cold':<12} {results['cold']['ms']:9.1f} ms  (materializes {args.days * 24:,} hours)")
        for name, call, runs in (
            ("outpost", outpost, args.runs),
            ("outpost-unit", lambda: outpost("&unit=u7"), args.runs),
            ("naive", naive, 1),
        ):
            times, hexes = await timed(runs, call) if runs > 1 else await _once(call)
            results[name] = {**summary(times), "hexagons": hexes}
            print_row(name, results[name], hexes, "hexagons")
    ratio = results["naive"]["p50_ms"] / results["outpost"]["p50_ms"]
    cold = results["cold"]["ms"] / results["outpost"]["p50_ms"]
    print(
        f"ratio naive/outpost {ratio:.1f}x   cold/outpost {cold:.1f}x   "
        + verdict(results["outpost"]["p50_ms"], 1000)
    )
    return {"units": args.units, "days": args.days, "fixes": fixes, **results, "ratio": round(ratio, 1)}


async def _once(call: Any) -> tuple[list[float], int]:
    began = time.perf_counter()
    counted = await call()
    return [(time.perf_counter() - began) * 1000], counted


def main() -> None:
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--incidents", type=int, default=20_000 if quick else 100_000)
    parser.add_argument("--runs", type=int, default=7 if quick else 15)
    parser.add_argument("--res", type=int, default=8, help="the heat map's H3 resolution")
    parser.add_argument("--units", type=int, default=100, help="units reporting for the presence map")
    parser.add_argument("--days", type=int, default=7 if quick else 30, help="days of presence")
    parser.add_argument("--only", choices=("incidents", "patrol"), default="")
    args = parser.parse_args()
    run_on_postgres(bench, args)


if __name__ == "__main__":
    main()
