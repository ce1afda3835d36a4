"""A year of incidents as a resolution-8 heat map over the real API, against the naive read-and-bin.

Target: p50 ≤ 300 ms on PostgreSQL.

    .venv/bin/python benchmarks/bench_heatmap.py [--incidents 100000] [--runs 15] [--res 8]

Starts its own PostgreSQL with PostGIS (tests.support.services.PgCluster), migrates it, and stores
`--incidents` historic incidents drawn from the SFPD week in ../shared/data (the shipped day where that is
absent): each draws a real row (its place, category and time of week) and lands in one of the 52 weeks of
2008, a few metres off its place. Then, in the same run:

- outpost: `GET /v1/heatmap/incidents?res=&from=&to=` for the whole year through the real app (bearer auth,
  GROUP BY the stored cell's parent in PostgreSQL, hexagon boundaries, GeoJSON);
- naive: what one would write first: read every incident's lon, lat in the range, bin each point with
  `h3.latlng_to_cell` in Python, then the same GeoJSON.

Prints p50/p90/max per variant over `--runs` (after one warm-up each), the hexagons answered, the ratio
naive/outpost, and a last JSON line. OUTPOST_BENCH_QUICK=1: 20,000 incidents, 7 runs.
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

from benchmarks.api_reads import api_over, summary, timed  # noqa: E402
from geo.hexes import boundary, cell_of  # noqa: E402
from outpost.incident_csv import open_text, read_rows  # noqa: E402
from store.engine import open_engine  # noqa: E402
from store.incidents.history import HistoricIncident, import_batch  # noqa: E402
from store.migrate import migrate  # noqa: E402
from store.settings import StoreSettings  # noqa: E402
from tests.support.services import SHARED_DATA, PgCluster  # noqa: E402

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
            r = results[name]
            print(
                f"{name:<8} p50 {r['p50_ms']:7.1f} ms  p90 {r['p90_ms']:7.1f}  "
                f"max {r['max_ms']:7.1f}  {hexes:,} hexagons"
            )
    engine.dispose()
    ratio = results["naive"]["p50_ms"] / results["outpost"]["p50_ms"]
    print(
        f"ratio naive/outpost {ratio:.2f}x   "
        f"target p50 ≤ 300 ms: {'met' if results['outpost']['p50_ms'] <= 300 else 'NOT met'}   "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    return {
        "runs": args.runs,
        "incidents": args.incidents,
        "res": args.res,
        **results,
        "ratio": round(ratio, 2),
    }


def main() -> None:
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--incidents", type=int, default=20_000 if quick else 100_000)
    parser.add_argument("--runs", type=int, default=7 if quick else 15)
    parser.add_argument("--res", type=int, default=8, help="the heat map's H3 resolution")
    args = parser.parse_args()
    cluster = PgCluster().start()
    try:
        cluster.psql("CREATE DATABASE bench")
        figures = asyncio.run(bench(cluster.url("bench"), args))
    finally:
        cluster.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
