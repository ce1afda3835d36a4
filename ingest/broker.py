"""The embedded, in-process MQTT broker (amqtt 0.12) of the no-configuration default (`outpost run`, demo).

Devices, `mosquitto_pub` and Outpost's own ingest subscriber connect to it over TCP on
`IngestSettings.mqtt_listen` (default 127.0.0.1:1883), exactly as they would to Mosquitto in production.

Who may connect: clients on the loopback interface connect without credentials (the station's own machine:
the ingest worker, the simulator, `mosquitto_pub` for a try-out). Anyone else needs `check_credentials`
(wired by the composition root to the device registry); without it, non-loopback clients are refused, so
listening on 0.0.0.0 never opens an unauthenticated broker to the network by accident.

What amqtt 0.12 guarantees and what it does not (read from its source; see tests/ingest/test_broker.py):
- QoS 1 in both directions; a persistent session (clean session off) keeps its subscriptions while the
  client is away and queues QoS 1 messages for it, delivered on reconnect. amqtt's stock anonymous-auth plugin
  marks every session "anonymous" and then drops it on disconnect, which is why our own auth plugin is used.
- Sessions and queues live in memory only: a restart of the process loses what the broker held.
- A QoS 1 message sent to a subscriber that does not PUBACK within 5 s, or that is in flight when the
  subscriber disconnects, is dropped by amqtt rather than redelivered; and each subscriber can have at most
  65,535 messages in flight. The ingest subscriber acks within a batch age (200 ms) and a station's rate is
  far below these limits, but Mosquitto is the production broker for this reason (and for throughput).
- No MQTT 5 features (amqtt speaks 3.1.1): ingest must use protocol 3.1.1 against it.

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
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from amqtt.adapters import ReaderAdapter, StreamWriterAdapter, WriterAdapter
from amqtt.broker import Broker, Server
from amqtt.contexts import Action
from amqtt.errors import BrokerError
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.publish import PublishPacket
from amqtt.mqtt.pubrel import PubrelPacket
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import IncomingApplicationMessage, Session

log = logging.getLogger(__name__)

# (username, password) -> allowed? Called for clients that are not on the loopback interface.
CredentialCheck = Callable[[str | None, str | None], Awaitable[bool]]

_DEFAULT_SESSION_EXPIRY_S = 7 * 86400
_ROUTED_CACHE_TOPICS = 100_000  # bound on has_subscribers' per-topic cache


def _is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class LoopbackOrCredentialsAuth(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt auth plugin: loopback clients are trusted; others must pass the configured credential check.

    Unlike amqtt's AnonymousAuthPlugin it never marks a session anonymous, so persistent sessions keep
    their subscriptions and queued QoS 1 messages across reconnects.
    """

    @dataclass
    class Config:
        """`check`: a CredentialCheck, or None to refuse every non-loopback client."""

        check: Any = None

    async def authenticate(self, *, session: Session) -> bool:
        """Allow loopback clients; ask the credential check about everyone else."""
        if _is_loopback(session.remote_address):
            return True
        check: CredentialCheck | None = self.config.check
        if check is None:
            log.warning(
                "MQTT client %s from %s refused: no credential check configured for non-loopback clients",
                session.client_id,
                session.remote_address,
            )
            return False
        allowed = await check(session.username, session.password)
        if not allowed:
            log.info(
                "MQTT client %s from %s refused: bad credentials", session.client_id, session.remote_address
            )
        return allowed


def split_listen(listen: str) -> tuple[str, int]:
    """'host:port' (or '[v6]:port') -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"MQTT listen address {listen!r} is not host:port (e.g. 127.0.0.1:1883)")
    return host.strip("[]") or "0.0.0.0", int(port)


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


class _IngestingHandler(BrokerProtocolHandler):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt's protocol handler, but PUBLISHes on the sink's topics go to the sink, unacknowledged."""

    def __init__(self, broker: _IngestingBroker, sink: InboundSink, connection_id: int) -> None:
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
        if self._broker.topic_acl and not await self._may_publish(topic):
            await super().handle_publish(publish_packet)  # amqtt acks and drops it, as for any refused topic
            return
        data = bytes(publish_packet.data)
        self._sink.received(connection, topic, data, packet_id, qos)
        if publish_packet.retain_flag or self._broker.has_subscribers(topic):
            self._route(publish_packet, data, packet_id)

    async def _may_publish(self, topic: str) -> bool:
        results = await self.plugins_manager.map_plugin_topic(
            session=self.session, topic=topic, action=Action.PUBLISH
        )
        return all(result for result in results.values())

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


class _IngestingBroker(Broker):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt's broker serving every connection with an `_IngestingHandler`."""

    def __init__(self, config: dict[str, Any], sink: InboundSink) -> None:
        super().__init__(config, loop=asyncio.get_running_loop())
        self._sink = sink
        self._connections = 0
        self._routed: dict[str, bool] = {}  # topic -> has subscribers; cleared when subscriptions change
        # amqtt reports topic filtering "enabled" whenever plugins are configured, even with no topic plugin
        # loaded (ours is an auth plugin): ask the plugins only if there is one (then, as it awaits them,
        # the PUBACKs of one connection may leave out of order). If amqtt renames its list, always ask.
        manager = self.plugins_manager
        self.topic_acl = manager.is_topic_filtering_enabled() and bool(
            getattr(manager, "_topic_plugins", True)
        )

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
        ours = _IngestingHandler(self, self._sink, self._connections)
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


class EmbeddedBroker:
    """An amqtt broker in this process's event loop: `async with EmbeddedBroker("127.0.0.1:0") as b: ...`."""

    def __init__(
        self,
        listen: str = "127.0.0.1:1883",
        *,
        check_credentials: CredentialCheck | None = None,
        session_expiry_s: int | None = _DEFAULT_SESSION_EXPIRY_S,
        max_connections: int = 0,
        ingest: InboundSink | None = None,
    ) -> None:
        """`session_expiry_s`: how long a disconnected persistent session (and its queue) is kept.
        `ingest`: takes PUBLISHes on its topics in process and acknowledges them (see the module docstring);
        None: amqtt's own flow for every topic (PUBACK on receipt)."""
        self.host, self._requested_port = split_listen(listen)
        self._ingest = ingest
        self._check = check_credentials
        self._session_expiry_s = session_expiry_s
        self._max_connections = max_connections
        self._broker: Broker | None = None
        self.port = self._requested_port

    @property
    def url(self) -> str:
        """An mqtt:// URL clients on this machine can use (the actual port, also when 0 was asked for)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"mqtt://{host}:{self.port}"

    def _config(self) -> dict[str, Any]:
        bind = (
            f"[{self.host}]:{self._requested_port}"
            if ":" in self.host
            else f"{self.host}:{self._requested_port}"
        )
        return {
            "listeners": {"default": {"type": "tcp", "bind": bind, "max_connections": self._max_connections}},
            "session_expiry_interval": self._session_expiry_s,
            # Only our auth plugin: amqtt's default packet/event loggers and $SYS publisher cost per message.
            "plugins": {f"{__name__}.LoopbackOrCredentialsAuth": {"check": self._check}},
        }

    async def start(self) -> None:
        """Listen and serve; raises OSError with a hint when the address is taken."""
        amqtt_log = logging.getLogger("amqtt")
        if amqtt_log.level == logging.NOTSET:
            # amqtt logs every connection at INFO; a fleet of devices would flood the terminal.
            amqtt_log.setLevel(logging.WARNING)
        if self._ingest is not None:
            self._broker = _IngestingBroker(self._config(), self._ingest)
        else:
            self._broker = Broker(self._config(), loop=asyncio.get_running_loop())
        try:
            await self._broker.start()
        except BrokerError as exc:
            self._broker = None
            cause = exc.__cause__
            raise OSError(
                cause.errno if isinstance(cause, OSError) else None,  # EADDRINUSE, EACCES: the CLI says so
                f"the embedded MQTT broker cannot listen on {self.host}:{self._requested_port}"
                f" ({cause or exc});"
                " set OUTPOST_MQTT_LISTEN to a free host:port, or OUTPOST_MQTT_URL to use an external broker",
            ) from exc
        server = self._broker._servers["default"].instance  # the real port when 0 was requested
        self.port = int(server.sockets[0].getsockname()[1])
        log.info("embedded MQTT broker listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
