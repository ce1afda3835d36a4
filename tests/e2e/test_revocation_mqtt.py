"""Revocation bites at the embedded broker too (issue 15, item 2): a device disabled or given new
credentials through the API of `outpost run` loses its live MQTT session at once and is refused when it
reconnects (the directory's period is an hour here: only the API's word can explain the drop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import aiomqtt
import pytest

from store import access
from store.engine import open_engine
from tests.support.outpost_run import running_outpost


async def test_disabling_and_new_credentials_drop_the_mqtt_session(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'outpost.db'}"
    async with (
        running_outpost(url, tmp_path, OUTPOST_DEVICE_REFRESH_S="3600") as (_running, port),
        api(url, _running.http_url) as (http, admin),
    ):
        for device_id in ("rm-1", "rm-2"):
            async with http.post("/v1/devices", json={"id": device_id, "kind": "phone"}, headers=admin) as r:
                assert r.status == 201

        async def credentials(device_id: str) -> str:
            async with http.post(f"/v1/devices/{device_id}/credentials", headers=admin) as r:
                assert r.status == 201
                return str((await r.json())["secret"])

        s1, s2 = await credentials("rm-1"), await credentials("rm-2")
        with pytest.raises(aiomqtt.MqttError):  # an impostor
            async with device(port, "rm-1", "not-the-secret"):
                pass
        with pytest.raises(aiomqtt.MqttError):  # anonymous: not in open mode
            async with aiomqtt.Client("127.0.0.1", port, identifier="rm-1"):
                pass
        async with device(port, "rm-1", s1) as one, device(port, "rm-2", s2) as two:
            await one.subscribe("outpost/v1/devices/rm-1/offers", qos=1)
            await two.subscribe("outpost/v1/devices/rm-2/offers", qos=1)
            async with http.patch("/v1/devices/rm-1", json={"enabled": False}, headers=admin) as r:
                assert r.status == 200
            await dropped(one)
            new2 = await credentials("rm-2")
            await dropped(two)
        for device_id, secret in (("rm-1", s1), ("rm-2", s2)):
            with pytest.raises(aiomqtt.MqttError):
                async with device(port, device_id, secret):
                    pass
        async with device(port, "rm-2", new2):
            pass


def device(port: int, device_id: str, secret: str) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", port, identifier=device_id, username=device_id, password=secret)


async def dropped(client: aiomqtt.Client) -> None:
    """Until the broker closes `client`'s connection (a generous guard, not a timing)."""
    with pytest.raises(aiomqtt.MqttError):
        async with asyncio.timeout(30):
            async for _ in client.messages:
                pass


@asynccontextmanager
async def api(url: str, base: str) -> AsyncIterator[tuple[aiohttp.ClientSession, dict[str, str]]]:
    engine = open_engine(url)
    token = access.create_token(engine, role="admin", name="rm", now=datetime.now(UTC))[1]
    engine.dispose()
    async with aiohttp.ClientSession(base) as http:
        yield http, {"Authorization": f"Bearer {token}"}
