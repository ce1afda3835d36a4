"""In-process ingest at the embedded broker: real amqtt broker, real clients, real SQLite and PostgreSQL.

The one fault injected is a slow or unavailable database (FixWriter.write held or failing), to show that a
device's PUBACK waits for durability; the broker, the clients and the stores are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import shutil
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from amqtt.adapters import StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.protocol.handler import ProtocolHandler
from amqtt.plugins.manager import PluginManager
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import Engine

from ingest.broker import EmbeddedBroker
from ingest.broker_access import BrokerAccess
from ingest.broker_admission import _RENEWED_ON_CONNECT
from ingest.embedded import EmbeddedSource
from ingest.mqtt.publisher import Publisher
from ingest.pipeline import Pipeline
from ingest.runner import build_pipeline
from schemas.fix import Fix
from store.engine import open_engine
from store.fixes import FixWriter, StoreUnavailable
from tests.ingest.ingest_harness import (
    count,
    ingest_settings,
    mosquitto_pub,
    own_fix,
    running_ingest,
    wait_for,
)
from tests.ingest.mqtt_collect import collect
from tests.support.mqtt_login import service_login

FIX = "outpost/v1/devices/{}/fix"


# ------------------------------------------------------------------------------------------- amqtt canary
def test_amqtt_internals_we_rely_on_are_unchanged() -> None:
    """ingest/broker.py subclasses amqtt 0.12 internals: if this fails, re-read them before moving the pin."""
    assert version("amqtt").startswith("0.12."), "amqtt changed: re-check ingest/broker.py's hooks"
    params = list(inspect.signature(Broker._handle_client_session).parameters)
    assert params == ["self", "reader", "writer", "client_session", "handler", "server", "listener_name"]
    client_connected = inspect.getsource(Broker._client_connected)
    assert "self._handle_client_session(reader, writer, client_session, handler, server, listener_name)" in (
        client_connected
    )
    session = inspect.getsource(Broker._handle_client_session)
    assert "handler.attach(client_session, reader, writer)" in session
    assert session.index("handler.attach(") < session.index("await handler.start()")
    reader_loop = inspect.getsource(ProtocolHandler._reader_loop)
    assert "self.handle_publish(packet)" in reader_loop
    assert "self.handle_pubrel(packet)" in reader_loop
    assert "await self.handle_connection_closed()" in reader_loop
    # amqtt's own PUBACK of an inbound QoS 1 PUBLISH, which the in-process source replaces:
    qos1 = inspect.getsource(ProtocolHandler._handle_qos1_message_flow)
    assert "PubackPacket.build(app_message.packet_id)" in qos1
    for name in ("handle_publish", "handle_pubrel", "handle_connection_closed", "start", "stop"):
        assert inspect.iscoroutinefunction(getattr(BrokerProtocolHandler, name)), name
    for name in ("add_subscription", "_matches", "_del_subscription"):
        assert callable(getattr(Broker, name)), name
    assert "self._del_subscription(topic, session)" in inspect.getsource(Broker._del_all_subscriptions)
    assert "_writer" in inspect.getsource(StreamWriterAdapter.__init__)
    assert "self._topic_plugins" in inspect.getsource(PluginManager.__init__)
    # AccessBroker._initialize_client_session mirrors amqtt's, admitting the client first:
    init = inspect.getsource(Broker._initialize_client_session)
    assert "BrokerProtocolHandler.init_from_connect(reader, writer, self.plugins_manager)" in init
    for renewed in _RENEWED_ON_CONNECT:
        assert f"existing_client_session.{renewed} = client_session.{renewed}" in init, renewed
    assert init.count("existing_client_session.") == len(_RENEWED_ON_CONNECT)  # and nothing more
    assert "await self._authenticate(client_session" in session
    assert "await self._topic_filtering(" in inspect.getsource(Broker.add_subscription)


async def test_no_plugin_means_no_await_before_the_sink(engine: Engine, tmp_path: Path) -> None:
    # The ACL is checked synchronously by IngestingHandler; amqtt's plugins would be awaited per message.
    async with embedded(engine, tmp_path) as e:
        assert e.broker._broker is not None
        manager = e.broker._broker.plugins_manager
        assert manager._auth_plugins == [] and manager._topic_plugins == []


# ------------------------------------------------------------------------------------------------ helpers
@dataclass
class Embedded:
    """A running embedded broker whose device messages ingest consumes in process."""

    broker: EmbeddedBroker
    source: EmbeddedSource
    pipeline: Pipeline
    engine: Engine

    def stored(self) -> int:
        return count(self.engine, "SELECT count(*) FROM fixes")


@contextlib.asynccontextmanager
async def embedded(engine: Engine, tmp_path: Path, **overrides: object) -> AsyncIterator[Embedded]:
    settings = ingest_settings("", tmp_path / "spool", register_unknown_devices=True, **overrides)
    source = EmbeddedSource()
    accepted: list[Fix] = []
    access = BrokerAccess(open_mode=True)  # anonymous loopback devices, as in a demo
    async with EmbeddedBroker("127.0.0.1:0", access=access, ingest=source) as broker:
        pipeline = build_pipeline(settings, engine, on_accepted=accepted.extend)
        access.attach(pipeline.directory, settings.http_auth_cache_s)
        async with running_ingest(settings, engine, pipeline=pipeline, source=source):
            yield Embedded(broker, source, pipeline, engine)


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    engine = open_engine(sqlite_url, pool_size=2)
    yield engine
    engine.dispose()


class HeldWrites:
    """The injected fault: FixWriter.write waits (a slow database) until `release`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()
        original = FixWriter.write

        def write(writer: FixWriter, fixes: Sequence[Fix]) -> int:
            self.entered.set()
            if not self._open.wait(30):
                raise RuntimeError("writes never released")
            return original(writer, fixes)

        monkeypatch.setattr(FixWriter, "write", write)

    def release(self) -> None:
        self._open.set()


# ---------------------------------------------------------------------------------------------- delivery
async def test_mosquitto_pub_fix_is_stored(store_url: str, tmp_path: Path) -> None:
    if shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto_pub not installed (scripts/install-services)")
    engine = open_engine(store_url, pool_size=2)
    try:
        async with embedded(engine, tmp_path) as e:
            for seq in range(3):
                await mosquitto_pub(e.broker.port, FIX.format("cli-1"), own_fix(seq))
            await wait_for(lambda: e.stored() == 3, what="3 fixes stored")
            assert count(engine, "SELECT count(DISTINCT seq) FROM fixes WHERE device_id = 'cli-1'") == 3
    finally:
        engine.dispose()


async def test_many_qos1_fixes_from_several_clients_stored_once_each(engine: Engine, tmp_path: Path) -> None:
    clients, per_client = 4, 500
    async with embedded(engine, tmp_path) as e:
        pubs = [Publisher(e.broker.url, f"dev-{c}", max_inflight=100) for c in range(clients)]
        for pub in pubs:
            await pub.connect()
        for seq in range(per_client):
            for c, pub in enumerate(pubs):
                pub.publish(FIX.format(f"dev-{c}"), own_fix(seq))
        for pub in pubs:
            await pub.flush(timeout_s=60)
            assert pub.acked == per_client
            await pub.close()
        # Every PUBACK followed a commit: all rows are there the moment the last device was acknowledged.
        assert e.stored() == clients * per_client


async def test_qos0_and_qos2_fixes_are_stored(engine: Engine, tmp_path: Path) -> None:
    async with embedded(engine, tmp_path) as e, Publisher(e.broker.url, "dev-q") as pub:
        pub.publish(FIX.format("dev-q"), own_fix(0), qos=0)
        pub.publish(FIX.format("dev-q"), own_fix(2), qos=2)  # acked by paho on PUBCOMP
        await pub.flush(timeout_s=30)
        await wait_for(lambda: e.stored() == 2, what="both fixes stored")
        assert pub.acked == 2


# ------------------------------------------------------------------------------------ ack once durable
async def test_puback_waits_until_the_fix_is_committed(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldWrites(monkeypatch)
    async with embedded(engine, tmp_path) as e, Publisher(e.broker.url, "dev-slow-db") as pub:
        pub.publish(FIX.format("dev-slow-db"), own_fix(0))
        await wait_for(held.entered.is_set, what="the fix reaching the database")
        # A message on a topic ingest does not read, sent after the fix on the same connection, is
        # acknowledged on receipt by amqtt; the fix, received first, is still not: its PUBACK waits.
        pub.publish("outpost/v1/devices/dev-slow-db/telemetry", b"on")
        await wait_for(lambda: pub.acked == 1, what="the status message acked")
        assert pub.pending == 1 and e.stored() == 0
        held.release()
        await pub.flush(timeout_s=30)
        assert e.stored() == 1


async def test_puback_once_spooled_when_the_database_is_down(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(writer: FixWriter, fixes: Sequence[Fix]) -> int:
        raise StoreUnavailable("injected: database down")

    with monkeypatch.context() as down:
        down.setattr(FixWriter, "write", unavailable)
        async with embedded(engine, tmp_path) as e, Publisher(e.broker.url, "dev-spool") as pub:
            pub.publish(FIX.format("dev-spool"), own_fix(0))
            await pub.flush(timeout_s=30)  # acknowledged: durable in the local spool (fsynced)
            assert e.pipeline.spooling and e.stored() == 0
            down.undo()
            await wait_for(lambda: e.stored() == 1, what="the spool drained into the database")


async def test_ack_for_a_connection_that_has_gone_is_dropped_and_the_device_resends(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldWrites(monkeypatch)
    async with embedded(engine, tmp_path) as e:
        device = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="dev-flaky",
            clean_session=False,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        acked: list[int] = []
        device.on_publish = lambda c, u, mid, rc, p: acked.append(mid)
        device.connect("127.0.0.1", e.broker.port)
        device.loop_start()
        try:
            device.publish(FIX.format("dev-flaky"), own_fix(0), qos=1)
            await wait_for(held.entered.is_set, what="the fix reaching the database")
            device.disconnect()  # before its PUBACK: the device still holds the message
            device.loop_stop()
            await wait_for(lambda: not e.source._connections, what="the broker noticing")
            held.release()
            await wait_for(lambda: e.stored() == 1, what="the first copy stored")
            assert acked == []
            device.reconnect()  # paho resends unacknowledged QoS 1 messages (DUP)
            device.loop_start()
            await wait_for(lambda: len(acked) == 1, what="the resent copy acked")
            assert e.stored() == 1  # the resend was a duplicate, ignored by the idempotent store
        finally:
            device.disconnect()
            device.loop_stop()


async def test_backpressure_pauses_reading_then_resumes(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldWrites(monkeypatch)
    n = 300
    async with (
        embedded(engine, tmp_path, mqtt_receive_maximum=50, batch_max_fixes=20) as e,
        Publisher(e.broker.url, "dev-burst") as pub,
    ):
        for seq in range(n):
            pub.publish(FIX.format("dev-burst"), own_fix(seq))
        await wait_for(lambda: e.source.paused, what="the pipeline pausing the source")
        connections = list(e.source._publishers)
        assert connections and not any(c.is_reading() for c in connections)
        held.release()
        await pub.flush(timeout_s=60)
        assert not e.source.paused and e.stored() == n


# ------------------------------------------------------------------------------------- other subscribers
async def test_fixes_still_reach_other_subscribers_and_other_topics_flow_as_before(
    engine: Engine, tmp_path: Path
) -> None:
    # As the service: only it may publish on a topic no device sends (see test_broker_access.py).
    async with embedded(engine, tmp_path) as e, Publisher(e.broker.service_url, "dev-watched") as pub:
        pub.publish(FIX.format("dev-watched"), own_fix(0))  # nobody subscribed yet: ingest only
        await pub.flush()
        fix = own_fix(1)
        async with collect(e.broker.port, "outpost/v1/devices/#", login=service_login(e.broker)) as console:
            pub.publish(FIX.format("dev-watched"), fix)
            pub.publish("outpost/v1/devices/dev-watched/offer", b'{"incident": 7}')
            await pub.flush()
            await console.wait_for(2)
        assert sorted(console.messages) == [
            ("outpost/v1/devices/dev-watched/fix", fix),
            ("outpost/v1/devices/dev-watched/offer", b'{"incident": 7}'),
        ]
        assert e.stored() == 2


def test_ingest_topics() -> None:
    source = EmbeddedSource()
    assert source.consumes("outpost/v1/devices/d1/fix")
    assert source.consumes("outpost/v1/devices/d1/reply") and source.consumes("outpost/v1/devices/d1/alarm")
    assert source.consumes("owntracks/alice/phone")
    assert not source.consumes("owntracks/alice/phone/event")
    assert not source.consumes("outpost/v1/devices/d1/offer")
    assert not source.consumes("outpost/v1/devices/fix")


# ------------------------------------------------------------------------------------- protocol details
def _packet(header: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([header]) + bytes(encoded) + body


def _string(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


async def test_a_resend_on_the_same_connection_gets_one_puback(engine: Engine, tmp_path: Path) -> None:
    """A client resending a held packet id (DUP) must not get a second PUBACK it could take for a later
    message that reuses the id."""
    async with embedded(engine, tmp_path) as e:
        reader, writer = await asyncio.open_connection("127.0.0.1", e.broker.port)
        connect = _string(b"MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + _string(b"dev-raw")
        writer.write(_packet(0x10, connect))
        assert await reader.readexactly(4) == b"\x20\x02\x00\x00"  # CONNACK, accepted
        publish = _string(FIX.format("dev-raw").encode()) + (1).to_bytes(2, "big") + own_fix(0)
        writer.write(_packet(0x32, publish) + _packet(0x3A, publish))  # QoS 1, then its DUP
        await writer.drain()
        assert await reader.readexactly(4) == b"\x40\x02\x00\x01"  # PUBACK, once the fix is stored
        assert e.stored() == 1
        writer.write(b"\xc0\x00")  # PINGREQ: the next packet must be its PINGRESP, not a second PUBACK
        assert await reader.readexactly(2) == b"\xd0\x00"
        writer.close()
