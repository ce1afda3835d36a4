"""The load generator every design is measured with: one process, aiohttp, the same seeded random points.

    python benchmarks/loadgen.py --url URL [--token T] --load c16|o1000 --seconds S --out FILE

`c<n>`: closed loop, n requests always in flight (capacity; latency from each request's send). `o<r>`: open
loop at r requests/s on a fixed schedule, whatever the answers do; latency is measured from the *intended*
send time, so a stalled server (or a late client timer) cannot hide its backlog (no coordinated omission).
Each run warms up for --warmup-s first. Every measured request is recorded (point, intended send, sent, done,
HTTP status, the ids and distances answered) into FILE (msgspec JSON) for benchmarks/truth.py; the answers
are parsed after the measurement, so parsing costs the client nothing while it measures. Prints a JSON line
of the latency figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.fleet_stream import EAST, NORTH, SOUTH, WEST


class Unit(msgspec.Struct):
    """What the checker needs of one answered unit (each design answers at least these)."""

    id: str
    distance_m: float


class Answer(msgspec.Struct):
    """What the checker needs of one answer."""

    units: list[Unit]


class Records(msgspec.Struct):
    """Every measured request of one run, as parallel lists."""

    lon: list[float]
    lat: list[float]
    intended_ns: list[int]
    sent_ns: list[int]
    done_ns: list[int]
    http_status: list[int]
    ids: list[list[str]]
    distances_m: list[list[float]]


class Run:
    """One load run's requests and what came back."""

    def __init__(self, url: str, token: str, k: int, seed: int) -> None:
        self.url, self.k = url, k
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.rng = random.Random(seed)
        self.rows: list[tuple[float, float, int, int, int, int, bytes]] = []
        self.record = False

    async def one(self, session: Any, intended_ns: int) -> None:
        lon, lat = self.rng.uniform(WEST, EAST), self.rng.uniform(SOUTH, NORTH)
        query = f"{self.url}?lon={lon:.6f}&lat={lat:.6f}&k={self.k}&status=available"
        sent_ns = time.monotonic_ns()
        async with session.get(query, headers=self.headers) as response:
            body = await response.read()
            status = response.status
        if self.record:
            self.rows.append((lon, lat, intended_ns, sent_ns, time.monotonic_ns(), status, body))

    async def closed(self, session: Any, n: int, seconds: float) -> None:
        until_ns = time.monotonic_ns() + int(seconds * 1e9)

        async def worker() -> None:
            while (now_ns := time.monotonic_ns()) < until_ns:
                await self.one(session, now_ns)

        await asyncio.gather(*(worker() for _ in range(n)))

    async def opened(self, session: Any, rate: float, seconds: float) -> None:
        """Send every request that is due, then sleep until the next one is: the schedule never waits."""
        tasks: set[asyncio.Task[None]] = set()
        start_ns = time.monotonic_ns()
        total = int(rate * seconds)
        sent = 0
        while sent < total:
            now_ns = time.monotonic_ns()
            while sent < total and (due_ns := start_ns + int(sent * 1e9 / rate)) <= now_ns:
                task = asyncio.create_task(self.one(session, due_ns))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            await asyncio.sleep(max(0.0, (start_ns + sent * 1e9 / rate - time.monotonic_ns()) / 1e9))
        await asyncio.gather(*tasks)

    def records(self) -> Records:
        """The measured requests with their answers parsed (an unparsable answer counts as empty)."""
        decoder = msgspec.json.Decoder(Answer)
        ids, dists = [], []
        for row in self.rows:
            try:
                units = decoder.decode(row[6]).units if row[5] == 200 else []
            except msgspec.DecodeError:
                units = []
            ids.append([u.id for u in units])
            dists.append([u.distance_m for u in units])
        cols = list(zip(*(r[:6] for r in self.rows), strict=True)) or [[]] * 6
        return Records(*(list(c) for c in cols), ids=ids, distances_m=dists)  # type: ignore[arg-type]


async def measure(args: argparse.Namespace) -> dict[str, float]:
    """Warm up, measure, write the records; the latency figures (ms, from the intended send time)."""
    import aiohttp

    run = Run(args.url, args.token, args.k, args.seed)
    kind, amount = args.load[0], float(args.load[1:])
    go = run.closed if kind == "c" else run.opened
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:
        await go(session, int(amount) if kind == "c" else amount, args.warmup_s)  # type: ignore[arg-type]
        run.record = True
        started = time.monotonic()
        await go(session, int(amount) if kind == "c" else amount, args.seconds)  # type: ignore[arg-type]
        elapsed = time.monotonic() - started
    records = run.records()
    args.out.write_bytes(msgspec.json.encode(records))
    ms = (np.array(records.done_ns, dtype=np.float64) - np.array(records.intended_ns)) / 1e6
    if not len(ms):
        return {"requests": 0.0, "rps": 0.0}
    return {
        "requests": float(len(ms)),
        "rps": len(ms) / elapsed,
        "http_errors": float(sum(s != 200 for s in records.http_status)),
        **{f"p{q:g}_ms".replace(".", ""): float(np.percentile(ms, q)) for q in (50, 90, 99, 99.9)},
        "max_ms": float(ms.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--load", required=True, help="c<n> closed loop, o<r> open loop")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args))))


if __name__ == "__main__":
    main()
