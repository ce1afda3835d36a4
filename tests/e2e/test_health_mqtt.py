"""Device health events reach MQTT through the composition root: `outpost run` (embedded broker, SQLite)
started as `serve("all")`, a body camera publishing over MQTT, and an independent subscriber hearing
`outpost/v1/events/battery_low.raised`, `device.alarm`, `device_offline.raised` and `.cleared`, each with
an id and a time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import pytest

from tests.ingest.mqtt_collect import Collected, collect
from tests.support.outpost_run import running_outpost

pytestmark = pytest.mark.slow

FAST = {
    "OUTPOST_REGISTER_UNKNOWN_DEVICES": "true",
    "OUTPOST_PATROL_CHECK_S": "0.2",
    "OUTPOST_DEVICE_OFFLINE_MIN_S": "1",
    "OUTPOST_DEVICE_OFFLINE_MAX_S": "1.5",
}


def _fix(battery_pct: float) -> bytes:
    now_ms = round(datetime.now(UTC).timestamp() * 1000)
    return msgspec.json.encode(
        {"ts": now_ms, "lon": -122.415, "lat": 37.765, "acc_m": 5, "battery_pct": battery_pct}
    )


def _events(heard: Collected, kind: str) -> list[dict[str, Any]]:
    return [msgspec.json.decode(p) for t, p in heard.messages if t == f"outpost/v1/events/{kind}"]


async def _until(heard: Collected, kind: str, act: Any = None) -> dict[str, Any]:
    """Run `act` (a coroutine function) until an event of `kind` is heard; the first one."""
    while not _events(heard, kind):
        if act is not None:
            await act()
        await asyncio.sleep(0.3)
    return _events(heard, kind)[0]


async def test_health_events_go_out_on_mqtt_through_the_root(sqlite_url: str, tmp_path: Path) -> None:
    async with (
        running_outpost(sqlite_url, tmp_path, **FAST) as (_, port),
        collect(port, "outpost/v1/events/#") as heard,
        aiomqtt.Client("127.0.0.1", port, identifier="cam-9") as device,
        asyncio.timeout(60),
    ):
        low = [True]

        async def report() -> None:
            # Low, then charged, and again: the root's channel to the broker connects in the background,
            # so the first raise may come before it is up.
            await device.publish("outpost/v1/devices/cam-9/fix", _fix(5.0 if low[0] else 90.0), qos=1)
            low[0] = not low[0]

        battery = await _until(heard, "battery_low.raised", report)
        for _ in range(3):
            await report()
            await asyncio.sleep(0.2)

        async def sos() -> None:
            await device.publish("outpost/v1/devices/cam-9/alarm", b'{"description": "help"}', qos=1)

        alarm = await _until(heard, "device.alarm", sos)
        offline = await _until(heard, "device_offline.raised")  # silent now: past its limit

        async def back() -> None:
            await device.publish("outpost/v1/devices/cam-9/fix", _fix(90.0), qos=1)

        cleared = await _until(heard, "device_offline.cleared", back)
    assert battery["device_id"] == "cam-9" and battery["unit_id"] == "cam-9" and battery["battery_pct"] == 5.0
    assert alarm["priority"] == "P1" and alarm["incident_id"] and alarm["description"] == "help"
    assert offline["device_id"] == "cam-9" and offline["limit_s"] <= 1.5
    assert cleared["reason"] == "a fix was heard again"
    for event in (battery, alarm, offline, cleared):
        assert event["id"] and datetime.fromisoformat(event["at"]).tzinfo is not None
