"""The embedded, in-process MQTT broker (amqtt 0.12) of the no-configuration default (`outpost run`, demo).

Devices, `mosquitto_pub` and Outpost's own ingest subscriber connect to it over TCP on
`IngestSettings.mqtt_listen` (default 127.0.0.1:1883), exactly as they would to Mosquitto in production;
with a certificate and key (`tls=`, OUTPOST_MQTT_TLS_CERT/KEY) over TLS only, through amqtt's own listener
options (`ssl`, `certfile`, `keyfile`: amqtt 0.12's `ListenerConfig`; TLS 1.2 or newer, Python's default).

Who may connect, as whom, and what each may do: ingest.broker_access (admission: service accounts with
this process's random password, devices with their registry secret, anonymous clients only in open mode
on loopback; client ids bound to who opened their session) and ingest.broker_acl (the topic rules). Both
are applied by `_AccessBroker`, which authenticates a CONNECT before amqtt touches any session (amqtt
0.12 deletes a clean-session client's old session, overwrites a persistent one's credentials and takes
over a connected one before it asks its auth plugins), and which checks every PUBLISH and SUBSCRIBE
synchronously (no plugin round trip on the hot path). A device disabled, deleted or given new
credentials is disconnected by `EmbeddedBroker.revoke_changed` (called after the directory reloads, and
every second) and refused when it reconnects.

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
import contextlib
import logging
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote

from amqtt.adapters import ReaderAdapter, StreamWriterAdapter, WriterAdapter
from amqtt.broker import Broker, Server
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, BrokerError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.publish import PublishPacket
from amqtt.mqtt.pubrel import PubrelPacket
from amqtt.session import IncomingApplicationMessage, Session
from amqtt.utils import gen_client_id

from ingest.broker_access import SERVICE_USER, BrokerAccess
from ingest.broker_acl import may_publish, may_subscribe

log = logging.getLogger(__name__)

_DEFAULT_SESSION_EXPIRY_S = 7 * 86400
_ROUTED_CACHE_TOPICS = 100_000  # bound on has_subscribers' per-topic cache
# What a reconnecting client's CONNECT renews in the session the broker kept for it (as amqtt 0.12 does).
_RENEWED_ON_CONNECT = (
    "will_flag",
    "will_message",
    "will_topic",
    "will_qos",
    "keep_alive",
    "username",
    "password",
)
_REVOKE_SWEEP_S = 1.0  # how often sessions are checked against the directory (periodic reloads)


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


class _AccessBroker(Broker):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt's broker, with Outpost's admission and ACL (ingest.broker_access, ingest.broker_acl)."""

    def __init__(self, config: dict[str, Any], access: BrokerAccess) -> None:
        super().__init__(config, loop=asyncio.get_running_loop())
        self.access = access

    async def _initialize_client_session(
        self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        """amqtt 0.12's own, with admission first: a refused client never touches a session."""
        handler, session = await BrokerProtocolHandler.init_from_connect(reader, writer, self.plugins_manager)
        client_id = session.client_id or ""
        principal = await self.access.admit(
            client_id,
            session.username,
            session.password,
            remote_address,
            held=bool(client_id) and client_id in self._sessions,
        )
        if principal is None:
            with contextlib.suppress(Exception):  # the client may be gone already
                await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
                await writer.close()
            raise AMQTTError(f"MQTT client {client_id!r} from {remote_address} refused")
        if session.clean_session:
            if client_id:
                await self._delete_session(client_id)
            else:
                session.client_id = client_id = gen_client_id()
            session.parent = 0
        elif client_id in self._sessions:
            # The new connection brings its own will, keepalive and credentials.
            existing, _ = self._sessions[client_id]
            for name in (
                "will_flag",
                "will_message",
                "will_topic",
                "will_qos",
                "keep_alive",
                "username",
                "password",
            ):
                setattr(existing, name, getattr(session, name))
            session = existing
            session.parent = 1
        else:
            session.parent = 0
        self.access.bind(client_id, principal)
        delay_s = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay_s, int):
            session.keep_alive += delay_s
        return handler, session

    async def _authenticate(self, session: Session, _: Any) -> bool:
        # Admitted in _initialize_client_session (a refused client never gets this far).
        return self.access.principal(session.client_id) is not None

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        principal = self.access.principal(session.client_id)
        if principal is None:
            return False
        if action == Action.PUBLISH:
            return may_publish(principal, topic, self.access.has_credentials)
        if action == Action.SUBSCRIBE:
            return may_subscribe(principal, topic)
        return True  # RECEIVE: the subscription was checked

    def revoke_changed(self) -> int:
        """Disconnect the devices the directory no longer admits as they were; returns how many."""
        sessions = self._sessions
        self.access.forget([c for c in self.access.client_ids() if c not in sessions])
        kicked = 0
        for client_id in self.access.revoked(list(sessions)):
            session, handler = sessions[client_id]
            writer = handler.writer if session.transitions.is_connected() else None
            if isinstance(writer, StreamWriterAdapter):
                writer._writer.transport.abort()  # not close(): a device that stops reading would stay
                kicked += 1
                log.info(
                    "MQTT client %s disconnected: its device was disabled, deleted or re-keyed", client_id
                )
        return kicked


class _IngestingBroker(_AccessBroker):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt's broker serving every connection with an `_IngestingHandler`."""

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
        access: BrokerAccess | None = None,
        session_expiry_s: int | None = _DEFAULT_SESSION_EXPIRY_S,
        max_connections: int = 0,
        ingest: InboundSink | None = None,
        tls: tuple[str, str] | None = None,
    ) -> None:
        """`access`: who is let in (default: services only, until a directory is attached).
        `session_expiry_s`: how long a disconnected persistent session (and its queue) is kept.
        `ingest`: takes PUBLISHes on its topics in process and acknowledges them (see the module docstring);
        None: amqtt's own flow for every topic (PUBACK on receipt).
        `tls`: (certificate file, key file), PEM, checked beforehand (ingest.tls.server_context): MQTT over
        TLS only; None: plain MQTT."""
        self.host, self._requested_port = split_listen(listen)
        self.access = access or BrokerAccess()
        self._ingest = ingest
        self._session_expiry_s = session_expiry_s
        self._max_connections = max_connections
        self._tls = tls
        self._broker: _AccessBroker | None = None
        self._sweeping: asyncio.Task[None] | None = None
        self.port = self._requested_port

    @property
    def url(self) -> str:
        """An mqtt:// (with TLS, mqtts://) URL clients on this machine can use (the actual port, also when 0
        was asked for)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"{'mqtts' if self._tls else 'mqtt'}://{host}:{self.port}"

    @property
    def service_url(self) -> str:
        """`url` with the service account's credentials: for Outpost's own clients in this process only."""
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{SERVICE_USER}:{quote(self.access.service_password, safe='')}@{rest}"

    def revoke_changed(self) -> int:
        """Disconnect at once every device the directory no longer admits as it was (disabled, deleted,
        new credentials); they are refused when they reconnect. Returns how many were disconnected."""
        return self._broker.revoke_changed() if self._broker is not None else 0

    def _config(self) -> dict[str, Any]:
        bind = (
            f"[{self.host}]:{self._requested_port}"
            if ":" in self.host
            else f"{self.host}:{self._requested_port}"
        )
        listener: dict[str, Any] = {"type": "tcp", "bind": bind, "max_connections": self._max_connections}
        if self._tls is not None:
            listener.update(ssl=True, certfile=self._tls[0], keyfile=self._tls[1])
        return {
            "listeners": {"default": listener},
            "session_expiry_interval": self._session_expiry_s,
            # No plugins: amqtt's default packet/event loggers and $SYS publisher cost per message, and
            # admission and the ACL are _AccessBroker's own.
            "plugins": {},
        }

    async def start(self) -> None:
        """Listen and serve; raises OSError with a hint when the address is taken."""
        amqtt_log = logging.getLogger("amqtt")
        if amqtt_log.level == logging.NOTSET:
            # amqtt logs every connection at INFO; a fleet of devices would flood the terminal.
            amqtt_log.setLevel(logging.WARNING)
        if self._ingest is not None:
            self._broker = _IngestingBroker(self._config(), self.access, self._ingest)
        else:
            self._broker = _AccessBroker(self._config(), self.access)
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
        self._sweeping = asyncio.create_task(self._sweep())
        log.info(
            "embedded MQTT broker listening on %s:%s%s", self.host, self.port, " (TLS)" if self._tls else ""
        )

    async def _sweep(self) -> None:
        """Revocations the directory's periodic reloads bring (the API's changes call revoke_changed)."""
        while True:
            await asyncio.sleep(_REVOKE_SWEEP_S)
            try:
                self.revoke_changed()
            except Exception:  # a bug must not end the sweeps: revoked devices would stay connected
                log.exception("revoking MQTT sessions failed")

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._sweeping is not None:
            self._sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeping
            self._sweeping = None
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
