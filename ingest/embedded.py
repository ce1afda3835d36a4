"""In-process ingest at the embedded broker: a device's PUBLISH goes straight to the pipeline, and the device
gets its PUBACK only once the fix is durable (committed, or fsynced to the spool).

This is the guarantee of the Mosquitto path moved one hop earlier. There, Mosquitto acknowledges the device
and keeps the message until ingest, its QoS 1 subscriber, acknowledges it once durable. The embedded amqtt
broker keeps messages in memory only and would acknowledge devices on receipt, so a kill -9 between its
PUBACK and ingest's commit lost what devices believed delivered. Here nothing stands between the device and
durability: a message not yet durable when the process dies is still unacknowledged on the device, which
resends it when it reconnects (MQTT 3.1.1 resends unacknowledged QoS 1/2 PUBLISHes on reconnect; paho
does so whatever its clean-session flag), and the idempotent store makes the resend harmless.

`EmbeddedSource` plugs into `Pipeline` as `MqttSubscriber` does (`on_messages`, and `ack` / `pause` /
`resume` through `pipeline.attach`), and into `EmbeddedBroker(ingest=...)` as its `InboundSink`.

Ack tokens: `connection id << 17 | QoS 2 bit << 16 | packet id`. Connection ids are never reused, so an ack
for a connection that has gone is dropped: the device resends that message on its next connection (stored
twice, idempotently), and a packet id is never acknowledged on a connection where it may mean another
message. Acknowledgements of one batch are written per connection as one buffer of PUBACKs (PUBREC for
QoS 2; the PUBCOMP follows the device's PUBREL), in receive order, as MQTT requires. A retransmission on
the same connection of a packet id still held is dropped: the first copy's PUBACK answers both.

Backpressure: `pause` stops reading the sockets of the connections that publish to ingest (TCP then holds
the rest, and a device also stops at its own in-flight window, since nothing is acknowledged); `resume`
reads again. Until `serve` runs (the broker starts before the pipeline), messages are held the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence

from ingest import metrics
from ingest.broker_inbound import Connection
from ingest.ports import NO_ACK, Message, OnMessages
from schemas.topics import DEVICE_MESSAGE_FILTERS, FIX_FILTERS, matches

INGEST_TOPICS = FIX_FILTERS + DEVICE_MESSAGE_FILTERS

_QOS2 = 1 << 16
_CONNECTION_SHIFT = 17
_PUBACK = b"\x40\x02"
_PUBREC = b"\x50\x02"
_TOPIC_CACHE = 100_000  # bound on the per-topic `consumes` cache (one entry per device and topic kind)


class EmbeddedSource:
    """Device PUBLISHes on ingest topics, in process; acknowledged once durable (see the module docstring)."""

    def __init__(
        self, topics: Iterable[str] = INGEST_TOPICS, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._filters = [f.split("/") for f in topics]
        self._clock = clock
        self._consumed: dict[str, bool] = {}
        self._connections: dict[int, Connection] = {}
        self._publishers: set[Connection] = set()  # connections that sent ingest messages: what pause stops
        self._chunk: list[Message] = []
        self._delivery: asyncio.Handle | None = None
        self._on_messages: OnMessages | None = None
        self._paused = False

    # ------------------------------------------------------------------------------------ pipeline side
    async def serve(self, on_messages: OnMessages, stop: asyncio.Event) -> None:
        """Hand messages to `on_messages` (the pipeline) until `stop`; later ones are held, never acked."""
        self._on_messages = on_messages
        metrics.MQTT_CONNECTED.set(1)
        self._resume_reading()
        self._schedule_delivery()
        try:
            await stop.wait()
        finally:
            self._on_messages = None
            metrics.MQTT_CONNECTED.set(0)

    def ack(self, tokens: Sequence[int]) -> int:
        """Acknowledge the messages of `tokens` whose connection is still open; returns how many."""
        buffers: dict[Connection, bytearray] = {}
        connections = self._connections
        for token in tokens:
            connection = connections.get(token >> _CONNECTION_SHIFT)
            if connection is None:
                continue  # gone: the device resends the message on its next connection
            packet_id = token & 0xFFFF
            connection.unacked.discard(packet_id)
            buffer = buffers.get(connection)
            if buffer is None:
                buffer = buffers[connection] = bytearray()
            if token & _QOS2:
                buffer += _PUBREC
                connection.awaiting_pubrel.add(packet_id)
            else:
                buffer += _PUBACK
            buffer += packet_id.to_bytes(2, "big")
        sent = 0
        for connection, buffer in buffers.items():
            if connection.acknowledge(bytes(buffer)):
                sent += len(buffer) // 4
        return sent

    @property
    def paused(self) -> bool:
        """Whether reading is paused (backpressure from the pipeline)."""
        return self._paused

    def pause(self) -> None:
        """Stop reading from the publishing connections (the pipeline holds enough unacknowledged)."""
        if not self._paused:
            self._paused = True
            for connection in self._publishers:
                connection.pause_reading()

    def resume(self) -> None:
        """Read again after `pause`."""
        if self._paused:
            self._paused = False
            self._resume_reading()

    def _resume_reading(self) -> None:
        if not self._paused and self._on_messages is not None:
            for connection in self._publishers:
                connection.resume_reading()

    # -------------------------------------------------------------------------------------- broker side
    def consumes(self, topic: str) -> bool:
        """Whether `topic` is one ingest reads (fixes, OwnTracks, device replies and alarms)."""
        consumed = self._consumed.get(topic)
        if consumed is None:
            if len(self._consumed) >= _TOPIC_CACHE:
                self._consumed.clear()
            levels = topic.split("/")
            consumed = any(matches(levels, f) for f in self._filters)
            self._consumed[topic] = consumed
        return consumed

    def opened(self, connection: Connection) -> None:
        """A client connection is being served."""
        self._connections[connection.id] = connection

    def received(self, connection: Connection, topic: str, payload: bytes, packet_id: int, qos: int) -> None:
        """One PUBLISH on an ingest topic: queued for the pipeline, delivered in chunks on the loop."""
        if qos == 0:
            token = NO_ACK
        elif packet_id in connection.unacked:
            # A retransmission (DUP) on the same connection of a message still held: its one PUBACK
            # follows the first copy's durability. Acking both could acknowledge a later message that
            # reuses the packet id before that one is durable.
            return
        else:
            connection.unacked.add(packet_id)
            token = connection.id << _CONNECTION_SHIFT | (_QOS2 if qos == 2 else 0) | packet_id
        self._chunk.append((topic, payload, token))
        self._publishers.add(connection)
        if self._paused or self._on_messages is None:
            connection.pause_reading()  # again each time: asyncio's StreamReader may have resumed it
        self._schedule_delivery()

    def closed(self, connection: Connection) -> None:
        """The connection is gone: its acknowledgements are void from now on."""
        self._connections.pop(connection.id, None)
        self._publishers.discard(connection)

    def _schedule_delivery(self) -> None:
        # One chunk per loop iteration: every PUBLISH amqtt's readers parsed meanwhile goes in one call.
        if self._delivery is None and self._chunk and self._on_messages is not None:
            self._delivery = asyncio.get_running_loop().call_soon(self._deliver)

    def _deliver(self) -> None:
        self._delivery = None
        if self._on_messages is None or not self._chunk:
            return
        chunk, self._chunk = self._chunk, []
        self._on_messages(chunk, self._clock())
