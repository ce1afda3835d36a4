"""The ingest subscriber on a real Mosquitto: nothing is acknowledged until the pipeline says so, the
Receive Maximum bounds what the broker sends, the session survives restarts, and MQTT 5 properties do not
confuse the lean PUBLISH path."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt.subscriber import MqttSubscriber
from ingest.ports import Message
from tests.ingest.ingest_harness import mosquitto_pub, wait_for
from tests.support.services import Mosquitto

TOPIC = "outpost/v1/devices/{}/fix"


class Inbox:
    """What the subscriber delivered; acknowledges only when told to."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, messages: list[Message], received_s: float) -> None:
        self.messages.extend(messages)

    @property
    def payloads(self) -> list[bytes]:
        return [p for _t, p, _k in self.messages]


@contextlib.asynccontextmanager
async def subscribed(broker: Mosquitto, inbox: Inbox, **kwargs: object) -> AsyncIterator[MqttSubscriber]:
    kwargs.setdefault("reconnect_min_s", 0.1)
    client_id = str(kwargs.pop("client_id", "test-sub"))
    sub = MqttSubscriber(broker.url, client_id, inbox, **kwargs)  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(sub.run(stop))
    await wait_for(lambda: sub.connected, what="connected")
    await asyncio.sleep(0.2)  # SUBACK
    try:
        yield sub
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def publish(broker: Mosquitto, n: int, device: str = "cam-1") -> None:
    for i in range(n):
        await mosquitto_pub(broker.port, TOPIC.format(device), b"%d" % i)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_unacknowledged_messages_come_back_and_acknowledged_ones_do_not(
    mosquitto: Mosquitto, protocol: str
) -> None:
    inbox = Inbox()
    async with subscribed(mosquitto, inbox, protocol=protocol) as sub:
        await publish(mosquitto, 4)
        await wait_for(lambda: len(inbox.messages) == 4)
        sub.ack([token for _t, _p, token in inbox.messages[:2]])  # "durable": the first two only
        await asyncio.sleep(0.2)
    inbox.messages.clear()
    async with subscribed(mosquitto, inbox, protocol=protocol):
        await wait_for(lambda: len(inbox.messages) == 2, what="redelivery of the unacknowledged")
        await asyncio.sleep(0.3)
    assert inbox.payloads == [b"2", b"3"]


async def test_tokens_of_a_lost_connection_are_never_acknowledged(mosquitto: Mosquitto) -> None:
    inbox = Inbox()
    async with subscribed(mosquitto, inbox) as sub:
        await publish(mosquitto, 2)
        await wait_for(lambda: len(inbox.messages) == 2)
        old = [token for _t, _p, token in inbox.messages]
        mosquitto.restart()  # the connection drops; the session survives
        await wait_for(lambda: len(inbox.messages) == 4, what="redelivery after the broker restart")
        assert sub.ack(old) == 0
        assert sub.ack([token for _t, _p, token in inbox.messages[2:]]) == 2
        await asyncio.sleep(0.2)
    inbox.messages.clear()
    async with subscribed(mosquitto, inbox):
        await asyncio.sleep(0.5)
    assert inbox.messages == []


async def test_receive_maximum_bounds_what_the_broker_sends(mosquitto: Mosquitto) -> None:
    inbox = Inbox()
    async with subscribed(mosquitto, inbox, receive_maximum=3) as sub:
        await publish(mosquitto, 8)
        await wait_for(lambda: len(inbox.messages) == 3)
        await asyncio.sleep(0.5)
        assert len(inbox.messages) == 3  # the window is full: the broker holds the rest
        sub.ack([token for _t, _p, token in inbox.messages])
        # Mosquitto 2.0.11 then sends everything queued, beyond the window (the pipeline's pause() is the
        # memory bound that does not depend on the broker getting this right).
        await wait_for(lambda: len(inbox.messages) == 8)
    assert inbox.payloads == [b"%d" % i for i in range(8)]


async def test_pausing_stops_delivery_until_resumed(mosquitto: Mosquitto) -> None:
    inbox = Inbox()
    async with subscribed(mosquitto, inbox) as sub:
        sub.pause()
        await publish(mosquitto, 3)
        await asyncio.sleep(0.3)
        assert inbox.messages == []
        sub.resume()
        await wait_for(lambda: len(inbox.messages) == 3)


async def test_messages_published_while_away_are_delivered_on_return(mosquitto: Mosquitto) -> None:
    inbox = Inbox()
    async with subscribed(mosquitto, inbox):
        pass  # creates the persistent session and its subscriptions
    await publish(mosquitto, 3)
    mosquitto.restart()  # and the broker restarts gracefully meanwhile
    async with subscribed(mosquitto, inbox):
        await wait_for(lambda: len(inbox.messages) == 3)


async def test_mqtt5_properties_and_qos0_take_the_lean_path_correctly(mosquitto: Mosquitto) -> None:
    inbox = Inbox()
    async with subscribed(mosquitto, inbox):
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="props-pub",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.UserProperty = [("firmware", "1.2.3"), ("x" * 200, "y" * 300)]
        props.ContentType = "application/json"
        client.publish(
            TOPIC.format("cam-p"), b'{"with": "properties"}', qos=1, properties=props
        ).wait_for_publish()
        client.publish(TOPIC.format("cam-q"), b"qos0", qos=0).wait_for_publish()
        client.loop_stop()
        client.disconnect()
        await wait_for(lambda: len(inbox.messages) == 2)
    assert inbox.messages[0][:2] == (TOPIC.format("cam-p"), b'{"with": "properties"}')
    assert inbox.messages[1] == (TOPIC.format("cam-q"), b"qos0", -1)


async def test_many_messages_arrive_whole_and_in_order(mosquitto: Mosquitto) -> None:
    inbox = Inbox()
    async with subscribed(mosquitto, inbox, read_budget=50) as sub:
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bulk-pub")
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        infos = [
            client.publish(TOPIC.format("cam-b"), b"%06d" % i + b"." * (i % 700), qos=1) for i in range(3000)
        ]
        for info in infos:
            info.wait_for_publish()
        client.loop_stop()
        client.disconnect()
        await wait_for(lambda: len(inbox.messages) >= 3000)
        sub.ack([token for _t, _p, token in inbox.messages])
    assert [p[:6] for p in inbox.payloads] == [b"%06d" % i for i in range(3000)]
    assert all(len(p) == 6 + i % 700 for i, p in enumerate(inbox.payloads))


async def test_a_shared_subscription_splits_the_stream_between_workers(mosquitto: Mosquitto) -> None:
    first, second = Inbox(), Inbox()
    async with (
        subscribed(mosquitto, first, client_id="worker-1", shared_group="ingest"),
        subscribed(mosquitto, second, client_id="worker-2", shared_group="ingest"),
    ):
        for i in range(10):
            await mosquitto_pub(mosquitto.port, TOPIC.format(f"cam-{i}"), b"%d" % i)
        await wait_for(lambda: len(first.messages) + len(second.messages) == 10)
    assert first.messages and second.messages
    assert sorted(first.payloads + second.payloads) == sorted(b"%d" % i for i in range(10))


async def test_it_keeps_trying_until_the_broker_is_up(mosquitto: Mosquitto) -> None:
    mosquitto.stop()
    inbox = Inbox()
    sub = MqttSubscriber(mosquitto.url, "patient", inbox, reconnect_min_s=0.1, reconnect_max_s=0.4)
    stop = asyncio.Event()
    task = asyncio.create_task(sub.run(stop))
    await asyncio.sleep(1.0)  # several refused attempts
    assert not sub.connected and not task.done()
    mosquitto.start()
    await wait_for(lambda: sub.connected, what="connected once the broker is up")
    stop.set()
    await asyncio.wait_for(task, 10)
