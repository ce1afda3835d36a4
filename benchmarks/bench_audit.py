"""What the durable audit costs a nearest query: audited (answer after its record's group commit) against
unaudited, in the same run.

    .venv/bin/python benchmarks/bench_audit.py [--store postgresql|sqlite] [--units 10000] [--seconds 5]
                                               [--load c16]

Serves the real API (`dispatch.app.init_app`: auth, problem details, the audit middleware) over a Fleet of
`--units` units in San Francisco, on a free port of this process's event loop; PostgreSQL is started here
(tests.support.services.PgCluster, fsync on), SQLite is a file in a temporary folder (synchronous=FULL).
Three variants, each its own app on the same database and fleet, measured in turn (rotating order, medians
of `--rounds` rounds, as the shared machine's load wanders):

- unaudited: the app's `AuditLog.record` replaced by a no-op (the baseline; nothing waits),
- audited: the product, each answer held until the batch with its record is committed,
- journal: the same with the database refusing the audit (a port nobody listens on), so every batch is
  fsynced to the local journal instead: the cost of the other design (a journal shipped in the background).

A client in its own process (aiohttp; random points, k=5) runs each load after a 1 s warm-up: `c<n>` a
closed loop with n requests in flight, `o<r>` an open loop at r requests/s. Prints requests/s, p50/p99 per
variant and load, the ratios against unaudited, the records per commit, and a last JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import web
from prometheus_client import REGISTRY
from sqlalchemy import Engine, create_engine, make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.figures import measured  # noqa: E402
from dispatch.app import ApiContext, init_app  # noqa: E402
from dispatch.audit import AuditLog  # noqa: E402
from dispatch.clock import SystemClock  # noqa: E402
from dispatch.events import EventBus  # noqa: E402
from dispatch.fleet import Fleet  # noqa: E402
from dispatch.keys import AUDIT_KEY  # noqa: E402
from dispatch.settings import ApiSettings  # noqa: E402
from schemas.fix import Fix  # noqa: E402
from store import access, registry  # noqa: E402
from store.engine import open_engine  # noqa: E402
from store.migrate import migrate  # noqa: E402
from store.settings import StoreSettings  # noqa: E402
from tests.support.services import PgCluster, free_port  # noqa: E402

WEST, SOUTH, EAST, NORTH = -122.52, 37.70, -122.35, 37.82
VARIANTS = ("unaudited", "audited", "journal")


async def client(url: str, token: str, load: str, seconds: float) -> dict[str, float]:
    """Load `url` for `seconds` after a 1 s warm-up; latencies from each request's sending."""
    import aiohttp

    headers, rng, latencies_ns, errors = {"Authorization": f"Bearer {token}"}, random.Random(7), [], 0

    async def one(session: aiohttp.ClientSession, record: bool) -> None:
        nonlocal errors
        sent_ns = time.perf_counter_ns()
        q = f"{url}?lon={rng.uniform(WEST, EAST):.6f}&lat={rng.uniform(SOUTH, NORTH):.6f}&k=5"
        async with session.get(q, headers=headers) as response:
            await response.read()
            errors += response.status != 200
        if record:
            latencies_ns.append(time.perf_counter_ns() - sent_ns)

    async def closed(session: aiohttp.ClientSession, n: int, until: float, record: bool) -> None:
        async def worker() -> None:
            while time.perf_counter() < until:
                await one(session, record)

        await asyncio.gather(*(worker() for _ in range(n)))

    async def opened(session: aiohttp.ClientSession, rate: float, duration: float, record: bool) -> None:
        tasks, start = [], time.perf_counter()
        for i in range(int(rate * duration)):
            delay_s = start + i / rate - time.perf_counter()
            if delay_s > 0:
                await asyncio.sleep(delay_s)
            tasks.append(asyncio.create_task(one(session, record)))
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
        "rps": len(ms) / elapsed,
        "errors": float(errors),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


async def run_client(url: str, token: str, load: str, seconds: float) -> dict[str, float]:
    """The client in its own process, so it does not share the server's event loop."""
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, __file__, "--client", url, f"--token={token}", "--load", load, "--seconds"),
        str(seconds),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"client failed with {proc.returncode}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def _counter(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


@contextlib.asynccontextmanager
async def serving(
    variant: str, url: str, fleet: Fleet, workdir: Path, args: argparse.Namespace
) -> AsyncIterator[tuple[str, AuditLog]]:
    """One variant's app, on the shared database and fleet, at its own port: (nearest URL, its audit)."""
    engine = open_engine(url, pool_size=8)
    clock = SystemClock()
    settings = ApiSettings(
        audit_journal_path=str(workdir / f"{variant}-journal.jsonl"),
        audit_commit_window_s=args.window_ms / 1000,
        audit_commit_gather_s=args.gather_ms / 1000,
    )
    ctx = ApiContext(engine=engine, fleet=fleet, bus=EventBus(clock), clock=clock, settings=settings)
    app = init_app(ctx)
    audit = app[AUDIT_KEY]
    if variant == "unaudited":
        audit.record = lambda *_args, **_kw: None  # type: ignore[method-assign]
    elif variant == "journal":  # the fault injected where the audit meets the database
        reconnect(audit, refusing(url, workdir))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/v1/units/nearest", audit
    finally:
        reconnect(audit, engine)  # the journal variant ships its journal at the end
        await runner.cleanup()
        engine.dispose()


def reconnect(audit: AuditLog, engine: Engine) -> None:
    """Point the audit's shipments and its group commits at `engine`."""
    audit._appender.close()
    audit._engine, audit._appender = engine, access.AuditAppender(engine)


def refusing(url: str, workdir: Path) -> Engine:
    """An engine of the same kind that the database refuses."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return open_engine(parsed.set(port=free_port()).render_as_string(hide_password=False), pool_size=1)
    (workdir / "not-a-folder").write_text("")
    return create_engine(f"sqlite:///{workdir / 'not-a-folder' / 'x.db'}")


async def measure(urls: dict[str, str], token: str, args: argparse.Namespace) -> dict[str, Any]:
    """Every load, `--rounds` times, the variants in turn in a rotating order; the medians of the rounds."""
    runs: dict[str, dict[str, list[dict[str, float]]]] = {v: {} for v in VARIANTS}
    counts = {v: {"written": 0.0, "commits": 0.0, "journaled": 0.0} for v in VARIANTS}
    for r in range(args.rounds):
        order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
        for load in args.load.split(","):
            for v in order:
                before = {k: _counter(f"outpost_audit_{k}_total") for k in counts[v]}
                runs[v].setdefault(load, []).append(await run_client(urls[v], token, load, args.seconds))
                for k in counts[v]:
                    counts[v][k] += _counter(f"outpost_audit_{k}_total") - before[k]
    figures: dict[str, Any] = {}
    for v in VARIANTS:
        figures[v] = {
            load: {m: float(np.median([run[m] for run in got])) for m in got[0]}
            for load, got in runs[v].items()
        }
        c = counts[v]
        figures[v]["records_per_commit"] = c["written"] / c["commits"] if c["commits"] else 0.0
        figures[v]["journaled"] = c["journaled"]
        figures[v]["written"] = c["written"]
    return figures


async def bench(url: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Set up the fleet, serve the three variants, measure, check the chain."""
    engine = open_engine(url, pool_size=2)
    migrate(engine, StoreSettings(database_url=url))
    rng, now = random.Random(1), datetime.now(UTC)
    ids = [f"u{i:06d}" for i in range(args.units)]
    registry.insert_units_bulk(
        engine, [{"id": u, "name": u, "kind": "police", "status": "available"} for u in ids]
    )
    _, token = access.create_token(engine, role="viewer", name="bench", now=now)
    fleet = Fleet(engine, SystemClock(), ApiSettings())
    await fleet.rebuild(engine, lookback_s=3600)
    place = [(rng.uniform(WEST, EAST), rng.uniform(SOUTH, NORTH)) for _ in ids]
    fleet.apply(
        [
            Fix(device_id="d-" + u, unit_id=u, ts=now, received_at=now, lon=lon, lat=lat, accuracy_m=8.0)
            for u, (lon, lat) in zip(ids, place, strict=True)
        ]
    )
    async with contextlib.AsyncExitStack() as stack:
        served = {v: await stack.enter_async_context(serving(v, url, fleet, workdir, args)) for v in VARIANTS}
        figures = await measure({v: u for v, (u, _) in served.items()}, token, args)
        reconnect(served["journal"][1], engine)  # the database is back: the journal is shipped
        await served["journal"][1].flush()
    verdict = access.verify_audit(engine)
    engine.dispose()
    _print(figures, args)
    print(f"audit chain after the run: {'intact' if verdict.intact else 'BROKEN'}, {verdict.records} records")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine)")
    return {"store": args.store, "units": args.units, **figures}


def _print(figures: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"nearest over HTTP, {args.units} units, {args.store}; medians of {args.rounds} rounds of"
        f" {args.seconds:g} s per load"
    )
    measured("audited: records written to the database", figures["audited"]["written"])
    measured("journal: records journaled", figures["journal"]["journaled"])
    for load in args.load.split(","):
        base = figures["unaudited"][load]
        for v in VARIANTS:
            r = figures[v][load]
            print(
                f"  {load:>6} {v:<10} {r['rps']:6.0f} req/s  p50 {r['p50_ms']:6.2f} ms"
                f"  p99 {r['p99_ms']:6.2f} ms  errors {r['errors']:.0f}"
                f"  | {v}/unaudited: req/s {r['rps'] / base['rps']:.2f},"
                f" p50 {r['p50_ms'] / base['p50_ms']:.2f}, p99 {r['p99_ms'] / base['p99_ms']:.2f}"
            )
    for v in VARIANTS[1:]:
        f = figures[v]
        print(f"  {v}: {f['records_per_commit']:.1f} records per commit, {f['journaled']:.0f} journaled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--units", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per load")
    parser.add_argument("--load", default="c16", help="c<n>: n in flight; o<r>: r req/s (c16,o1000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant and load (medians)")
    parser.add_argument(
        "--window-ms", type=float, default=0.0, help="OUTPOST_AUDIT_COMMIT_WINDOW_S of the app, in ms"
    )
    parser.add_argument(
        "--gather-ms", type=float, default=2.0, help="OUTPOST_AUDIT_COMMIT_GATHER_S of the app, in ms"
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--token", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("dispatch.audit").setLevel(logging.ERROR)  # the journal variant's refusals, by design
    if args.client:
        print(json.dumps(asyncio.run(client(args.client, args.token, args.load, args.seconds))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        workdir = Path(tmp)
        if args.store == "sqlite":
            figures = asyncio.run(bench(f"sqlite:///{workdir / 'outpost.db'}", args, workdir))
        else:
            cluster = PgCluster().start()
            try:
                cluster.psql("CREATE DATABASE bench")
                figures = asyncio.run(bench(cluster.url("bench"), args, workdir))
            finally:
                cluster.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
