"""What the read benchmarks (tracks, heat maps) share: the real API over an engine, and timing its answers.

`api_over(engine)` builds the app as the composition root does (bearer auth, audit, problem details) with a
viewer token; `timed` runs an answer after one warm-up and returns each run's milliseconds; `summary` turns
those into p50 / p90 / max; `print_row` and `verdict` print them; `run_on_postgres` runs a benchmark on a
PostgreSQL of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import Engine

from dispatch.app import ApiContext, init_app
from dispatch.clock import SystemClock
from dispatch.events import EventBus
from dispatch.fleet import Fleet
from dispatch.settings import ApiSettings
from store import access
from tests.support.services import PgCluster


def api_over(engine: Engine) -> tuple[web.Application, str]:
    """The API app over `engine`, and a viewer token for it."""
    _, token = access.create_token(engine, role="viewer", name="bench", now=datetime.now(UTC))
    settings = ApiSettings()
    clock = SystemClock()
    fleet = Fleet(engine, clock, settings)
    bus = EventBus(clock, coalesce_s=settings.stream_coalesce_s, max_queued=settings.stream_max_queued)
    return init_app(ApiContext(engine=engine, fleet=fleet, bus=bus, clock=clock, settings=settings)), token


async def timed(runs: int, call: Callable[[], Awaitable[int]]) -> tuple[list[float], int]:
    """Milliseconds of each of `runs` calls after one warm-up, and what the last call counted."""
    counted = await call()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        counted = await call()
        times.append((time.perf_counter() - began) * 1000)
    return times, counted


def summary(times: list[float]) -> dict[str, float]:
    """p50, p90 and max of the runs, in ms."""
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "max_ms": round(ordered[-1], 1),
    }


def print_row(name: str, figures: dict[str, float], counted: int, what: str) -> None:
    """One variant's line: p50, p90, max and what it answered."""
    print(
        f"{name:<14} p50 {figures['p50_ms']:9.1f} ms  p90 {figures['p90_ms']:9.1f}  "
        f"max {figures['max_ms']:9.1f}  {counted:,} {what}"
    )


def verdict(p50_ms: float, target_ms: float) -> str:
    """The target's line end: met or not, and the load the machine was under."""
    met = "met" if p50_ms <= target_ms else "NOT met"
    return f"target p50 ≤ {target_ms:g} ms: {met}   load average {os.getloadavg()[0]:.2f}"


def run_on_postgres(bench: Callable[[str, Any], Coroutine[Any, Any, dict[str, Any]]], args: Any) -> None:
    """`bench(url, args)` on a PostgreSQL of its own (started and removed here); its figures as JSON last."""
    cluster = PgCluster().start()
    try:
        cluster.psql("CREATE DATABASE bench")
        figures = asyncio.run(bench(cluster.url("bench"), args))
    finally:
        cluster.close()
    print(json.dumps(figures))


@contextlib.asynccontextmanager
async def serving(engine: Engine) -> AsyncIterator[Callable[[str], Awaitable[Any]]]:
    """The API over `engine` on a free port, and `get(path)`: the JSON a viewer gets (200 asserted)."""
    app, token = api_over(engine)
    headers = {"Authorization": f"Bearer {token}"}
    async with TestServer(app) as server, aiohttp.ClientSession() as http:

        async def get(path: str) -> Any:
            async with http.get(server.make_url(path), headers=headers) as r:
                assert r.status == 200, await r.text()
                return json.loads(await r.read())

        yield get
