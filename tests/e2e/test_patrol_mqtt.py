"""Patrol events reach MQTT through the composition root: `outpost run` (embedded broker, SQLite) is
started as `serve("all")`, an admin draws a grid over HTTP, a device publishes fixes over MQTT, and an
independent subscriber hears `outpost/v1/events/grid.entered` and `grid.exited` with an id and a time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import msgspec
import pytest

from store import access
from store.engine import open_engine
from tests.ingest.mqtt_collect import collect
from tests.support.outpost_run import running_outpost

pytestmark = pytest.mark.slow

SQUARE = {
    "type": "Polygon",
    "coordinates": [
        [[-122.42, 37.76], [-122.41, 37.76], [-122.41, 37.77], [-122.42, 37.77], [-122.42, 37.76]]
    ],
}
INSIDE, OUTSIDE = (-122.415, 37.765), (-122.405, 37.765)


async def test_grid_events_go_out_on_mqtt_through_the_root(sqlite_url: str, tmp_path: Path) -> None:
    engine = open_engine(sqlite_url, pool_size=1)
    try:
        _, token = access.create_token(engine, role="admin", name="e2e", now=datetime.now(UTC))
    finally:
        engine.dispose()
    admin = {"Authorization": f"Bearer {token}"}
    grid = {"id": "police-square", "level": "police", "name": "Square", "geometry": SQUARE}
    async with running_outpost(sqlite_url, tmp_path, OUTPOST_REGISTER_UNKNOWN_DEVICES="true") as (base, port):
        async with (
            aiohttp.ClientSession(base_url=base.http_url) as http,
            http.post("/v1/grids", json=grid, headers=admin) as resp,
        ):
            assert resp.status == 201, await resp.text()
        async with collect(port, "outpost/v1/events/#") as heard:
            events = await _walk_until_heard(port, heard)
    kinds = {e["type"] for e in events}
    assert kinds >= {"grid.entered"} and kinds <= {"grid.entered", "grid.exited"}
    for topic, event in zip(heard.messages, events, strict=True):
        assert topic[0] == f"outpost/v1/events/{event['type']}"
        assert event["unit_id"] == "cam-9" and event["grid_id"] == "police-square"
        assert event["id"] and datetime.fromisoformat(event["at"]).tzinfo is not None


async def _walk_until_heard(port: int, heard: Any) -> list[dict[str, Any]]:
    """The device walks in and out of the grid until its events are heard (the root's channel to the
    broker connects in the background, so the first crossing may come before it is up)."""
    async with aiomqtt.Client("127.0.0.1", port, identifier="cam-9") as device, asyncio.timeout(30):
        step = 0
        while not heard.messages:
            lon, lat = INSIDE if step % 2 == 0 else OUTSIDE
            fix = {"ts": round(datetime.now(UTC).timestamp() * 1000), "lon": lon, "lat": lat, "acc_m": 5}
            await device.publish("outpost/v1/devices/cam-9/fix", msgspec.json.encode(fix), qos=1)
            step += 1
            await asyncio.sleep(0.3)
        await asyncio.sleep(0.5)  # what is on its way
    return [msgspec.json.decode(payload) for _, payload in heard.messages]
