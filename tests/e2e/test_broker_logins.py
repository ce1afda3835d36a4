"""The external broker knows Outpost's devices (issue 15, item 3): with OUTPOST_MQTT_ADMIN_URL, a real
Mosquitto's dynamic-security plugin holds every device's login and per-device ACL, driven from the
registry through the API of `outpost run`. Nobody runs mosquitto_passwd: a device created over the API
logs in with the secret shown once; disabling it or rotating its secret drops its live session and
refuses the old login; a rotation the broker missed (it was down) still retires the old secret there."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
from sqlalchemy import text

from ingest.broker_registry import BrokerRegistry
from store import access
from store.engine import open_engine
from tests.support.outpost_run import running_outpost
from tests.support.prod_broker import ProdBroker, missing_tools
from tests.support.tls import self_signed, trusting

GUARD_S = 30.0  # a generous bound on what should take a moment (never a timing)


@pytest.fixture
def broker() -> Iterator[ProdBroker]:
    if (reason := missing_tools()) is not None:
        pytest.skip(reason)
    b = ProdBroker().start()
    yield b
    b.close()


async def test_device_logins_and_rules_follow_the_registry(tmp_path: Path, broker: ProdBroker) -> None:
    url = f"sqlite:///{tmp_path / 'outpost.db'}"
    async with outpost(url, tmp_path, broker) as (http, admin):
        one = await create(http, admin, "bl-1")
        two = await create(http, admin, "bl-2")
        with pytest.raises(aiomqtt.MqttError):  # an impostor
            async with device(broker, "bl-1", "not-the-secret"):
                pass
        async with device(broker, "bl-1", one) as d1, device(broker, "bl-2", two) as d2:
            assert await granted(d1, "outpost/v1/devices/bl-1/offers")
            assert not await granted(d1, "outpost/v1/devices/bl-2/offers")  # another device's offers
            assert not await granted(d1, "outpost/internal/v1/fixes/+")  # every position, Outpost's own
            await d1.publish("outpost/v1/devices/bl-1/fix", fix(), qos=1)
            await stored(url, "bl-1")
            async with http.patch("/v1/devices/bl-1", json={"enabled": False}, headers=admin) as r:
                assert r.status == 200
            await dropped(d1)
            rotated = await credentials(http, admin, "bl-2")
            await dropped(d2)
        await refused(broker, "bl-1", one)
        await refused(broker, "bl-2", two)
        async with device(broker, "bl-2", rotated):
            pass
        async with http.patch("/v1/devices/bl-1", json={"enabled": True}, headers=admin) as r:
            assert r.status == 200
        async with device(broker, "bl-1", one):  # enabled again, with the secret it had
            pass
        # Registered without credentials: no login at the broker until they are issued.
        bare = {"id": "bl-3", "kind": "phone", "credentials": False}
        async with http.post("/v1/devices", json=bare, headers=admin) as r:
            assert r.status == 201
        three = await credentials(http, admin, "bl-3")
        async with device(broker, "bl-3", three):
            pass


async def test_a_rotation_the_broker_missed_still_retires_the_old_secret(
    tmp_path: Path, broker: ProdBroker
) -> None:
    url = f"sqlite:///{tmp_path / 'outpost.db'}"
    async with outpost(url, tmp_path, broker) as (http, admin):
        old = await create(http, admin, "bl-9")
        async with device(broker, "bl-9", old):
            pass
        broker.stop()
        async with http.post("/v1/devices/bl-9/credentials", headers=admin) as r:
            assert r.status == 503
            body = await r.json()
            assert "secret" not in body and "OUTPOST_MQTT_ADMIN_URL" in body["detail"]
        broker.start()
        await refused(broker, "bl-9", old)  # the broker holds an older secret than the registry: disabled
        new = await credentials(http, admin, "bl-9")
        async with device(broker, "bl-9", new):
            pass


async def test_the_admin_drives_the_broker_over_tls(tmp_path: Path) -> None:
    # deploy/README's TLS device listener keeps the plugin: the admin's exchanges go over mqtts:// with
    # OUTPOST_MQTT_TLS_CA (the service listener stays plain, on the broker's own network).
    if (reason := missing_tools()) is not None:
        pytest.skip(reason)
    pair = self_signed(tmp_path, "broker", "IP:127.0.0.1")
    tls_broker = ProdBroker(tls=pair).start()
    try:
        url = f"sqlite:///{tmp_path / 'outpost.db'}"
        assert tls_broker.admin_url.startswith("mqtts://")
        async with outpost(url, tmp_path, tls_broker, OUTPOST_MQTT_TLS_CA=str(pair.cert)) as (http, admin):
            secret = await create(http, admin, "bl-tls")
            with pytest.raises(aiomqtt.MqttError):  # plain MQTT on the TLS listener
                async with device(tls_broker, "bl-tls", secret):
                    pass
            async with device(tls_broker, "bl-tls", secret, tls=trusting(pair.cert)) as d:
                assert await granted(d, "outpost/v1/devices/bl-tls/offers")
                async with http.patch("/v1/devices/bl-tls", json={"enabled": False}, headers=admin) as r:
                    assert r.status == 200
                await dropped(d)
            with pytest.raises(aiomqtt.MqttError):
                async with device(tls_broker, "bl-tls", secret, tls=trusting(pair.cert)):
                    pass
    finally:
        tls_broker.close()


@asynccontextmanager
async def outpost(
    url: str, tmp_path: Path, broker: ProdBroker, *, admin_url: str | None = None, **more: str
) -> AsyncIterator[tuple[aiohttp.ClientSession, dict[str, str]]]:
    settings = {
        "OUTPOST_MQTT_URL": broker.service_url,
        "OUTPOST_MQTT_ADMIN_URL": admin_url or broker.admin_url,
        "OUTPOST_DEVICE_REFRESH_S": "3600",  # only the API's word can explain what the broker does
        **more,
    }
    async with running_outpost(url, tmp_path, **settings) as (running, _port):
        engine = open_engine(url)
        token = access.create_token(engine, role="admin", name="bl", now=datetime.now(UTC))[1]
        engine.dispose()
        async with aiohttp.ClientSession(running.http_url) as http:
            yield http, {"Authorization": f"Bearer {token}"}


async def create(http: aiohttp.ClientSession, admin: dict[str, str], device_id: str) -> str:
    async with http.post("/v1/devices", json={"id": device_id, "kind": "phone"}, headers=admin) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["credentials"]["secret"])


async def credentials(http: aiohttp.ClientSession, admin: dict[str, str], device_id: str) -> str:
    async with http.post(f"/v1/devices/{device_id}/credentials", headers=admin) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["secret"])


def device(
    broker: ProdBroker, device_id: str, secret: str, *, tls: ssl.SSLContext | None = None
) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        broker.device_port,
        identifier=device_id,
        username=device_id,
        password=secret,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=tls,
    )


async def granted(client: aiomqtt.Client, topic: str) -> bool:
    codes: Any = await client.subscribe(topic, qos=1)
    return all(getattr(code, "value", code) < 0x80 for code in codes)


def fix() -> bytes:
    return json.dumps({"lat": 37.77, "lon": -122.42, "ts": int(time.time() * 1000)}).encode()


async def stored(url: str, device_id: str) -> None:
    """Until a fix of `device_id` is in the database (a generous guard, not a timing)."""
    engine = open_engine(url)
    try:
        async with asyncio.timeout(GUARD_S):
            while True:
                with engine.connect() as conn:
                    count = conn.execute(
                        text("SELECT count(*) FROM fixes WHERE device_id = :d"), {"d": device_id}
                    ).scalar_one()
                if count:
                    return
                await asyncio.sleep(0.1)
    finally:
        engine.dispose()


async def dropped(client: aiomqtt.Client) -> None:
    """Until the broker closes `client`'s connection."""
    with pytest.raises(aiomqtt.MqttError):
        async with asyncio.timeout(GUARD_S):
            async for _ in client.messages:
                pass


async def refused(broker: ProdBroker, device_id: str, secret: str) -> None:
    """Until the broker refuses `device_id`'s login with `secret` (at once, unless it just restarted)."""
    async with asyncio.timeout(GUARD_S):
        while True:
            try:
                async with device(broker, device_id, secret):
                    pass
            except aiomqtt.MqttError:
                return
            await asyncio.sleep(0.2)


async def test_a_refused_admin_login_is_said_once_and_no_secret_is_shown(
    tmp_path: Path, broker: ProdBroker, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'outpost.db'}"
    wrong = broker.admin_url.replace(":admin-secret@", ":not-the-admin-secret@")
    async with outpost(url, tmp_path, broker, admin_url=wrong) as (http, admin):
        async with http.post("/v1/devices", json={"id": "bl-5", "kind": "phone"}, headers=admin) as r:
            assert r.status == 503
            assert "credentials" not in await r.json()
        await asyncio.sleep(5)  # a couple of retries, 2 s apart
    said = [r for r in caplog.records if "cannot keep the broker's device logins" in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]
    assert "OUTPOST_MQTT_ADMIN_URL" in said[0].getMessage() and "not-the-admin-secret" not in caplog.text


async def test_two_replicas_talk_to_the_broker_admin_in_turns(
    pg_url: str, broker: ProdBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Replicas log in as the same admin and the device listener makes the user name the client id: two
    # exchanges at once knock each other off. They take turns by an advisory lock on their database.
    engine = open_engine(pg_url)
    try:
        one, two = BrokerRegistry(broker.admin_url, engine), BrokerRegistry(broker.admin_url, engine)

        async def issue(registry: BrokerRegistry, i: int) -> bool:
            return await registry.issued(f"turn-{i}", f"secret-{i}", f"hash-{i}", True)

        told = await asyncio.gather(*(issue(one if i % 2 else two, i) for i in range(16)))
        assert told == [True] * 16
        assert "already connected, closing old connection" not in broker.log, broker.log[-3000:]
        async with device(broker, "turn-3", "secret-3"):
            pass
    finally:
        engine.dispose()
