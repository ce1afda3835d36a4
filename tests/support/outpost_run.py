"""Test helper: the whole of Outpost as `outpost run` starts it (`serve("all")`, the embedded broker), on
free ports over a given store, until the block ends. The block begins once Outpost is ready (`on_ready`,
which `serve` calls only when /readyz would answer 200: the ingest subscription acknowledged)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from outpost.root import Running, serve
from outpost.settings import load_settings
from tests.support.services import free_port


@contextlib.asynccontextmanager
async def starting_outpost(
    database_url: str, tmp_path: Path, **settings: str
) -> AsyncIterator[tuple[asyncio.Future[Running], asyncio.Task[None], int]]:
    """Outpost starting: (the future `serve` sets once it is ready, the server task, the embedded broker's
    port); the block begins before readiness. `settings`: more OUTPOST_* variables (they win)."""
    mqtt_port = free_port()
    loaded = load_settings(
        {
            "OUTPOST_DATABASE_URL": database_url,
            "OUTPOST_HTTP_PORT": str(free_port()),
            "OUTPOST_MQTT_LISTEN": f"127.0.0.1:{mqtt_port}",
            "OUTPOST_SPOOL_DIR": str(tmp_path / "spool"),
            **settings,
        }
    )
    stop = asyncio.Event()
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve(loaded, "all", stop=stop, on_ready=ready.set_result))
    try:
        yield ready, server, mqtt_port
    finally:
        stop.set()
        await asyncio.wait_for(server, 60)


@contextlib.asynccontextmanager
async def running_outpost(
    database_url: str, tmp_path: Path, **settings: str
) -> AsyncIterator[tuple[Running, int]]:
    """(where it runs, the embedded broker's port), once it is ready; `settings`: more OUTPOST_* variables."""
    async with starting_outpost(database_url, tmp_path, **settings) as (ready, server, mqtt_port):
        started: set[asyncio.Future[Any]] = {ready, server}
        await asyncio.wait(started, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            server.result()  # raises why Outpost could not start
        yield ready.result(), mqtt_port
