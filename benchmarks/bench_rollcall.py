"""A roll call of 1,000 units answered by simulated devices over the real broker, against the same fixes
without a roll call, in the same run.

Target (issue 12): the last result within 10 s of the start.

    .venv/bin/python benchmarks/bench_rollcall.py [--units 1000] [--rate 1000]

Starts its own PostgreSQL with PostGIS and Mosquitto, and Outpost through its composition root (role
`all`, the broker external). 1,000 police units each hold their own police grid and have one phone; the
fleet publishes a background of `--rate` fixes/s throughout. Then:

- baseline: every device publishes one fix at once (a burst of 1,000 without a roll call): the time until
  all are stored, and the stored rate of the background meanwhile;
- roll call: `POST /v1/rollcalls` of everyone on duty; every device answers its roll-call message with a
  fresh fix (on /fix) and an answer carrying it (on /answer): the time from the POST to the last unit's
  result (GET /v1/rollcalls/{id}), the results, and the stored rate of the background meanwhile.

Prints both, the ratios roll call / baseline, and a last JSON line. OUTPOST_BENCH_QUICK=1: 200 units.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import msgspec
from shapely.geometry import MultiPolygon, box

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ingest.mqtt.publisher import Publisher  # noqa: E402
from outpost.root import Running, serve  # noqa: E402
from outpost.settings import load_settings  # noqa: E402
from schemas.credentials import hash_secret, new_secret  # noqa: E402
from store import access, duty, grids, registry  # noqa: E402
from store.engine import open_engine  # noqa: E402
from store.fixes import count_fixes  # noqa: E402
from store.migrate import migrate  # noqa: E402
from store.settings import StoreSettings  # noqa: E402
from tests.support.services import Mosquitto, PgCluster, free_port  # noqa: E402

BENCH_HASH = hash_secret(new_secret())  # one for every device: scrypt costs ~50 ms a hash

SIDE_DEG = 0.01  # each unit's grid: a square of about 1 km


def centre(i: int) -> tuple[float, float]:
    return (i % 40) * SIDE_DEG + SIDE_DEG / 2, (i // 40) * SIDE_DEG + SIDE_DEG / 2


def prepare(url: str, units: int) -> str:
    """Units, phones, grids and assignments; a dispatcher's token."""
    engine = open_engine(url, pool_size=2)
    migrate(engine, StoreSettings(database_url=url))
    now = datetime.now(UTC)
    registry.insert_units_bulk(
        engine,
        [{"id": f"u{i}", "name": f"u{i}", "kind": "police", "status": "available"} for i in range(units)],
    )
    for i in range(units):
        x, y = (i % 40) * SIDE_DEG, (i // 40) * SIDE_DEG
        square = MultiPolygon([box(x, y, x + SIDE_DEG, y + SIDE_DEG)])
        grids.create_grid(
            engine,
            grid_id=f"police-{i}",
            level="police",
            name=f"P{i}",
            parent_id=None,
            geometry=square,
            now=now,
        )
        # A credential, or ingest refuses the device (no_credentials); the benchmark never presents it.
        registry.insert_device(engine, id=f"d{i}", kind="phone", credentials_hash=BENCH_HASH, now=now)
        registry.insert_binding(
            engine, device_id=f"d{i}", unit_id=f"u{i}", valid_from=now - timedelta(hours=1), valid_to=None
        )
        duty.create_assignment(
            engine,
            unit_id=f"u{i}",
            grid_id=f"police-{i}",
            starts_at=now - timedelta(minutes=5),
            ends_at=now + timedelta(hours=8),
            actor="bench",
            now=now,
        )
    token = access.create_token(engine, role="dispatcher", name="bench", now=now)[1]
    engine.dispose()
    return token


def fix_of(i: int) -> bytes:
    lon, lat = centre(i)
    return msgspec.json.encode({"ts": round(time.time() * 1000), "lon": lon, "lat": lat, "acc_m": 5.0})


@contextlib.asynccontextmanager
async def outpost(url: str, broker: Mosquitto, spool: Path) -> AsyncIterator[Running]:
    settings = load_settings(
        {
            "OUTPOST_DATABASE_URL": url,
            "OUTPOST_MQTT_URL": broker.url,
            "OUTPOST_HTTP_PORT": str(free_port()),
            "OUTPOST_SPOOL_DIR": str(spool),
        }
    )
    stop = asyncio.Event()
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve(settings, "all", stop=stop, on_ready=ready.set_result))
    await asyncio.wait({ready, server}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        server.result()
    try:
        yield ready.result()
    finally:
        stop.set()
        await asyncio.wait_for(server, 60)


async def background(devices: Publisher, units: int, rate: float, stop: asyncio.Event) -> None:
    """`rate` fixes/s spread over the fleet, in tenths of a second."""
    per_tick, i = max(1, round(rate / 10)), 0
    while not stop.is_set():
        for _ in range(per_tick):
            devices.publish(f"outpost/v1/devices/d{i % units}/fix", fix_of(i % units), qos=1)
            i += 1
        await asyncio.sleep(0.1)


async def stored_rate(url: str, during: Any) -> tuple[Any, float]:
    """Run `during`; the fixes stored per second meanwhile."""
    engine = open_engine(url, pool_size=1)
    try:
        before, started = count_fixes(engine), time.perf_counter()
        result = await during
        elapsed = time.perf_counter() - started
        return result, (count_fixes(engine) - before) / elapsed
    finally:
        engine.dispose()


async def burst(url: str, devices: Publisher, units: int, window_s: float) -> float:
    """One fix from every device at once; seconds until all are stored (the window is waited out)."""
    engine = open_engine(url, pool_size=1)
    started = time.perf_counter()
    try:
        before = count_fixes(engine)
        for i in range(units):
            devices.publish(f"outpost/v1/devices/d{i}/fix", fix_of(i), qos=1)
        done_s = None
        while time.perf_counter() - started < window_s or done_s is None:
            if done_s is None and count_fixes(engine) - before >= units:
                done_s = time.perf_counter() - started
            await asyncio.sleep(0.05)
        return done_s
    finally:
        engine.dispose()


async def rollcall(http: aiohttp.ClientSession, token: str, window_s: float) -> tuple[float, dict[str, int]]:
    """Call the roll; seconds from the POST to the last result, and the counts."""
    auth = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    async with http.post("/v1/rollcalls", json={"scope": {"kind": "on_duty"}}, headers=auth) as resp:
        assert resp.status == 201, await resp.text()
        rollcall_id = (await resp.json())["id"]
    done_s, counts = None, {}
    while time.perf_counter() - started < window_s or done_s is None:
        async with http.get(f"/v1/rollcalls/{rollcall_id}", headers=auth) as resp:
            counts = (await resp.json())["counts"]
        if done_s is None and counts["pending"] == 0:
            done_s = time.perf_counter() - started
        await asyncio.sleep(0.1)
    return done_s, counts


async def answering(broker: Mosquitto, devices: Publisher) -> None:
    """Every device answers its roll call: a fresh fix, and an answer carrying it."""
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier="bench-devices") as client:
        await client.subscribe("outpost/v1/devices/+/rollcall", qos=1)
        async for message in client.messages:
            device = str(message.topic).split("/")[3]
            i = int(device[1:])
            fix = fix_of(i)
            rollcall_id = msgspec.json.decode(bytes(message.payload))["rollcall_id"]  # type: ignore[arg-type]
            devices.publish(f"outpost/v1/devices/{device}/fix", fix, qos=1)
            answer = b'{"rollcall_id": "%s", "fix": %s}' % (rollcall_id.encode(), fix)
            devices.publish(f"outpost/v1/devices/{device}/answer", answer, qos=1)


async def bench(url: str, args: argparse.Namespace, spool: Path) -> dict[str, Any]:
    token = prepare(url, args.units)
    broker = Mosquitto().start()
    try:
        async with (
            outpost(url, broker, spool) as running,
            aiohttp.ClientSession(base_url=running.http_url) as http,
        ):
            devices = Publisher(broker.url, client_id="bench-fleet")
            await devices.connect()
            stop = asyncio.Event()
            load = asyncio.create_task(background(devices, args.units, args.rate, stop))
            answers = asyncio.create_task(answering(broker, devices))
            await asyncio.sleep(3)  # the fleet's first fixes in: every unit on the map
            burst_s, base_rate = await stored_rate(url, burst(url, devices, args.units, args.window))
            (call_s, counts), call_rate = await stored_rate(url, rollcall(http, token, args.window))
            stop.set()
            answers.cancel()
            await asyncio.gather(load, answers, return_exceptions=True)
            await devices.close()
    finally:
        broker.close()
    figures = {
        "units": args.units,
        "background_fixes_per_s": args.rate,
        "baseline_burst_stored_s": round(burst_s, 3),
        "baseline_stored_per_s": round(base_rate, 1),
        "rollcall_last_result_s": round(call_s, 3),
        "rollcall_stored_per_s": round(call_rate, 1),
        "rollcall_counts": counts,
        "ratio_time_rollcall_to_burst": round(call_s / burst_s, 2),
        "ratio_ingest_rate_during_rollcall": round(call_rate / base_rate, 3),
    }
    print(f"{args.units} units, background {args.rate:g} fixes/s")
    print(f"  baseline: a burst of {args.units} fixes stored in {burst_s:.2f} s; {base_rate:,.0f} stored/s")
    print(f"  roll call: last result {call_s:.2f} s after the start; {call_rate:,.0f} stored/s; {counts}")
    print(f"  ratios: time {call_s / burst_s:.2f}x the burst, ingest rate {call_rate / base_rate:.3f}x")
    return figures


def main() -> None:
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--units", type=int, default=200 if quick else 1000)
    parser.add_argument("--rate", type=float, default=1000.0, help="background fixes per second")
    parser.add_argument("--window", type=float, default=12.0, help="seconds each phase is measured over")
    args = parser.parse_args()
    cluster = PgCluster().start()
    try:
        cluster.psql("CREATE DATABASE bench")
        figures = asyncio.run(
            bench(cluster.url("bench"), args, Path("/tmp") / f"bench-rollcall-{os.getpid()}")
        )
    finally:
        cluster.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
