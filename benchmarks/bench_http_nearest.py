"""Nearest over HTTP at 100k units while 2,000 fixes/s are ingested, against PostGIS KNN (target p99 ≤ 5 ms).

    .venv/bin/python benchmarks/bench_http_nearest.py [--units 100000] [--rate 2000] [--seconds 8]
                                                       [--load o100,o400,c1,c16]

Starts its own PostgreSQL with PostGIS (tests.support.services.PgCluster). Two phases, the same client:

1. Outpost: the real API (`dispatch.app.init_app`: bearer auth, audit log, problem details) over a
   Fleet of N units, served on a free port by this process's event loop. A background task plays ingest
   in the same loop at `--rate` fixes/s: every 50 ms it builds a batch of fixes moving random units,
   stores it with FixWriter (COPY, in a worker thread, as ingest does) and hands it to the fleet
   (Fleet.apply_gradually: Fleet.apply in slices of Fleet.SLICE_FIXES, so requests are served in between).
   The app runs Outpost's garbage-collector policy (dispatch.collector.GcPolicy) as the service does.
2. Baseline, the design a user would otherwise pick: a `latest_positions` table (GiST on geom) updated
   per fix (one UPDATE per fix, batched per 50 ms transaction, same rate), and an aiohttp handler
   answering `WHERE status = 'available' ORDER BY geom <-> point LIMIT k` from a psycopg async pool.
   (KNN in degrees: the order is not the order in metres; no auth or audit on this side.)

The client is a separate process (aiohttp; random points over San Francisco, k=5, status=available), run
for each load after a 1 s warm-up: `o<r>` is an open loop at r requests/s (sent on schedule whatever the
answers do, so a stalled server shows its backlog: the latency a command room sees at that demand; the p99
target applies here), `c<n>` a closed loop with n requests in flight (capacity; latency there is mostly
queueing). Prints p50/p90/p99/max latency and requests/s per phase and load, the ratios (baseline /
Outpost), the ingest rate achieved, GC pauses, the machine's load average, and a last JSON line with the
figures. OUTPOST_BENCH_QUICK=1 runs 20k units for 3 s per load.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import time
from array import array
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dispatch.app import ApiContext, init_app  # noqa: E402
from dispatch.clock import SystemClock  # noqa: E402
from dispatch.events import EventBus  # noqa: E402
from dispatch.fleet import Fleet  # noqa: E402
from dispatch.settings import ApiSettings  # noqa: E402
from schemas.fix import Fix  # noqa: E402
from store import access, registry  # noqa: E402
from store.engine import open_engine  # noqa: E402
from store.fixes import FixWriter  # noqa: E402
from store.migrate import migrate  # noqa: E402
from store.settings import StoreSettings  # noqa: E402
from tests.support.services import PgCluster, free_port  # noqa: E402

# San Francisco and its near surroundings.
WEST, SOUTH, EAST, NORTH = -122.52, 37.70, -122.35, 37.82
STATUSES = ("available",) * 6 + ("busy", "en_route", "on_scene", "assigned")
KINDS = ("police", "auxiliary", "vehicle")
BATCH_INTERVAL_S = 0.05


# ---- the client (a separate process) -------------------------------------------------------------------


async def client(url: str, token: str, load: str, seconds: float, seed: int) -> dict[str, float]:
    """Load `url` for `seconds` after a 1 s warm-up. `load` is "c<n>" (closed loop: n requests always in
    flight, which measures capacity) or "o<r>" (open loop: r requests/s on a fixed schedule, latency measured
    from the moment each request is sent; sending never waits for answers, so a stalled server cannot hide
    its backlog; timing from the schedule would add the client's own timer lateness, ~2 ms here)."""
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies_ns: list[int] = []
    errors = 0
    rng = random.Random(seed)

    async def one(session: aiohttp.ClientSession, since_ns: int | None, record: bool) -> None:
        nonlocal errors
        since_ns = since_ns or time.perf_counter_ns()
        q = f"{url}?lon={rng.uniform(WEST, EAST):.6f}&lat={rng.uniform(SOUTH, NORTH):.6f}&k=5"
        async with session.get(q, headers=headers) as response:
            await response.read()
            errors += response.status != 200
        if record:
            latencies_ns.append(time.perf_counter_ns() - since_ns)

    async def closed(session: aiohttp.ClientSession, n: int, until: float, record: bool) -> None:
        async def worker() -> None:
            while time.perf_counter() < until:
                await one(session, time.perf_counter_ns(), record)

        await asyncio.gather(*(worker() for _ in range(n)))

    async def opened(session: aiohttp.ClientSession, rate: float, duration: float, record: bool) -> None:
        tasks = []
        start_ns = time.perf_counter_ns()
        for i in range(int(rate * duration)):
            due_ns = start_ns + int(i * 1e9 / rate)
            delay_s = (due_ns - time.perf_counter_ns()) / 1e9
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            tasks.append(asyncio.create_task(one(session, None, record)))
        await asyncio.gather(*tasks)

    kind, amount = load[0], float(load[1:])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        if kind == "c":
            await closed(session, int(amount), time.perf_counter() + 1.0, False)
            started = time.perf_counter()
            await closed(session, int(amount), started + seconds, True)
        else:
            await opened(session, amount, 1.0, False)
            started = time.perf_counter()
            await opened(session, amount, seconds, True)
        elapsed = time.perf_counter() - started
    ms = np.array(latencies_ns, dtype=np.float64) / 1e6
    return {
        "requests": float(len(ms)),
        "rps": len(ms) / elapsed,
        "errors": float(errors),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }


async def run_client(url: str, token: str, load: str, seconds: float) -> dict[str, float]:
    """Run the client in its own process (so it does not share the server's event loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--client",
        url,
        f"--token={token}",  # a token may begin with "-"
        "--load",
        load,
        "--seconds",
        str(seconds),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"client failed with {proc.returncode}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


# ---- the synthetic fleet -------------------------------------------------------------------------------


def initial_positions(n: int, rng: random.Random) -> list[tuple[str, float, float, str, str]]:
    """(unit_id, lon, lat, status, kind) for n units spread over the city."""
    return [
        (
            f"u{i:06d}",
            rng.uniform(WEST, EAST),
            rng.uniform(SOUTH, NORTH),
            rng.choice(STATUSES),
            rng.choice(KINDS),
        )
        for i in range(n)
    ]


class Mover:
    """Random walks: each fix moves one random unit by up to ~30 m.

    The simulated devices live in the server's process, so their state is kept where the garbage collector
    does not see it (flat arrays of floats): a dict of 100k position tuples, untracked by each full collection
    and tracked again by the next new tuple, added ~1 ms to a young and to a full collection every 0.5 s, a
    cost real devices do not put on the server.
    """

    def __init__(self, units: list[tuple[str, float, float, str, str]], seed: int) -> None:
        self.rng = random.Random(seed)
        self.ids = [u[0] for u in units]
        self.lons = array("d", (u[1] for u in units))
        self.lats = array("d", (u[2] for u in units))

    def step(self) -> tuple[str, float, float]:
        i = self.rng.randrange(len(self.ids))
        lon = self.lons[i] = min(EAST, max(WEST, self.lons[i] + self.rng.uniform(-3e-4, 3e-4)))
        lat = self.lats[i] = min(NORTH, max(SOUTH, self.lats[i] + self.rng.uniform(-3e-4, 3e-4)))
        return self.ids[i], lon, lat


async def paced(rate: float, stop: asyncio.Event, batch: Callable[[int], Awaitable[None]]) -> float:
    """Call `batch(size)` every BATCH_INTERVAL_S so `rate` items/s are produced; returns the rate achieved."""
    loop = asyncio.get_running_loop()
    per_batch = max(1, round(rate * BATCH_INTERVAL_S))
    started = next_at = loop.time()
    done = 0
    while not stop.is_set():
        await batch(per_batch)
        done += per_batch
        next_at += BATCH_INTERVAL_S
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    return done / (loop.time() - started)


# ---- phase 1: Outpost ----------------------------------------------------------------------------------


def _fix(unit_id: str, lon: float, lat: float, now: datetime) -> Fix:
    return Fix(
        device_id="d-" + unit_id, unit_id=unit_id, ts=now, received_at=now, lon=lon, lat=lat, accuracy_m=8.0
    )


async def outpost_phase(
    url: str, units: list[tuple[str, float, float, str, str]], args: argparse.Namespace, levels: list[str]
) -> dict[str, Any]:
    """Serve the real API over a Fleet of the units while ingest runs; measure nearest from the client."""
    engine = open_engine(url, pool_size=8)
    migrate(engine, StoreSettings(database_url=url))
    now = datetime.now(UTC)
    registry.insert_units_bulk(
        engine, [{"id": u, "name": u, "kind": k, "status": s} for u, _, _, s, k in units]
    )
    writer = FixWriter(engine)
    for start in range(0, len(units), 20_000):
        writer.write([_fix(u, lon, lat, now) for u, lon, lat, _, _ in units[start : start + 20_000]])
    clock = SystemClock()
    settings = ApiSettings()
    fleet = Fleet(engine, clock, settings)
    started = time.perf_counter()
    await fleet.rebuild(engine, lookback_s=3600)
    rebuild_s = time.perf_counter() - started
    _, token = access.create_token(engine, role="viewer", name="bench", now=now)
    app = init_app(
        ApiContext(engine=engine, fleet=fleet, bus=EventBus(clock), clock=clock, settings=settings)
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    mover = Mover(units, seed=1)

    async def ingest(size: int) -> None:
        at = datetime.now(UTC)
        batch = [_fix(*mover.step(), at) for _ in range(size)]
        await asyncio.to_thread(writer.write, batch)
        await fleet.apply_gradually(batch)

    try:
        return await _measure(f"http://127.0.0.1:{port}/v1/units/nearest", token, args, levels, ingest) | {
            "rebuild_s": rebuild_s,
            "indexed": len(fleet.index),
        }
    finally:
        await runner.cleanup()
        engine.dispose()


async def _measure(
    url: str, token: str, args: argparse.Namespace, levels: list[str], batch: Callable[[int], Awaitable[None]]
) -> dict[str, Any]:
    stop = asyncio.Event()
    load = asyncio.create_task(paced(args.rate, stop, batch))
    results: dict[str, Any] = {}
    pauses = GcPauses()
    try:
        for c in levels:
            results[c] = await run_client(url, token, c, args.seconds)
    finally:
        pauses.stop()
        stop.set()
        results["ingest_fixes_per_s"] = await load
    results["gc_full_collections"] = pauses.full
    results["gc_collections"] = sum(pauses.by_generation)
    results["gc_max_pause_ms"] = pauses.max_s * 1000
    return results


class GcPauses:
    """The garbage collector's pauses in this process while measuring, by generation.

    Outpost's policy (dispatch.collector.GcPolicy, started by init_app) runs a full collection every 0.5 s
    over what is not frozen, so "full" counts those too: each walks only what survived since the previous
    one.
    """

    def __init__(self) -> None:
        self.by_generation = [0, 0, 0]
        self.max_s = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    @property
    def full(self) -> int:
        """Full (generation 2) collections."""
        return self.by_generation[2]

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        self.max_s = max(self.max_s, time.perf_counter() - self._started)
        self.by_generation[info["generation"]] += 1

    def stop(self) -> None:
        gc.callbacks.remove(self._callback)


# ---- phase 2: the PostGIS baseline ---------------------------------------------------------------------

BASELINE_DDL = """
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE TABLE latest_positions (unit_id text PRIMARY KEY, status text NOT NULL, kind text NOT NULL,
    ts timestamptz NOT NULL, accuracy_m real, geom geometry(Point, 4326) NOT NULL);
"""
BASELINE_QUERY = (
    "SELECT unit_id, kind, status, ts, accuracy_m,"
    " ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography) AS distance_m"
    " FROM latest_positions WHERE status = 'available'"
    " ORDER BY geom <-> ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326) LIMIT %(k)s"
)
BASELINE_UPDATE = (
    "UPDATE latest_positions SET geom = ST_SetSRID(ST_MakePoint(%s, %s), 4326), ts = %s WHERE unit_id = %s"
)


async def baseline_phase(
    dsn: str, units: list[tuple[str, float, float, str, str]], args: argparse.Namespace, levels: list[str]
) -> dict[str, Any]:
    """The same queries answered by PostGIS KNN over a latest-position table updated per fix."""
    import psycopg
    from psycopg_pool import AsyncConnectionPool

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(BASELINE_DDL)
        now = datetime.now(UTC)
        async with (
            conn.cursor() as cur,
            cur.copy(
                "COPY latest_positions (unit_id, status, kind, ts, accuracy_m, geom) FROM STDIN"
            ) as copy,
        ):
            for u, lon, lat, s, k in units:
                await copy.write_row((u, s, k, now, 8.0, f"SRID=4326;POINT({lon} {lat})"))
        await conn.execute("CREATE INDEX ON latest_positions USING gist (geom)")
        await conn.execute("ANALYZE latest_positions")
    pool = AsyncConnectionPool(dsn, min_size=8, max_size=8, open=False)
    await pool.open()
    updater = await psycopg.AsyncConnection.connect(dsn)
    mover = Mover(units, seed=1)

    async def nearest(request: web.Request) -> web.Response:
        params = {
            "lon": float(request.query["lon"]),
            "lat": float(request.query["lat"]),
            "k": int(request.query.get("k", "5")),
        }
        async with pool.connection() as c, c.cursor() as cur:
            await cur.execute(BASELINE_QUERY, params)
            rows = await cur.fetchall()
        units_out = [
            {
                "id": r[0],
                "kind": r[1],
                "status": r[2],
                "ts": r[3].isoformat(),
                "accuracy_m": r[4],
                "distance_m": r[5],
            }
            for r in rows
        ]
        return web.json_response({"units": units_out})

    async def ingest(size: int) -> None:
        at = datetime.now(UTC)
        async with updater.cursor() as cur:
            await cur.executemany(
                BASELINE_UPDATE, [(lon, lat, at, u) for u, lon, lat in (mover.step() for _ in range(size))]
            )
        await updater.commit()

    app = web.Application()
    app.router.add_get("/nearest", nearest)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        return await _measure(f"http://127.0.0.1:{port}/nearest", "", args, levels, ingest)
    finally:
        await runner.cleanup()
        await updater.close()
        await pool.close()


# ---- main ----------------------------------------------------------------------------------------------


def _label(load: str) -> str:
    return f"{load[1:]} in flight" if load[0] == "c" else f"{load[1:]} req/s offered"


def _print_table(name: str, results: dict[str, Any], levels: list[str]) -> None:
    print(
        f"\n{name}: ingest {results['ingest_fixes_per_s']:.0f} fixes/s during the run; "
        f"{results['gc_collections']} GC collections ({results['gc_full_collections']} full), "
        f"longest GC pause {results['gc_max_pause_ms']:.1f} ms"
    )
    print(
        f"  {'load':>18} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>6}"
    )
    for c in levels:
        r = results[c]
        print(
            f"  {_label(c):>18} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f} "
            f"{r['max_ms']:>8.1f} {r['errors']:>6.0f}"
        )


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Both phases on one PostgreSQL cluster; returns the figures."""
    levels = args.load.split(",")
    units = initial_positions(args.units, random.Random(42))
    cluster = PgCluster(fsync=False).start()
    try:
        cluster.psql("CREATE DATABASE outpost")
        cluster.psql("CREATE DATABASE baseline")
        print(
            f"{args.units} units, {args.rate:.0f} fixes/s, k=5, status=available, "
            f"{args.seconds:.0f} s per load after 1 s warm-up, loads {levels}; "
            f"PostgreSQL at 127.0.0.1:{cluster.port} (fsync off); "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
        )
        ours = await outpost_phase(cluster.url("outpost"), units, args, levels)
        print(
            f"Outpost: live index rebuilt from storage in {ours['rebuild_s']:.1f} s ({ours['indexed']} units)"
        )
        _print_table("Outpost API (in-memory index, auth + audit)", ours, levels)
        if args.skip_baseline:
            return {"units": args.units, "rate": args.rate, "outpost": ours}
        base = await baseline_phase(cluster.url("baseline"), units, args, levels)
        _print_table("Baseline: PostGIS KNN on a latest-position table", base, levels)
    finally:
        cluster.close()
    print(
        "\nratios (baseline / Outpost): "
        + "; ".join(
            f"{_label(c)}: p99 {base[c]['p99_ms'] / ours[c]['p99_ms']:.1f}x, "
            f"p50 {base[c]['p50_ms'] / ours[c]['p50_ms']:.1f}x"
            + (f", req/s {ours[c]['rps'] / base[c]['rps']:.1f}x" if c[0] == "c" else "")
            for c in levels
        )
    )
    for c in levels:
        if c[0] == "o":
            verdict = "met" if ours[c]["p99_ms"] <= 5 else "NOT met"
            print(f"target p99 <= 5 ms at {_label(c)}: {verdict} ({ours[c]['p99_ms']:.2f} ms)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine)")
    return {"units": args.units, "rate": args.rate, "outpost": ours, "baseline": base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    parser.add_argument("--units", type=int, default=20_000 if quick else 100_000)
    parser.add_argument("--rate", type=float, default=2000.0, help="fixes per second during the measurement")
    parser.add_argument("--seconds", type=float, default=3.0 if quick else 8.0, help="per concurrency level")
    parser.add_argument(
        "--load",
        default="o100,o400,c1,c16",
        help="comma-separated loads: o<r> open loop at r req/s, c<n> closed loop with n in flight",
    )
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        default=None,
        help="sys.setswitchinterval for the server process (Python's default: 5 ms)",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="measure Outpost only")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--token", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        result = asyncio.run(client(args.client, args.token, args.load, args.seconds, seed=7))
        print(json.dumps(result))
        return
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    figures = asyncio.run(bench(args))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
