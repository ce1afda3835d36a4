"""Telling other processes that the device registry changed: PostgreSQL NOTIFY and LISTEN.

When an `outpost api` replica disables a device, rotates its secret, re-binds it or takes its unit off
duty, every `outpost ingest` worker must stop trusting what it holds in its device directory: within
5 s, not at the next periodic reload. The API sends `NOTIFY outpost_devices` after its commit; each
worker LISTENs on a connection of its own and reloads its directory when one arrives. A notification
carries nothing but the fact: the directory reload reads the truth from the database, so a notification
lost while a worker's connection was down costs at most one refresh period (`OUTPOST_DEVICE_REFRESH_S`,
the safety net), and a burst of them costs one reload (they are coalesced).

The unit registry is told the same way, on `outpost_units`, with the unit's id as the payload: every
transaction that creates a unit or changes its status, kind, skills, name or enabled sends it
(`announce_unit`, inside the transaction, so it is heard exactly when the change is committed and never
for a change rolled back), and each `outpost api` replica re-reads those units into its live picture
(`listen_payloads`). Nearest answers on two replicas then agree on a unit's status once both have heard.

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
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

DEVICES_CHANNEL = "outpost_devices"
UNITS_CHANNEL = "outpost_units"
_RETRY_S = 2.0
_PUMPED_MAX = 100_000  # payloads gathered between two calls; past this, one call for "everything"


def notify(engine: Engine, channel: str = DEVICES_CHANNEL) -> None:
    """Send `channel` a notification (PostgreSQL; nothing on SQLite). Blocking: call it from a thread."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": channel})


def announce_unit(conn: Connection, unit_id: str) -> None:
    """Within the transaction that changes a unit: tell the replicas, once it commits (PostgreSQL only)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, :unit)"), {"channel": UNITS_CHANNEL, "unit": unit_id})


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

    async def ignoring_payloads(_: set[str] | None) -> object:
        return await on_notice()

    await listen_payloads(
        engine, ignoring_payloads, stop, channel, retry_s=retry_s, on_listening=on_listening
    )


async def listen_payloads(
    engine: Engine,
    on_payloads: Callable[[set[str] | None], Awaitable[object]],
    stop: asyncio.Event,
    channel: str,
    *,
    retry_s: float = _RETRY_S,
    on_listening: Callable[[], object] = lambda: None,
) -> None:
    """As `listen`, but `on_payloads` is given the payloads heard since its last call, or None for
    "anything may have changed" (after every (re)connection, and when more than _PUMPED_MAX piled up)."""
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
                await on_payloads(None)  # what changed while nobody listened
                await _follow(conn, on_payloads, stop)
        except (psycopg.Error, OSError) as exc:
            log.warning(
                "not listening for changes; retrying (what changes meanwhile is read when it reconnects)",
                extra={"channel": channel, "error": str(exc)[:200]},
            )
            await _sleep_or_stop(stop, retry_s)


async def _follow(
    conn: psycopg.AsyncConnection[Any],
    on_payloads: Callable[[set[str] | None], Awaitable[object]],
    stop: asyncio.Event,
) -> None:
    heard = asyncio.Event()
    pumped: set[str] | None = set()

    async def pump() -> None:
        nonlocal pumped
        async for notice in conn.notifies():
            if pumped is not None:
                pumped.add(notice.payload)
                if len(pumped) > _PUMPED_MAX:
                    pumped = None
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
                heard.clear()  # those that arrive during the call make one more
                taken, pumped = pumped, set()
                await on_payloads(taken)
    finally:
        pumping.cancel()
        stopping.cancel()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
