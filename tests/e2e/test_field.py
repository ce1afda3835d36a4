"""The field desk end to end through the composition root (`outpost.root.serve`, role `all`) on the real
Mosquitto and both stores: a phone reports its duty status over MQTT and hears the outcome on its downlink,
checks in over HTTP with its own fix, a dispatcher calls the roll and the phone answers over MQTT with a
fresh fix; every change is in the API (status history, check-ins, the roll call)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

from ingest.mqtt.publisher import Publisher
from outpost.root import Running, serve
from outpost.settings import load_settings
from store import access, duty, registry
from store.engine import open_engine
from tests.ingest.ingest_harness import DEVICE_AUTH, test_secret_hash, wait_for
from tests.ingest.mqtt_collect import collect
from tests.support.duty import seed
from tests.support.services import Mosquitto, free_port

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def outpost(url: str, broker: Mosquitto, tmp_path: Path) -> AsyncIterator[Running]:
    settings = load_settings(
        {
            "OUTPOST_DATABASE_URL": url,
            "OUTPOST_MQTT_URL": broker.url,
            "OUTPOST_HTTP_PORT": str(free_port()),
            "OUTPOST_SPOOL_DIR": str(tmp_path / "spool"),
            "OUTPOST_BATCH_MAX_AGE_MS": "20",
        }
    )
    stop = asyncio.Event()
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve(settings, "all", stop=stop, on_ready=ready.set_result))
    try:
        await asyncio.wait({ready, server}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            server.result()
        yield ready.result()
    finally:
        stop.set()
        await asyncio.wait_for(server, 60)


def prepare(url: str) -> str:
    """Grids, units, the phone bound to p1 who holds police-1 now; a dispatcher's token."""
    engine = open_engine(url, pool_size=1)
    now = datetime.now(UTC)
    try:
        seed(engine, now - timedelta(days=1))
        registry.insert_device(
            engine, id="phone-1", kind="phone", credentials_hash=test_secret_hash(), now=now
        )
        registry.insert_binding(
            engine, device_id="phone-1", unit_id="p1", valid_from=now - timedelta(hours=1), valid_to=None
        )
        duty.create_assignment(
            engine,
            unit_id="p1",
            grid_id="police-1",
            starts_at=now - timedelta(minutes=5),
            ends_at=now + timedelta(hours=8),
            actor="test",
            now=now,
        )
        return access.create_token(engine, role="dispatcher", name="e2e", now=now)[1]
    finally:
        engine.dispose()


async def test_status_check_in_and_roll_call_from_a_phone_through_the_whole_stack(
    store_url: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    token = prepare(store_url)
    auth = {"Authorization": f"Bearer {token}"}
    async with (
        outpost(store_url, mosquitto, tmp_path) as running,
        collect(mosquitto.port, "outpost/v1/devices/phone-1/#") as phone_hears,
        aiohttp.ClientSession(base_url=running.http_url) as http,
    ):
        phone = Publisher(mosquitto.url, client_id="phone-1")
        await phone.connect()
        try:
            downlink = "outpost/v1/devices/phone-1/offers"

            def heard(kind: str) -> list[dict[str, Any]]:
                found = [msgspec.json.decode(p) for t, p in phone_hears.messages if t == downlink]
                return [m for m in found if m["type"] == kind]

            phone.publish("outpost/v1/devices/phone-1/status", b'{"status": "on_duty"}', qos=1)
            await wait_for(lambda: bool(heard("status_outcome")), what="the status outcome")
            assert heard("status_outcome")[0]["status"] == "available"
            async with http.get("/v1/units/p1/status-history", headers=auth) as resp:
                changes = (await resp.json())["changes"]
            assert [(c["to_status"], c["actor"]) for c in changes] == [("available", "device:phone-1")]

            fix = {"ts": round(time.time() * 1000), "lat": 0.5, "lon": 0.5, "acc_m": 6.0}
            checkin = {"checkin_id": "morning", "fix": fix}
            async with http.post(
                "/ingest/v1/devices/phone-1/checkin", json=checkin, auth=DEVICE_AUTH
            ) as resp:
                assert resp.status == 202
                assert (await resp.json())["outcome"] == "taken"
            async with http.get("/v1/checkins?unit=p1", headers=auth) as resp:
                assert [c["checkin_id"] for c in (await resp.json())["checkins"]] == ["morning"]

            scope = {"scope": {"kind": "units", "units": ["p1"]}}
            async with http.post("/v1/rollcalls", json=scope, headers=auth) as resp:
                assert resp.status == 201, await resp.text()
                rollcall_id = (await resp.json())["id"]
            call = "outpost/v1/devices/phone-1/rollcall"
            await wait_for(lambda: any(t == call for t, _ in phone_hears.messages), what="the roll call")
            fix = {"ts": round(time.time() * 1000) + 1, "lat": 0.5, "lon": 0.5, "acc_m": 6.0}
            answer = msgspec.json.encode({"rollcall_id": rollcall_id, "fix": fix})
            phone.publish("outpost/v1/devices/phone-1/answer", answer, qos=1)
            await wait_for(lambda: bool(heard("answer_outcome")), what="the answer's outcome")
            assert heard("answer_outcome")[0]["result"] == "present"
            async with http.get(f"/v1/rollcalls/{rollcall_id}", headers=auth) as resp:
                assert [u["result"] for u in (await resp.json())["units"]] == ["present"]
        finally:
            await phone.close()
