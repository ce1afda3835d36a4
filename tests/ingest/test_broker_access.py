"""The embedded broker knows Outpost's devices (issue 15): device logins checked against the registry, a
per-device ACL, service accounts with this process's password, client ids bound to who opened them, and
revoked devices dropped. Real clients (aiomqtt) against the real embedded broker over a migrated store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import aiomqtt
import pytest
from sqlalchemy import Engine

from ingest.broker import EmbeddedBroker
from ingest.broker_access import BrokerAccess
from ingest.broker_acl import ANONYMOUS, Principal, may_publish, may_subscribe
from ingest.devices import DeviceDirectory
from store.engine import open_engine
from store.registry.devices import update_device
from tests.support.mqtt_login import registered_device, rekeyed, service_client

FIX = b'{"ts":1717000000000,"lat":37.79,"lon":-122.41}'


# ------------------------------------------------------------------------------------------ the rules
def test_a_device_publishes_only_what_it_sends_on_its_own_topics() -> None:
    dev = Principal("device", "dev-1")
    assert may_publish(dev, "outpost/v1/devices/dev-1/fix")
    assert may_publish(dev, "outpost/v1/devices/dev-1/reply")
    assert not may_publish(dev, "outpost/v1/devices/dev-2/fix")
    assert not may_publish(dev, "outpost/v1/devices/dev-2/offers")
    assert not may_publish(dev, "outpost/v1/devices/dev-1/offers")  # what Outpost sends it
    assert not may_publish(dev, "outpost/v1/devices/dev-1/x/fix")
    assert not may_publish(dev, "outpost/v1/events/grid")
    assert not may_publish(dev, "owntracks/dev-1/x")  # not an OwnTracks id
    phone = Principal("device", "alice/phone")
    assert may_publish(phone, "owntracks/alice/phone")
    assert may_publish(phone, "owntracks/alice/phone/event")
    assert not may_publish(phone, "owntracks/alice/phone/cmd")
    assert not may_publish(phone, "owntracks/alice/other")
    assert may_publish(phone, "outpost/v1/devices/alice/phone/alarm")


def test_a_device_subscribes_only_to_what_outpost_sends_it() -> None:
    dev = Principal("device", "dev-1")
    for kind in ("offers", "rollcall", "cmd"):
        assert may_subscribe(dev, f"outpost/v1/devices/dev-1/{kind}")
        assert not may_subscribe(dev, f"outpost/v1/devices/dev-2/{kind}")
    for wildcard in ("#", "outpost/#", "outpost/v1/devices/+/offers", "outpost/v1/devices/dev-1/#"):
        assert not may_subscribe(dev, wildcard)
    alice = Principal("device", "alice")
    assert not may_subscribe(alice, "outpost/v1/devices/alice/phone/offers")  # another device's
    assert may_subscribe(Principal("device", "alice/phone"), "owntracks/alice/phone/cmd")


def test_anonymous_clients_in_open_mode_never_write_inbound_topics_nor_read_beyond_events() -> None:
    assert may_publish(ANONYMOUS, "outpost/v1/devices/any-1/fix")
    assert may_publish(ANONYMOUS, "owntracks/bob/phone")
    for forged in (
        "outpost/v1/devices/any-1/offers",
        "outpost/v1/devices/any-1/rollcall",
        "owntracks/b/p/cmd",
    ):
        assert not may_publish(ANONYMOUS, forged)
    assert not may_publish(ANONYMOUS, "outpost/v1/events/grid")
    keyed = {"cam-7", "bob/phone"}.__contains__  # devices with a secret: only it speaks for them
    for spoofed in ("outpost/v1/devices/cam-7/fix", "outpost/v1/devices/cam-7/alarm", "owntracks/bob/phone"):
        assert not may_publish(ANONYMOUS, spoofed, keyed)
    assert may_publish(ANONYMOUS, "outpost/v1/devices/any-1/alarm", keyed)
    assert may_subscribe(ANONYMOUS, "outpost/v1/events/+")
    for refused in ("#", "+/#", "outpost/v1/devices/any-1/offers", "outpost/v1/devices/+/fix", "$SYS/#"):
        assert not may_subscribe(ANONYMOUS, refused)


async def test_anonymous_and_credential_less_clients_only_in_open_mode_on_loopback(engine: Engine) -> None:
    directory = DeviceDirectory(engine)
    await directory.load()
    for open_mode in (False, True):
        access = BrokerAccess(open_mode=open_mode)
        access.attach(directory, 0)
        assert (await access.admit("c", None, None, "127.0.0.1", held=False) is not None) is open_mode
        assert (await access.admit("c", "new-1", None, "::1", held=False) is not None) is open_mode
        assert await access.admit("c", None, None, "192.0.2.7", held=False) is None
        assert await access.admit("c", "new-1", None, "192.0.2.7", held=False) is None


# ------------------------------------------------------------------------------------- a real broker
async def test_a_device_logs_in_with_its_secret_and_an_impostor_does_not(engine: Engine) -> None:
    secret = registered_device(engine, "dev-1")
    async with broker_with(engine) as b:
        async with b.device("dev-1", secret):
            pass
        for username, password in (("dev-1", "wrong"), ("dev-1", None), ("outpost", "guess"), (None, None)):
            with pytest.raises(aiomqtt.MqttError):
                async with aiomqtt.Client("127.0.0.1", b.broker.port, username=username, password=password):
                    pass
        assert registered_device(engine, "outpost-x")  # even if the registry holds a reserved id
        with pytest.raises(aiomqtt.MqttError):
            async with b.device("outpost-x", "anything"):
                pass


async def test_a_forged_offer_and_another_devices_fix_are_dropped(engine: Engine) -> None:
    registered_device(engine, "dev-2")
    s1 = registered_device(engine, "dev-1")
    async with (
        broker_with(engine) as b,
        b.service_subscriber("outpost/v1/devices/#") as got,
        b.device("dev-1", s1) as dev,
    ):
        await dev.publish("outpost/v1/devices/dev-2/offers", b'{"forged":1}', qos=1)
        await dev.publish("outpost/v1/devices/dev-2/fix", FIX, qos=1)
        await dev.publish("outpost/v1/devices/dev-1/fix", FIX, qos=1)  # in order, after the refused
        await got.wait_for_topic("outpost/v1/devices/dev-1/fix")
    assert [t for t, _ in got.messages] == ["outpost/v1/devices/dev-1/fix"]


async def test_in_open_mode_an_anonymous_client_cannot_speak_for_a_keyed_device(engine: Engine) -> None:
    registered_device(engine, "dev-1")
    async with (
        broker_with(engine, open_mode=True) as b,
        b.service_subscriber("outpost/v1/devices/#") as got,
        aiomqtt.Client("127.0.0.1", b.broker.port) as anonymous,
    ):
        await anonymous.publish("outpost/v1/devices/dev-1/alarm", b'{"lat": 37.7, "lon": -122.4}', qos=1)
        await anonymous.publish("outpost/v1/devices/new-1/fix", FIX, qos=1)  # in order, after the refused
        await got.wait_for_topic("outpost/v1/devices/new-1/fix")
    assert [t for t, _ in got.messages] == ["outpost/v1/devices/new-1/fix"]


async def test_wildcards_and_other_devices_topics_are_refused_on_subscribe(engine: Engine) -> None:
    s1 = registered_device(engine, "dev-1")
    async with broker_with(engine) as b, b.device("dev-1", s1) as dev:
        for refused in ("#", "outpost/v1/devices/+/offers", "outpost/v1/devices/dev-2/offers"):
            assert await refused_codes(dev, refused) == [True]
        assert await refused_codes(dev, "outpost/v1/devices/dev-1/offers") == [False]
    async with (
        broker_with(engine, open_mode=True) as b,
        aiomqtt.Client("127.0.0.1", b.broker.port) as anonymous,
    ):
        assert await refused_codes(anonymous, "#") == [True]


async def test_an_offer_reaches_its_device_only(engine: Engine) -> None:
    s1, s2 = registered_device(engine, "dev-1"), registered_device(engine, "dev-2")
    async with broker_with(engine) as b, b.device("dev-1", s1) as dev1, b.device("dev-2", s2) as dev2:
        await dev1.subscribe("outpost/v1/devices/dev-1/offers", qos=1)
        await dev2.subscribe("outpost/v1/devices/dev-1/offers", qos=1)  # refused (SUBACK 0x80)
        await dev2.subscribe("outpost/v1/devices/dev-2/offers", qos=1)
        async with service_client(b.broker) as service:
            await service.publish("outpost/v1/devices/dev-1/offers", b"to 1", qos=1)
            await service.publish("outpost/v1/devices/dev-2/offers", b"to 2", qos=1)
        assert await next_payload(dev1) == b"to 1"
        assert await next_payload(dev2) == b"to 2"  # not "to 1": its subscription was refused


async def test_a_client_id_is_kept_by_whoever_opened_its_session(engine: Engine) -> None:
    s1, s2 = registered_device(engine, "dev-1"), registered_device(engine, "dev-2")
    async with broker_with(engine) as b:
        with pytest.raises(aiomqtt.MqttError):  # the ingest's and the channel's ids are reserved
            async with b.device("dev-1", s1, identifier="outpost-ingest"):
                pass
        async with (
            service_client(b.broker, identifier="svc", clean_session=False) as service,
            b.device("dev-1", s1, identifier="shared") as dev1,
        ):
            await dev1.subscribe("outpost/v1/devices/dev-1/offers", qos=1)
            for username, password, identifier in (("dev-2", s2, "shared"), ("dev-2", s2, "svc")):
                for clean in (True, False):  # a clean session must not delete the holder's either
                    with pytest.raises(aiomqtt.MqttError):
                        async with b.device(username, password, identifier=identifier, clean_session=clean):
                            pass
            await service.publish("outpost/v1/devices/dev-1/offers", b"still there", qos=1)
            assert await next_payload(dev1) == b"still there"  # neither taken over nor its session gone


async def test_revoked_devices_are_dropped_and_refused(engine: Engine) -> None:
    s1, s2, s3 = (registered_device(engine, d) for d in ("dev-1", "dev-2", "dev-3"))
    async with broker_with(engine) as b:
        async with (
            b.device("dev-1", s1) as dev1,
            b.device("dev-2", s2) as dev2,
            b.device("dev-3", s3) as dev3,
        ):
            update_device(engine, "dev-1", enabled=False)
            new2 = rekeyed(engine, "dev-2")
            await b.directory.load()
            assert b.broker.revoke_changed() == 2
            for gone in (dev1, dev2):
                with pytest.raises(aiomqtt.MqttError):
                    async with asyncio.timeout(30):
                        await gone.publish("outpost/v1/devices/x/fix", FIX, qos=1)
                        await gone.publish("outpost/v1/devices/x/fix", FIX, qos=1)
            await dev3.publish("outpost/v1/devices/dev-3/fix", FIX, qos=1)  # untouched
        for username, password in (("dev-1", s1), ("dev-2", s2)):
            with pytest.raises(aiomqtt.MqttError):
                async with b.device(username, password):
                    pass
        async with b.device("dev-2", new2):
            pass


async def test_the_sweep_drops_what_a_periodic_reload_revoked(engine: Engine) -> None:
    s1 = registered_device(engine, "dev-1")
    async with broker_with(engine) as b, b.device("dev-1", s1) as dev1:
        update_device(engine, "dev-1", enabled=False)
        await b.directory.load()  # as the directory's own period does; nobody calls revoke_changed
        with pytest.raises(aiomqtt.MqttError):
            async with asyncio.timeout(30):
                async for _ in dev1.messages:
                    pass


# ------------------------------------------------------------------------------------------------ helpers
@dataclass
class Running:
    broker: EmbeddedBroker
    directory: DeviceDirectory

    def device(self, device_id: str, secret: str | None, **options: object) -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1",
            self.broker.port,
            username=device_id,
            password=secret,
            identifier=str(options.pop("identifier", device_id)),
            **options,  # type: ignore[arg-type]
        )

    @contextlib.asynccontextmanager
    async def service_subscriber(self, topic: str) -> AsyncIterator[Received]:
        got = Received()
        async with service_client(self.broker) as client:
            await client.subscribe(topic, qos=1)
            task = asyncio.create_task(got.pump(client))
            try:
                yield got
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


@dataclass
class Received:
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    grew: asyncio.Event = field(default_factory=asyncio.Event)

    async def pump(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.messages.append((str(message.topic), bytes(message.payload)))  # type: ignore[arg-type]
            self.grew.set()

    async def wait_for_topic(self, topic: str) -> None:
        async with asyncio.timeout(30):
            while all(t != topic for t, _ in self.messages):
                self.grew.clear()
                await self.grew.wait()


@contextlib.asynccontextmanager
async def broker_with(engine: Engine, *, open_mode: bool = False) -> AsyncIterator[Running]:
    directory = DeviceDirectory(engine, miss_refresh_s=0.0)
    await directory.load()
    access = BrokerAccess(open_mode=open_mode)
    access.attach(directory, 300.0)
    async with EmbeddedBroker("127.0.0.1:0", access=access) as broker:
        yield Running(broker, directory)


async def refused_codes(client: aiomqtt.Client, topic_filter: str) -> list[bool]:
    """Whether the broker refused the subscription (SUBACK 0x80), per filter."""
    codes = await client.subscribe(topic_filter, qos=1)
    return [(code if isinstance(code, int) else code.value) >= 0x80 for code in codes]


async def next_payload(client: aiomqtt.Client) -> bytes:
    async with asyncio.timeout(30):
        async for message in client.messages:
            return bytes(message.payload)  # type: ignore[arg-type]
    raise AssertionError("no message")


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = open_engine(sqlite_url, pool_size=2)
    yield engine
    engine.dispose()
