"""The fix stream's process: moves the fleet at a fixed rate into one design's store, logging every batch.

    python benchmarks/feeder.py --units N --rate 5000 --sink mqtt|postgis|redis --target URL --log FILE

`mqtt`: each fix is published (QoS 1, Outpost's own JSON format) to outpost/v1/devices/<unit>/fix, the way a
device reports to Outpost. `postgis`: each batch is one UPDATE … FROM unnest(…) of latest_positions in one
transaction. `redis`: each batch is one pipeline of GEOADDs into the unit's status key. Every design therefore
carries the same write load, from the same seeded stream (fleet_stream.Walk). Runs until SIGTERM or SIGINT,
then writes the log (fleet_stream.FixLog) and prints {"fixes": n, "fixes_per_s": r} as its last line.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fleet_stream import BATCH_INTERVAL_S, FixLog, Fleet, Walk

Sink = Callable[[np.ndarray, np.ndarray, np.ndarray], None]
_encode = msgspec.json.Encoder().encode


def mqtt_sink(fleet: Fleet, url: str) -> Sink:
    """Publish each fix as its device would (QoS 1; up to 2,000 unacknowledged in flight)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-feeder")
    client.max_inflight_messages_set(2000)
    client.max_queued_messages_set(0)
    client.connect(host, int(port))
    client.loop_start()
    seq = np.zeros(len(fleet), dtype=np.int64)

    def send(idx: np.ndarray, lons: np.ndarray, lats: np.ndarray) -> None:
        ts_ms = int(time.time() * 1000)
        seq[idx] += 1
        for i, lon, lat, n in zip(idx.tolist(), lons.tolist(), lats.tolist(), seq[idx].tolist(), strict=True):
            body = {"ts": ts_ms, "lat": round(lat, 7), "lon": round(lon, 7), "acc_m": 5.0, "seq": n}
            client.publish(f"outpost/v1/devices/{fleet.ids[i]}/fix", _encode(body), qos=1)

    return send


def postgis_sink(fleet: Fleet, dsn: str) -> Sink:
    """One UPDATE of the batch's rows, one transaction per batch."""
    import psycopg

    conn = psycopg.connect(dsn, autocommit=True)
    sql = (
        "UPDATE latest_positions AS p SET geog = ST_SetSRID(ST_MakePoint(v.lon, v.lat), 4326)::geography,"
        " ts = now() FROM unnest(%s::text[], %s::float8[], %s::float8[]) AS v(id, lon, lat)"
        " WHERE p.unit_id = v.id"
    )

    def send(idx: np.ndarray, lons: np.ndarray, lats: np.ndarray) -> None:
        conn.execute(sql, ([fleet.ids[i] for i in idx.tolist()], lons.tolist(), lats.tolist()))

    return send


def redis_sink(fleet: Fleet, url: str) -> Sink:
    """One pipeline of GEOADDs per batch, each unit into its status's key."""
    import redis

    client = redis.Redis.from_url(url)

    def send(idx: np.ndarray, lons: np.ndarray, lats: np.ndarray) -> None:
        pipe = client.pipeline(transaction=False)
        for i, lon, lat in zip(idx.tolist(), lons.tolist(), lats.tolist(), strict=True):
            pipe.geoadd(f"units:{fleet.status(i)}", (lon, lat, fleet.ids[i]))
        pipe.execute()

    return send


SINKS: dict[str, Callable[[Fleet, str], Sink]] = {
    "mqtt": mqtt_sink,
    "postgis": postgis_sink,
    "redis": redis_sink,
}


def feed(send: Sink, walk: Walk, rate: float, log: FixLog, stopped: Callable[[], bool]) -> dict[str, Any]:
    """Send a batch every BATCH_INTERVAL_S until stopped; the rate achieved."""
    per_batch = max(1, round(rate * BATCH_INTERVAL_S))
    started = next_at = time.monotonic()
    fixes = 0
    while not stopped():
        idx, lons, lats = walk.batch(per_batch)
        log.add(time.monotonic_ns(), idx, lons, lats)
        send(idx, lons, lats)
        fixes += len(idx)
        next_at += BATCH_INTERVAL_S
        time.sleep(max(0.0, next_at - time.monotonic()))
    return {"fixes": fixes, "fixes_per_s": fixes / (time.monotonic() - started)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--units", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="fixes per second")
    parser.add_argument("--sink", choices=sorted(SINKS), required=True)
    parser.add_argument("--target", required=True, help="broker, database or Redis URL")
    parser.add_argument("--log", type=Path, required=True, help="where to write the batches sent (.npz)")
    args = parser.parse_args()
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    fleet = Fleet.generate(args.units)
    send = SINKS[args.sink](fleet, args.target)
    log = FixLog()
    print("feeding", flush=True)
    result = feed(send, Walk(fleet), args.rate, log, lambda: stop)
    log.save(args.log)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
