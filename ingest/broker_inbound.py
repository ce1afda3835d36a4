"""The embedded broker's in-process ingest: consumed PUBLISHes go to a sink, which acknowledges them.

In-process ingest (`ingest=`, an `InboundSink`, normally `ingest.embedded.EmbeddedSource`): a PUBLISH on a
topic the sink consumes is handed to it by the connection's protocol handler instead of being queued for
amqtt's router, and the device gets no PUBACK from amqtt: the sink acknowledges it (PUBACK, or PUBREC for
QoS 2) once the fix is durable, through `Connection.acknowledge`. Every other topic keeps amqtt's flow
(PUBACK on receipt, routed to subscribers), and a consumed message is also routed to any subscriber of
its topic (without its PUBACK). This relies on amqtt 0.12 internals, pinned in pyproject.toml and checked
by tests/ingest/test_embedded.py: `Broker._handle_client_session` receives the connection's unattached
handler, `BrokerProtocolHandler.handle_publish` / `handle_pubrel` handle inbound PUBLISH / PUBREL, and
`StreamWriterAdapter._writer` is the asyncio StreamWriter (for pausing reads).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from amqtt.adapters import ReaderAdapter, StreamWriterAdapter, WriterAdapter
from amqtt.broker import Server
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.publish import PublishPacket
from amqtt.mqtt.pubrel import PubrelPacket
from amqtt.session import IncomingApplicationMessage, Session

from ingest.broker_access import BrokerAccess
from ingest.broker_acl import may_publish
from ingest.broker_admission import AccessBroker

_ROUTED_CACHE_TOPICS = 100_000  # bound on has_subscribers' per-topic cache


class Connection:
    """One client connection as the in-process ingest sees it: acknowledge, and pause or resume reading."""

    __slots__ = ("_transport", "_writer", "awaiting_pubrel", "client_id", "closed", "id", "unacked")

    def __init__(self, connection_id: int, client_id: str, writer: WriterAdapter) -> None:
        self.id = connection_id  # unique for the broker's lifetime: acks of a closed connection are void
        self.client_id = client_id
        self.closed = False
        self.unacked: set[int] = set()  # packet ids the sink holds and has not acknowledged yet
        self.awaiting_pubrel: set[int] = set()  # QoS 2 packet ids PUBRECed by the sink
        self._writer = writer
        # Only TCP listeners are configured; their adapter wraps an asyncio StreamWriter.
        self._transport: asyncio.Transport | None = (
            writer._writer.transport if isinstance(writer, StreamWriterAdapter) else None
        )

    def acknowledge(self, data: bytes) -> bool:
        """Write ready-made PUBACK/PUBREC packets (synchronously: never interleaves with amqtt's writes,
        which write each packet whole); False when the connection is gone."""
        if self.closed or (self._transport is not None and self._transport.is_closing()):
            return False
        self._writer.write(data)
        return True

    def pause_reading(self) -> None:
        """Stop reading this socket (backpressure: TCP holds the rest, the device stops sending)."""
        if self._transport is not None and not self.closed:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again after `pause_reading`."""
        if self._transport is not None and not self.closed and not self._transport.is_closing():
            self._transport.resume_reading()

    def is_reading(self) -> bool:
        """Whether the socket is being read (False while paused, or once closed)."""
        return self._transport is not None and not self.closed and self._transport.is_reading()


class InboundSink(Protocol):
    """Takes PUBLISHes on the topics it consumes, and acknowledges them itself (ingest.embedded)."""

    def consumes(self, topic: str) -> bool:
        """Whether PUBLISHes on `topic` go to the sink (called once per message: keep it cheap)."""

    def opened(self, connection: Connection) -> None:
        """A client connection is about to be served."""

    def received(self, connection: Connection, topic: str, payload: bytes, packet_id: int, qos: int) -> None:
        """One PUBLISH on a consumed topic, in the order the connection sent them; must not block."""

    def closed(self, connection: Connection) -> None:
        """The connection is gone: its unacknowledged messages will be resent by the client."""


class IngestingHandler(BrokerProtocolHandler):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt's protocol handler, but PUBLISHes on the sink's topics go to the sink, unacknowledged."""

    def __init__(self, broker: IngestingBroker, sink: InboundSink, connection_id: int) -> None:
        super().__init__(broker.plugins_manager, loop=asyncio.get_running_loop())
        self._broker = broker
        self._sink = sink
        self._connection_id = connection_id
        self._connection: Connection | None = None

    async def start(self) -> None:
        # Before amqtt's start: that starts the reader, and PUBLISHes may follow at once.
        if self._connection is None and self.session is not None and self.writer is not None:
            self._connection = Connection(self._connection_id, str(self.session.client_id), self.writer)
            self._sink.opened(self._connection)
        await super().start()

    async def stop(self) -> None:
        self._close_connection()
        await super().stop()

    async def handle_connection_closed(self) -> None:
        self._close_connection()
        await super().handle_connection_closed()

    def _close_connection(self) -> None:
        connection = self._connection
        if connection is not None and not connection.closed:
            connection.closed = True
            self._sink.closed(connection)

    async def handle_publish(self, publish_packet: PublishPacket) -> None:
        topic, qos, connection = publish_packet.topic_name, publish_packet.qos, self._connection
        if (
            connection is None
            or connection.closed
            or not topic
            or "+" in topic  # an invalid topic name: amqtt's flow closes the connection
            or "#" in topic
            or not self._sink.consumes(topic)
            or publish_packet.data is None
        ):
            await super().handle_publish(publish_packet)
            return
        packet_id = publish_packet.variable_header.packet_id if qos else 0
        principal = self._broker.access.principal(self.session.client_id if self.session else None)
        if principal is None or not may_publish(principal, topic, self._broker.access.has_credentials):
            await super().handle_publish(publish_packet)  # amqtt acks and drops it, as for any refused topic
            return
        data = bytes(publish_packet.data)
        self._sink.received(connection, topic, data, packet_id, qos)
        if publish_packet.retain_flag or self._broker.has_subscribers(topic):
            self._route(publish_packet, data, packet_id)

    def _route(self, publish_packet: PublishPacket, data: bytes, packet_id: int) -> None:
        """Hand a copy to amqtt's router (other subscribers, retained messages); the sink owns the PUBACK."""
        message = IncomingApplicationMessage(
            packet_id or None, publish_packet.topic_name, publish_packet.qos, data, publish_packet.retain_flag
        )
        message.publish_packet = publish_packet
        if self.session is not None:
            self.session.delivered_message_queue.put_nowait(message)

    async def handle_pubrel(self, pubrel: PubrelPacket) -> None:
        connection, packet_id = self._connection, pubrel.packet_id
        if connection is not None and packet_id in connection.awaiting_pubrel:
            # The end of a QoS 2 exchange whose PUBREC the sink sent once the message was durable.
            connection.awaiting_pubrel.discard(packet_id)
            await self._send_packet(PubcompPacket.build(packet_id))
            return
        await super().handle_pubrel(pubrel)


class IngestingBroker(AccessBroker):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt's broker serving every connection with an `IngestingHandler`."""

    def __init__(self, config: dict[str, Any], access: BrokerAccess, sink: InboundSink) -> None:
        super().__init__(config, access)
        self._sink = sink
        self._connections = 0
        self._routed: dict[str, bool] = {}  # topic -> has subscribers; cleared when subscriptions change

    async def _handle_client_session(
        self,
        reader: ReaderAdapter,
        writer: WriterAdapter,
        client_session: Session,
        handler: BrokerProtocolHandler,
        server: Server,
        listener_name: str,
    ) -> None:
        # `handler` is amqtt's fresh, unattached one: ours takes its place before anything uses it.
        self._connections += 1
        ours = IngestingHandler(self, self._sink, self._connections)
        await super()._handle_client_session(reader, writer, client_session, ours, server, listener_name)

    def has_subscribers(self, topic: str) -> bool:
        """Whether any subscription matches `topic` (cached per topic)."""
        routed = self._routed.get(topic)
        if routed is None:
            if len(self._routed) > _ROUTED_CACHE_TOPICS:
                self._routed.clear()
            routed = any(subs and self._matches(topic, f) for f, subs in self._subscriptions.items())
            self._routed[topic] = routed
        return routed

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        self._routed.clear()
        try:
            return int(await super().add_subscription(subscription, session))
        finally:
            self._routed.clear()  # also after: a lookup may have run while amqtt awaited its ACL plugins

    def _del_subscription(self, a_filter: str, session: Session) -> int:
        self._routed.clear()
        return int(super()._del_subscription(a_filter, session))
