"""Telling other processes that the device registry changed: PostgreSQL NOTIFY and LISTEN.

When an `outpost api` replica disables a device, rotates its secret, re-binds it or takes its unit off
duty, every `outpost ingest` worker must stop trusting what it holds in its device directory: within
5 s, not at the next periodic reload. The API sends `NOTIFY outpost_devices` after its commit; each
worker LISTENs on a connection of its own and reloads its directory when one arrives. A notification
carries nothing but the fact: the directory reload reads the truth from the database, so a notification
lost while a worker's connection was down costs at most one refresh period (`OUTPOST_DEVICE_REFRESH_S`,
the safety net), and a burst of them costs one reload (they are coalesced).

SQLite has no other process to tell (the embedded default runs everything in one): `notify` does nothing
and `listen` returns at once, leaving the in-process path (the API awaits the directory's reload).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

DEVICES_CHANNEL = "outpost_devices"
_RETRY_S = 2.0


def notify(engine: Engine, channel: str = DEVICES_CHANNEL) -> None:
    """Send `channel` a notification (PostgreSQL; nothing on SQLite). Blocking: call it from a thread."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


async def listen(
    engine: Engine,
    on_notice: Callable[[], Awaitable[object]],
    stop: asyncio.Event,
    channel: str = DEVICES_CHANNEL,
    *,
    retry_s: float = _RETRY_S,
    on_listening: Callable[[], object] = lambda: None,
) -> None:
    """Await `on_notice` after each notification on `channel` (those arriving meanwhile: once more), and
    once after every (re)connection, since notifications sent while it was away are gone. Until `stop`."""
    if engine.dialect.name != "postgresql":
        return
    url = make_url(engine.url).set(drivername="postgresql").render_as_string(hide_password=False)
    while not stop.is_set():
        try:
            async with await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=5, application_name="outpost-listen"
            ) as conn:
                await conn.execute(f'LISTEN "{channel}"')
                on_listening()
                await on_notice()  # what changed while nobody listened
                await _follow(conn, on_notice, stop)
        except (psycopg.Error, OSError) as exc:
            log.warning(
                "not listening for device changes; retrying (the periodic reload still runs)",
                extra={"channel": channel, "error": str(exc)[:200]},
            )
            await _sleep_or_stop(stop, retry_s)


async def _follow(
    conn: psycopg.AsyncConnection[Any], on_notice: Callable[[], Awaitable[object]], stop: asyncio.Event
) -> None:
    heard = asyncio.Event()

    async def pump() -> None:
        async for _ in conn.notifies():
            heard.set()

    pumping = asyncio.ensure_future(pump())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            woke = asyncio.ensure_future(heard.wait())
            done, _ = await asyncio.wait({woke, pumping, stopping}, return_when=asyncio.FIRST_COMPLETED)
            woke.cancel()
            if pumping in done:
                pumping.result()  # the connection failed: raise, so the caller reconnects
                return
            if heard.is_set():
                heard.clear()  # those that arrive during the reload make one more
                await on_notice()
    finally:
        pumping.cancel()
        stopping.cancel()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
