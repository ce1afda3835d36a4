"""The fix stream's process: moves the fleet at a fixed rate into one design's store, logging every batch.

    python benchmarks/feeder.py --units N --rate 5000 --sink mqtt|postgis|redis --target URL --log FILE

`mqtt`: each fix is published (QoS 1, Outpost's own JSON format) to outpost/v1/devices/<unit>/fix with the
device-side publisher Outpost ships, and the stream's end waits until the broker has acknowledged every fix.
`postgis`: each batch is one UPDATE … FROM unnest(…) of latest_positions in one transaction. `redis`: each
batch is one pipeline of GEOADDs into the unit's status key. Every design therefore carries the same write
load, from the same seeded stream (fleet_stream.Walk). Runs until SIGTERM or SIGINT, then writes the log
(fleet_stream.FixLog) and prints {"fixes": n, "fixes_per_s": r, "flush_s": s} as its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fleet_stream import BATCH_INTERVAL_S, FixLog, Fleet, Walk

Sink = Callable[[np.ndarray, np.ndarray, np.ndarray], Awaitable[None]]
_encode = msgspec.json.Encoder().encode


@dataclass
class Feed:
    """One design's sink: `send` a batch, `finish` once the stream stops (flush what is still on its way)."""

    send: Sink
    finish: Callable[[], Awaitable[None]]


async def mqtt_sink(fleet: Fleet, url: str) -> Feed:
    """Publish each fix as its device would, QoS 1, with the device-side publisher Outpost ships (asyncio,
    acknowledgements counted); `finish` waits until the broker has acknowledged every fix."""
    from ingest.mqtt.publisher import Publisher

    pub = Publisher(url, "bench-feeder")
    await pub.connect()
    seq = np.zeros(len(fleet), dtype=np.int64)

    async def send(idx: np.ndarray, lons: np.ndarray, lats: np.ndarray) -> None:
        ts_ms = int(time.time() * 1000)
        seq[idx] += 1
        for i, lon, lat, n in zip(idx.tolist(), lons.tolist(), lats.tolist(), seq[idx].tolist(), strict=True):
            body = {"ts": ts_ms, "lat": round(lat, 7), "lon": round(lon, 7), "acc_m": 5.0, "seq": n}
            pub.publish(f"outpost/v1/devices/{fleet.ids[i]}/fix", _encode(body), qos=1)
        await pub.wait_pending_below(MAX_PENDING)

    async def finish() -> None:
        await pub.flush(timeout_s=120.0)
        await pub.close()

    return Feed(send, finish)


async def postgis_sink(fleet: Fleet, dsn: str) -> Feed:
    """One UPDATE of the batch's rows, one transaction per batch."""
    import psycopg

    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    sql = (
        "UPDATE latest_positions AS p SET geog = ST_SetSRID(ST_MakePoint(v.lon, v.lat), 4326)::geography,"
        " ts = now() FROM unnest(%s::text[], %s::float8[], %s::float8[]) AS v(id, lon, lat)"
        " WHERE p.unit_id = v.id"
    )

    async def send(idx: np.ndarray, lons: np.ndarray, lats: np.ndarray) -> None:
        await conn.execute(sql, ([fleet.ids[i] for i in idx.tolist()], lons.tolist(), lats.tolist()))

    return Feed(send, conn.close)


async def redis_sink(fleet: Fleet, url: str) -> Feed:
    """One pipeline of GEOADDs per batch, each unit into its status's key."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)

    async def send(idx: np.ndarray, lons: np.ndarray, lats: np.ndarray) -> None:
        pipe = client.pipeline(transaction=False)
        for i, lon, lat in zip(idx.tolist(), lons.tolist(), lats.tolist(), strict=True):
            pipe.geoadd(f"units:{fleet.status(i)}", (lon, lat, fleet.ids[i]))
        await pipe.execute()

    return Feed(send, client.aclose)


SINKS: dict[str, Callable[[Fleet, str], Awaitable[Feed]]] = {
    "mqtt": mqtt_sink,
    "postgis": postgis_sink,
    "redis": redis_sink,
}
# Fixes the MQTT publisher may hold unacknowledged before the stream waits (and falls behind its rate).
MAX_PENDING = 50_000


async def feed(send: Sink, walk: Walk, rate: float, log: FixLog, stop: asyncio.Event) -> dict[str, Any]:
    """Send a batch every BATCH_INTERVAL_S until stopped; the rate achieved."""
    per_batch = max(1, round(rate * BATCH_INTERVAL_S))
    started = next_at = time.monotonic()
    fixes = 0
    while not stop.is_set():
        idx, lons, lats = walk.batch(per_batch)
        log.add(time.monotonic_ns(), idx, lons, lats)
        await send(idx, lons, lats)
        fixes += len(idx)
        next_at += BATCH_INTERVAL_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
    return {"fixes": fixes, "fixes_per_s": fixes / (time.monotonic() - started)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Feed until SIGTERM/SIGINT, flush, write the log."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    fleet = Fleet.generate(args.units)
    sink = await SINKS[args.sink](fleet, args.target)
    log = FixLog()
    print("feeding", flush=True)
    result = await feed(sink.send, Walk(fleet), args.rate, log, stop)
    began = time.monotonic()
    await sink.finish()
    log.save(args.log)
    return result | {"flush_s": time.monotonic() - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--units", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="fixes per second")
    parser.add_argument("--sink", choices=sorted(SINKS), required=True)
    parser.add_argument("--target", required=True, help="broker, database or Redis URL")
    parser.add_argument("--log", type=Path, required=True, help="where to write the batches sent (.npz)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
