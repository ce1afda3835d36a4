"""The PostGIS-KNN design, the one a user would otherwise pick: a latest-position table with a GiST index on a
geography column, answered by `ORDER BY geog <-> point LIMIT k` from an aiohttp handler over a psycopg pool.

    python benchmarks/knn_postgis.py --dsn DSN --port PORT     (serves GET /nearest?lon=&lat=&k=&status=)

`seed(fleet, dsn)` creates and fills the table (the orchestrator calls it once); benchmarks/feeder.py's
`postgis` sink keeps it moving. Answers are ordered by geography distance (the KNN operator on geography is
the spherical distance, index-assisted) and report ST_Distance on the spheroid. No auth, no audit: the design
as a small team would first write it. A benchmark tool, not product code.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fleet_stream import Fleet

DDL = """
CREATE EXTENSION IF NOT EXISTS postgis;
DROP TABLE IF EXISTS latest_positions;
CREATE TABLE latest_positions (unit_id text PRIMARY KEY, status text NOT NULL, kind text NOT NULL,
    ts timestamptz NOT NULL DEFAULT now(), geog geography(Point, 4326) NOT NULL);
"""
QUERY = (
    "SELECT unit_id, status, ST_Distance(geog, q.p) AS distance_m, ST_X(geog::geometry), ST_Y(geog::geometry)"
    " FROM latest_positions, (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography AS p) AS q"
    " WHERE status = ANY(%(status)s) ORDER BY geog <-> q.p LIMIT %(k)s"
)


def seed(fleet: Fleet, dsn: str) -> None:
    """Create latest_positions with every unit, its GiST index, and its statistics."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(DDL)
        with (
            conn.cursor() as cur,
            cur.copy("COPY latest_positions (unit_id, status, kind, geog) FROM STDIN") as copy,
        ):
            for i, (lon, lat) in enumerate(zip(fleet.lons.tolist(), fleet.lats.tolist(), strict=True)):
                copy.write_row(
                    (fleet.ids[i], fleet.status(i), fleet.kind(i), f"SRID=4326;POINT({lon} {lat})")
                )
        conn.execute("CREATE INDEX ON latest_positions USING gist (geog)")
        conn.execute("ANALYZE latest_positions")


async def serve(dsn: str, port: int, pool_size: int) -> None:
    """Serve /nearest until killed."""
    from aiohttp import web
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(dsn, min_size=pool_size, max_size=pool_size, open=False)
    await pool.open()

    async def nearest(request: web.Request) -> web.Response:
        try:
            params = {
                "lon": float(request.query["lon"]),
                "lat": float(request.query["lat"]),
                "k": int(request.query.get("k", "5")),
                "status": request.query.get("status", "available").split(","),
            }
        except (KeyError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        async with pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(QUERY, params)
            rows = await cur.fetchall()
        units = [{"id": r[0], "status": r[1], "distance_m": r[2], "lon": r[3], "lat": r[4]} for r in rows]
        return web.json_response({"units": units})

    app = web.Application()
    app.router.add_get("/nearest", nearest)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("serving", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool-size", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(serve(args.dsn, args.port, args.pool_size))


if __name__ == "__main__":
    main()
