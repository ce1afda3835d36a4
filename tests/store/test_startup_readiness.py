"""Healthy is not ready: `/readyz` (and `/healthz?ready=1`) answer 200 only once the database answers, the
ingest subscription is acknowledged by a real Mosquitto and the live picture is loaded; `/healthz` stays
liveness. The broker is held back for real (SIGSTOP: its socket still accepts, it answers nothing), and the
session the first start creates keeps what devices publish while Outpost is down."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from outpost.root import Running
from store.engine import open_engine
from store.fixes import count_fixes
from tests.support.outpost_run import starting_outpost
from tests.support.services import Mosquitto, free_port

DEVICE = "ready-1"


def outpost_on(
    broker: Mosquitto, tmp_path: Path, http_port: int
) -> contextlib.AbstractAsyncContextManager[tuple[asyncio.Future[Running], asyncio.Task[None], int]]:
    """`serve("all")` against `broker` and a SQLite store, from before it is ready."""
    return starting_outpost(
        f"sqlite:///{tmp_path / 'outpost.db'}",
        tmp_path,
        OUTPOST_MQTT_URL=broker.url,
        OUTPOST_MQTT_PROTOCOL="3.1.1",
        OUTPOST_HTTP_PORT=str(http_port),
        OUTPOST_REGISTER_UNKNOWN_DEVICES="true",
    )


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as resp:
        return resp.status, await resp.json()


async def until(check: Callable[[], Any], server: asyncio.Task[None], what: str) -> None:
    """Poll `check` (an async predicate) until true; fail at once if the server died, after 60 s otherwise."""
    for _ in range(600):
        if server.done():
            server.result()
            raise AssertionError(f"outpost stopped before {what}")
        with contextlib.suppress(aiohttp.ClientError):
            if await check():
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not {what} after 60 s")


async def test_ready_only_once_the_broker_acknowledged_the_subscription(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    assert mosquitto.proc is not None
    mosquitto.proc.send_signal(signal.SIGSTOP)  # accepts connections (the kernel does), answers nothing
    try:
        async with (
            outpost_on(mosquitto, tmp_path, port) as (ready, server, _),
            aiohttp.ClientSession() as http,
        ):

            async def alive() -> bool:
                return (await get(http, base + "/healthz"))[0] == 200

            await until(alive, server, "alive")
            status, body = await get(http, base + "/readyz")
            assert (status, body["status"], body["pending"]) == (503, "starting", ["ingest_subscribed"])
            assert body["database"] is True and body["live_picture"] is True
            assert (await get(http, base + "/healthz?ready=1"))[0] == 503
            assert not ready.done()  # nor is "ready" announced (the CLI's banner, the fixtures' wait)

            mosquitto.proc.send_signal(signal.SIGCONT)
            await asyncio.wait_for(asyncio.shield(ready), 60)
            status, body = await get(http, base + "/readyz")
            assert (status, body["status"], body["pending"]) == (200, "ready", [])
            assert (await get(http, base + "/healthz?ready=1"))[0] == 200
            assert (await get(http, base + "/healthz?ready=yes"))[0] == 400  # names the parameter
    finally:
        mosquitto.proc.send_signal(signal.SIGCONT)


async def test_the_first_start_creates_the_session_that_keeps_fixes_published_while_down(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    async with outpost_on(mosquitto, tmp_path, free_port()) as (ready, server, _):
        await asyncio.wait_for(asyncio.shield(ready), 60)
    # Outpost is down; a device publishes (QoS 1) into the session the first start left at the broker.
    payload = json.dumps({"ts": "2026-12-03T12:00:00Z", "lat": 37.7793, "lon": -122.4194, "acc_m": 5})
    topic = f"outpost/v1/devices/{DEVICE}/fix"
    if shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto_pub is not installed")
    publisher = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-p", str(mosquitto.port), "-q", "1", "-t", topic, "-m", payload
    )
    assert await asyncio.wait_for(publisher.wait(), 30) == 0
    engine = open_engine(f"sqlite:///{tmp_path / 'outpost.db'}", pool_size=1)
    try:
        async with outpost_on(mosquitto, tmp_path, free_port()) as (ready, server, _):
            await asyncio.wait_for(asyncio.shield(ready), 60)

            async def stored() -> bool:
                return await asyncio.to_thread(count_fixes, engine) == 1

            await until(stored, server, "stored")
    finally:
        engine.dispose()
