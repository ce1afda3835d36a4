"""The device-side Publisher against a real Mosquitto: QoS 1 delivery, flush, reconnect, URL forms."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import paho.mqtt.client as paho
import pytest

from ingest.mqtt.client import parse_mqtt_url
from ingest.mqtt.publisher import Publisher
from tests.ingest.mqtt_collect import collect
from tests.support.services import Mosquitto


def test_parse_mqtt_url_forms() -> None:
    plain = parse_mqtt_url("mqtt://broker.example:1884")
    assert (plain.host, plain.port, plain.tls, plain.username) == ("broker.example", 1884, False, None)
    secure = parse_mqtt_url("mqtts://dev%40a:p%3Ass@h")
    assert (secure.port, secure.tls, secure.username, secure.password) == (8883, True, "dev@a", "p:ss")
    assert parse_mqtt_url("mqtt://h").port == 1883
    with pytest.raises(ValueError, match="scheme"):
        parse_mqtt_url("http://h:1883")


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_qos1_messages_all_reach_a_subscriber(mosquitto: Mosquitto, protocol: str) -> None:
    n = 3000
    async with collect(mosquitto.port, "outpost/v1/devices/+/fix") as got:
        async with Publisher(mosquitto.url, "pub-test", protocol=protocol) as pub:  # type: ignore[arg-type]
            for i in range(n):
                pub.publish(f"outpost/v1/devices/d{i % 7}/fix", str(i).encode(), qos=1)
            await pub.flush(timeout_s=30)
            assert (pub.sent, pub.acked, pub.pending) == (n, n, 0)
        await got.wait_for(n)
    assert sorted(int(p) for _, p in got.messages) == list(range(n))


async def test_window_holds_messages_back_and_still_delivers_all(mosquitto: Mosquitto) -> None:
    async with collect(mosquitto.port, "w/#") as got:
        async with Publisher(mosquitto.url, "pub-window", max_inflight=5) as pub:
            for i in range(500):
                pub.publish("w/x", str(i).encode())
            await pub.flush(timeout_s=30)
            assert pub.acked == 500
        await got.wait_for(500)
    # One publisher, one topic: MQTT keeps the order.
    assert [int(p) for _, p in got.messages] == list(range(500))


async def test_qos1_published_while_broker_is_down_are_delivered_after_restart(mosquitto: Mosquitto) -> None:
    async with Publisher(mosquitto.url, "pub-restart") as pub:
        mosquitto.stop()
        for _ in range(200):
            if not pub.is_connected:
                break
            await asyncio.sleep(0.05)
        for i in range(100):
            pub.publish("r/x", str(i).encode())
        assert pub.pending == 100
        mosquitto.start()
        await pub.flush(timeout_s=30)
        assert pub.acked == 100


async def test_wait_pending_below_applies_backpressure(mosquitto: Mosquitto) -> None:
    async with Publisher(mosquitto.url, "pub-bp") as pub:
        for i in range(2000):
            pub.publish("b/x", b"x")
            if i % 100 == 0:
                await pub.wait_pending_below(500)
                assert pub.pending < 500
        await pub.flush(timeout_s=30)


async def test_connect_to_nothing_raises(unused_tcp_port: int) -> None:
    with pytest.raises(OSError):
        await Publisher(f"mqtt://127.0.0.1:{unused_tcp_port}", "nobody").connect(timeout_s=2)


async def test_a_slow_connect_does_not_hold_the_event_loop(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dispatch API shares the publisher's loop: a broker slow to answer the TCP connect (DNS, an
    unreachable host: up to paho's 5 s connect timeout) must not stall it."""
    original = paho.Client._create_socket
    started, release = threading.Event(), threading.Event()

    def slow_connect(client: paho.Client) -> Any:  # fault injection: the connect hangs until released
        started.set()
        release.wait(10)
        return original(client)

    monkeypatch.setattr(paho.Client, "_create_socket", slow_connect)
    pub = Publisher(mosquitto.url, "pub-slow")
    connecting = asyncio.create_task(pub.connect())
    ticks = 0
    while not started.is_set() or ticks < 5:  # the loop keeps turning while the connect hangs
        await asyncio.sleep(0.01)
        ticks += 1
    assert not connecting.done()
    release.set()
    await connecting
    pub.publish("slow/t", b"x", qos=1)
    await pub.flush(timeout_s=10)
    await pub.close()
