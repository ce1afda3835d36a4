"""The Redis design: the latest positions in Redis GEO sets (one per status), answered by
`GEOSEARCH key FROMLONLAT lon lat BYRADIUS r m ASC COUNT k WITHDIST`, widening r until k are found, from an
aiohttp handler over redis.asyncio.

    python benchmarks/knn_redis.py --url redis://127.0.0.1:PORT --port PORT

`RedisServer` starts the OS package's redis-server on a free port (never the machine's 6379), without
persistence; `seed(fleet, url)` loads every unit; benchmarks/feeder.py's `redis` sink keeps them moving
(GEOADD). Redis measures distances on a sphere (haversine, R = 6,372,797.56 m). A benchmark tool, not
product code.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fleet_stream import STATUSES, Fleet

REDIS_SERVER = "/usr/bin/redis-server"
FIRST_RADIUS_M = 250.0
MAX_RADIUS_M = 200_000.0


def redis_server_path() -> str | None:
    """The redis-server binary, or None when the OS package is not installed."""
    return REDIS_SERVER if Path(REDIS_SERVER).exists() else shutil.which("redis-server")


class RedisServer:
    """A redis-server of its own on `port`, no persistence, in `workdir`; stopped by close()."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}"
        exe = redis_server_path()
        if exe is None:
            raise FileNotFoundError("redis-server not found (apt-get install redis-server)")
        self.proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        import redis

        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(port=port).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        """Stop the server."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)


def seed(fleet: Fleet, url: str) -> None:
    """Every unit into the GEO set of its status (units:<status>)."""
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    for code, status in enumerate(STATUSES):
        members: list[object] = []
        for i in (fleet.status_codes == code).nonzero()[0].tolist():
            members += [float(fleet.lons[i]), float(fleet.lats[i]), fleet.ids[i]]
        for start in range(0, len(members), 30_000):
            client.geoadd(f"units:{status}", members[start : start + 30_000])


async def serve(url: str, port: int) -> None:
    """Serve /nearest until killed."""
    import redis.asyncio as aioredis
    from aiohttp import web

    # A bounded pool, as the psycopg side has: unbounded, 512 requests in flight open 512 connections and run
    # the server out of file descriptors.
    client = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(url, max_connections=16))

    async def search(key: str, lon: float, lat: float, k: int) -> list[tuple[str, float, str]]:
        radius_m = FIRST_RADIUS_M
        while True:
            found = await client.geosearch(
                key,
                longitude=lon,
                latitude=lat,
                radius=radius_m,
                unit="m",
                sort="ASC",
                count=k,
                withdist=True,
            )
            if len(found) >= k or radius_m >= MAX_RADIUS_M:
                return [(m.decode(), float(d), key.removeprefix("units:")) for m, d in found]
            radius_m *= 4

    async def nearest(request: web.Request) -> web.Response:
        try:
            lon, lat = float(request.query["lon"]), float(request.query["lat"])
            k = int(request.query.get("k", "5"))
        except (KeyError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from exc
        statuses = request.query.get("status", "available").split(",")
        found = [hit for s in statuses for hit in await search(f"units:{s}", lon, lat, k)]
        found.sort(key=lambda hit: hit[1])
        units = [{"id": m, "distance_m": d, "status": s} for m, d, s in found[:k]]
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
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.url, args.port))


if __name__ == "__main__":
    main()
