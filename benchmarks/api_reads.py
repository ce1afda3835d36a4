"""What the read benchmarks (tracks, heat maps) share: the real API over an engine, and timing its answers.

`api_over(engine)` builds the app as the composition root does (bearer auth, audit, problem details) with a
viewer token; `timed` runs an answer after one warm-up and returns each run's milliseconds; `summary` turns
those into p50 / p90 / max.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import Engine

from dispatch.app import ApiContext, init_app
from dispatch.clock import SystemClock
from dispatch.events import EventBus
from dispatch.fleet import Fleet
from dispatch.settings import ApiSettings
from store import access


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
