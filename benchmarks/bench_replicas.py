"""Replicas benchmark: how soon a published fix is visible on *both* `outpost api` replicas, following the
live feed (OUTPOST_API_FOLLOW=feed) against polling the database (=poll), in the same run.

    .venv/bin/python benchmarks/bench_replicas.py [--rate 2000] [--duration 20] [--devices 1000]

Starts a PostgreSQL cluster and a Mosquitto broker of its own; for each mode, a fresh database, two
`outpost ingest` workers on one MQTT 5 shared subscription and two `outpost api` replicas (subprocesses, as
in production). The load generator of bench_ingest publishes `--rate` fixes/s over `--devices` devices
(QoS 1, `ts` = the publish time in ms). Each replica's live stream (/v1/stream, moves coalesced at 10 ms)
is read for the devices inside a box holding about a tenth of them; a move event carries the fix's `ts`, so
publish → visible is the time the event arrived minus `ts`, and publish → visible on both is the later of
the two replicas for the same (unit, ts). Fixes a replica never showed (poll mode applies only each device's
newest fix per poll; coalescing) are counted, not timed. The first `STEADY_AFTER_S` are excluded.

`--memory N,N,...` measures instead what the live picture (units, devices, bindings, the index) takes per
unit, with tracemalloc, each unit with one device and one fix (docs/capacity.md).

Both modes run with OUTPOST_BATCH_MAX_AGE_MS=`--batch-age-ms` (default 50; the shipped 200 ms is a floor
under any commit-then-publish latency). OUTPOST_BENCH_RESULT names a file for the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402

from benchmarks.bench_ingest import SF_BOX, publish_load, say  # noqa: E402
from benchmarks.figures import measured  # noqa: E402
from schemas.credentials import hash_secret, new_secret  # noqa: E402
from store.devices import register_unknown  # noqa: E402
from store.engine import open_engine  # noqa: E402
from store.migrate import migrate  # noqa: E402
from store.registry import set_device_credentials  # noqa: E402
from store.settings import StoreSettings  # noqa: E402
from tests.support.metrics import matching, value  # noqa: E402
from tests.support.replicas import Cluster, Role, wait_until  # noqa: E402
from tests.support.services import Mosquitto, PgCluster  # noqa: E402

MODES = ("feed", "poll")
STEADY_AFTER_S = 3.0
# The watched box: the west tenth of the devices' area (bench_ingest.where spreads them over SF_BOX).
_WEST, _SOUTH, _WIDTH, _HEIGHT = SF_BOX
BOX = (_WEST - 0.01, _SOUTH - 0.01, _WEST + _WIDTH / 10, _SOUTH + _HEIGHT + 0.01)


def prepare(cluster: PgCluster, name: str, devices: list[str]) -> str:
    """A migrated database with every device registered (a unit each); its URL."""
    cluster.psql(f"CREATE DATABASE {name}")
    url = cluster.url(name)
    engine = open_engine(url, pool_size=2)
    try:
        migrate(engine, StoreSettings(database_url=url))
        now = datetime.now(UTC)
        digest = hash_secret(new_secret())  # one for every device: scrypt costs ~50 ms a hash
        for d in devices:
            register_unknown(engine, d, now=now)
            set_device_credentials(engine, d, digest)  # or ingest refuses the device (no_credentials)
    finally:
        engine.dispose()
    return url


async def watch(replica: Role, token: str, seen: dict[tuple[str, str], float], stop: asyncio.Event) -> None:
    """Record when each (unit, ts) move first arrives on the replica's live stream."""
    bbox = ",".join(f"{v:.5f}" for v in BOX)
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(f"{replica.url}/v1/stream?bbox={bbox}", headers=headers) as resp,
    ):
        resp.raise_for_status()
        while not stop.is_set():
            line = await resp.content.readline()
            if not line:
                return
            if line.startswith(b"data: ") and b'"unit.moved"' in line:
                now_s = time.time()
                event = json.loads(line[6:])
                seen.setdefault((event["unit_id"], event["ts"]), now_s)


async def watch_feed(url: str, seen: dict[tuple[str, str], float], stop: asyncio.Event) -> None:
    """When each fix in the box arrives on the live feed itself (the ingest leg, before any replica)."""
    from ingest.feed_listen import listen_feed
    from ingest.settings import IngestSettings
    from schemas.feed import decode_batch

    west, south, east, north = BOX

    def on_payload(payload: bytes) -> None:
        now_s = time.time()
        for f in decode_batch(payload).fixes:
            if west <= f.lon <= east and south <= f.lat <= north:
                seen.setdefault((f.device_id, f.ts.isoformat()), now_s)

    settings = IngestSettings(mqtt_url=url, mqtt_protocol="5", mqtt_client_id="bench-feed-watch")
    await listen_feed(settings, on_payload, stop, subscribed=asyncio.Event())


async def picture_lag(replica: Role, token: str) -> dict[str, float]:
    """The replica's own outpost_picture_lag_seconds{via="feed"}: fixes, mean and the bucket holding the
    p99 (its upper bound), in ms, over the whole run (from a worker's receipt to the picture)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{replica.url}/metrics", headers=headers) as resp,
    ):
        resp.raise_for_status()
        body = await resp.text()
    lag = "outpost_picture_lag_seconds"
    count, total = value(body, lag + "_count", via="feed"), value(body, lag + "_sum", via="feed")
    buckets = sorted((float(s.labels["le"]), s.value) for s in matching(body, lag + "_bucket", via="feed"))
    p99 = next((le for le, n in buckets if n >= 0.99 * count), float("nan")) if count > 0 else float("nan")
    return {
        "fixes": count,
        "mean_ms": total / count * 1000 if count > 0 else float("nan"),
        "p99_le_ms": p99 * 1000,
    }


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def run_mode(
    mode: str, args: argparse.Namespace, cluster: PgCluster, broker: Mosquitto, devices: list[str], work: Path
) -> dict[str, Any]:
    url = await asyncio.to_thread(prepare, cluster, f"bench_{mode}", devices)
    extra = {
        "OUTPOST_BATCH_MAX_AGE_MS": str(args.batch_age_ms),
        "OUTPOST_STREAM_COALESCE_S": "0.01",
        "OUTPOST_API_FOLLOW": mode,
        "OUTPOST_REGISTER_UNKNOWN_DEVICES": "false",
        "OUTPOST_MAX_FIX_AGE_S": "3600",
    }
    nodes = Cluster(url, broker.url, work / mode, extra)
    nodes.root.mkdir(parents=True)
    token = await asyncio.to_thread(nodes.create_token)
    roles = [nodes.ingest(f"{mode}-ingest-a"), nodes.ingest(f"{mode}-ingest-b")]
    replicas = [nodes.api(f"{mode}-api-1"), nodes.api(f"{mode}-api-2")]
    try:
        for role in (*roles, *replicas):
            role.start()
        for role in (*roles, *replicas):
            await asyncio.to_thread(wait_until, role.ready, f"{role.name} ready", 120.0)
        seen: list[dict[tuple[str, str], float]] = [{}, {}]
        stop = asyncio.Event()
        watchers = [
            asyncio.create_task(watch(r, token, s, stop)) for r, s in zip(replicas, seen, strict=True)
        ]
        on_feed: dict[tuple[str, str], float] = {}
        if mode == "feed":
            watchers.append(asyncio.create_task(watch_feed(broker.url, on_feed, stop)))
        await asyncio.sleep(1.0)
        start_at = time.time() + 2.0
        published, _cpu = await asyncio.to_thread(
            publish_load, broker.url, devices, args.rate, args.duration, args.publishers, start_at
        )
        await asyncio.sleep(3.0)  # the last polls and batches
        own_lag = [await picture_lag(r, token) for r in replicas] if mode == "feed" else []
        stop.set()
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    finally:
        await asyncio.to_thread(nodes.stop_all)
    steady_ms = int((start_at + STEADY_AFTER_S) * 1000)

    def ts_ms(key: tuple[str, str]) -> float:
        return datetime.fromisoformat(key[1]).timestamp() * 1000

    one = [(t - ts_ms(k) / 1000) * 1000 for s in seen for k, t in s.items() if ts_ms(k) >= steady_ms]
    both_keys = [k for k in seen[0].keys() & seen[1].keys() if ts_ms(k) >= steady_ms]
    both = [(max(seen[0][k], seen[1][k]) - ts_ms(k) / 1000) * 1000 for k in both_keys]
    in_box = sum(1 for s in seen for k in s if ts_ms(k) >= steady_ms)
    feed_leg = [(t - ts_ms(k) / 1000) * 1000 for k, t in on_feed.items() if ts_ms(k) >= steady_ms]
    return {
        "mode": mode,
        "rate_offered": args.rate,
        "fixes_published": sum(published.values()),
        "moves_seen": in_box,
        "seen_on_both": len(both),
        "visible_one_p50_ms": percentile(one, 50),
        "visible_one_p99_ms": percentile(one, 99),
        "visible_both_p50_ms": percentile(both, 50),
        "visible_both_p99_ms": percentile(both, 99),
        "on_feed_p50_ms": percentile(feed_leg, 50),
        "on_feed_p99_ms": percentile(feed_leg, 99),
        "own_lag": own_lag,
        "load_average": os.getloadavg()[0],
    }


def picture_bytes(units: int) -> int:
    """Bytes tracemalloc sees allocated by loading `units` units (one device, one binding, one fix each)."""
    import gc
    import tracemalloc

    from dispatch.clock import SystemClock
    from dispatch.fleet import Fleet
    from dispatch.settings import ApiSettings
    from schemas.fix import Fix
    from store.registry import Binding, Device, Unit

    now = datetime.now(UTC)
    records = (
        [Unit(f"u{i:07}", f"Unit {i}", "police", (), "available", now, True, now) for i in range(units)],
        [Device(f"d{i:07}", "phone", True, 0, False, "auto", now) for i in range(units)],
        [Binding(i, f"d{i:07}", f"u{i:07}", now, None) for i in range(units)],
        [Fix(f"d{i:07}", now, -122.5 + i % 1000 * 1e-4, 37.7 + i // 1000 * 1e-4, now) for i in range(units)],
    )
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fleet = Fleet(None, SystemClock(), ApiSettings())  # type: ignore[arg-type]  # load() reads no database
    fleet.picture.load(*records)
    del records
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(fleet) == units
    return used


def report_memory(sizes: list[int]) -> None:
    say(f"{'units':>9} {'MiB':>8} {'bytes/unit':>11}")
    for n in sizes:
        used = picture_bytes(n)
        say(f"{n:9,d} {used / 2**20:8.1f} {used / n:11,.0f}")


async def main(args: argparse.Namespace) -> None:
    if args.memory:
        report_memory([int(n) for n in args.memory.split(",")])
        return
    work = Path(tempfile.mkdtemp(prefix="outpost-bench-replicas-"))
    devices = [f"bench-{i:05d}" for i in range(args.devices)]
    cluster, broker = PgCluster().start(), Mosquitto().start()
    say(f"PostgreSQL :{cluster.port}, Mosquitto :{broker.port}, {len(devices)} devices; logs in {work}")
    try:
        results = [await run_mode(mode, args, cluster, broker, devices, work) for mode in args.modes]
    finally:
        broker.close()
        cluster.close()
    for r in results:  # devices refused (no credentials, say) would leave nothing to time
        measured(f"{r['mode']}: moves seen on the replicas", r["moves_seen"])
        measured(f"{r['mode']}: moves seen on both replicas", r["seen_on_both"])
    say(f"\n{args.rate:.0f} fixes/s offered for {args.duration:.0f} s, batch age {args.batch_age_ms} ms")
    say(f"{'mode':6} {'seen':>8} {'both':>8} {'one p50':>9} {'one p99':>9} {'both p50':>9} {'both p99':>9}")
    for r in results:
        one = f"{r['visible_one_p50_ms']:8.1f}ms {r['visible_one_p99_ms']:8.1f}ms"
        both = f"{r['visible_both_p50_ms']:8.1f}ms {r['visible_both_p99_ms']:8.1f}ms"
        say(f"{r['mode']:6} {r['moves_seen']:8d} {r['seen_on_both']:8d} {one} {both}")
        if r["mode"] == "feed":
            feed = f"p50 {r['on_feed_p50_ms']:.1f} ms, p99 {r['on_feed_p99_ms']:.1f} ms"
            say(f"  publish -> on the feed (stored, committed, published): {feed}")
            for n, lag in enumerate(r["own_lag"], 1):
                own = f"{lag['fixes']:.0f} fixes, mean {lag['mean_ms']:.1f} ms"
                own += f", p99 <= {lag['p99_le_ms']:.0f} ms"
                say(f"  replica {n}'s own outpost_picture_lag_seconds (receipt -> picture, whole run): {own}")
        say(f"  load average after {r['mode']}: {r['load_average']:.1f} (2 cores, shared)")
    by_mode = {r["mode"]: r for r in results}
    if "feed" in by_mode and "poll" in by_mode:
        ratio = by_mode["poll"]["visible_both_p50_ms"] / by_mode["feed"]["visible_both_p50_ms"]
        say(f"poll/feed, publish -> visible on both, p50: {ratio:.1f}x")
    if target := os.environ.get("OUTPOST_BENCH_RESULT"):
        await asyncio.to_thread(Path(target).write_text, json.dumps(results), "utf-8")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    quick = os.environ.get("OUTPOST_BENCH_QUICK") == "1"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=float, default=2000.0, help="offered fixes/s in total (2000)")
    p.add_argument("--duration", type=float, default=10.0 if quick else 20.0, help="load phase, s (20)")
    p.add_argument("--devices", type=int, default=1000, help="devices (1000)")
    p.add_argument("--publishers", type=int, default=1, help="load generator processes (1)")
    p.add_argument(
        "--batch-age-ms", type=int, default=50, help="OUTPOST_BATCH_MAX_AGE_MS of the workers (50)"
    )
    p.add_argument("--memory", default="", help="only the picture's memory per unit at these sizes")
    p.add_argument("--modes", type=lambda s: tuple(s.split(",")), default=MODES, help="feed,poll")
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
