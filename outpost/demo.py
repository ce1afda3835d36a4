"""`outpost demo`: Outpost on the embedded default, with the simulated San Francisco scenario playing
against it over MQTT and HTTP (sim.demo.scenario)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from outpost.root import Running, serve
from outpost.settings import Settings
from outpost.supervise import stop_on_signals
from sim.demo.scenario import DemoOptions, Target, play
from store import access
from store.engine import open_engine

__all__ = ["DemoOptions", "run_demo"]


async def run_demo(
    settings: Settings,
    options: DemoOptions,
    *,
    stop: asyncio.Event | None = None,
    out: Callable[[str], None] = print,
) -> None:
    """The embedded default plus a simulated San Francisco: units on the road network and real calls."""
    stop = stop or stop_on_signals()
    # Simulated units register on first contact. Their fixes carry wall-clock times while they drive
    # `speedup` times faster, so the impossible-speed rule is scaled by the same factor.
    demo_ingest = replace(
        settings.ingest,
        register_unknown_devices=True,
        max_speed_mps=settings.ingest.max_speed_mps * max(1.0, options.speedup),
    )
    demo_settings = replace(settings, ingest=demo_ingest)
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve(demo_settings, "all", stop=stop, on_ready=ready.set_result))
    running = await _first(ready, server)
    try:
        token = await asyncio.to_thread(_demo_token, settings.store.database_url)
        target = Target(running.http_url, running.mqtt_url, running.storage, token)
        await play(target, options, stop, out)
    finally:
        stop.set()
        await server


async def _first(ready: asyncio.Future[Running], server: asyncio.Task[None]) -> Running:
    both: set[asyncio.Future[Any]] = {ready, server}
    await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        server.result()  # raises why the server could not start
        raise RuntimeError("Outpost stopped before it was ready")
    return ready.result()


def _demo_token(database_url: str) -> str:
    engine = open_engine(database_url, pool_size=1)
    try:
        _, token = access.create_token(engine, role="admin", name="demo", now=datetime.now(UTC))
        return str(token)
    finally:
        engine.dispose()
