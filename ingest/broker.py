"""The embedded, in-process MQTT broker (amqtt 0.12) of the no-configuration default (`outpost run`, demo).

Devices, `mosquitto_pub` and Outpost's own ingest subscriber connect to it over TCP on
`IngestSettings.mqtt_listen` (default 127.0.0.1:1883), exactly as they would to Mosquitto in production;
with a certificate and key (`tls=`, OUTPOST_MQTT_TLS_CERT/KEY) over TLS only, through amqtt's own listener
options (`ssl`, `certfile`, `keyfile`: amqtt 0.12's `ListenerConfig`; TLS 1.2 or newer, Python's default).

Who may connect, as whom, and what each may do: ingest.broker_access (admission: service accounts with
this process's random password, devices with their registry secret, anonymous clients only in open mode
on loopback; client ids bound to who opened their session) and ingest.broker_acl (the topic rules). Both
are applied by ingest.broker_admission's `AccessBroker`, before amqtt touches any session, and
synchronously on every PUBLISH and SUBSCRIBE. A device disabled, deleted or given new
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
topic the sink consumes goes to the sink, which acknowledges it once the fix is durable
(ingest.broker_inbound, which also says which amqtt internals this relies on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Any
from urllib.parse import quote

from amqtt.errors import BrokerError

from ingest.broker_access import SERVICE_USER, BrokerAccess
from ingest.broker_admission import AccessBroker
from ingest.broker_inbound import InboundSink, IngestingBroker

log = logging.getLogger(__name__)

_DEFAULT_SESSION_EXPIRY_S = 7 * 86400
_REVOKE_SWEEP_S = 1.0  # how often sessions are checked against the directory (periodic reloads)


def split_listen(listen: str) -> tuple[str, int]:
    """'host:port' (or '[v6]:port') -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"MQTT listen address {listen!r} is not host:port (e.g. 127.0.0.1:1883)")
    return host.strip("[]") or "0.0.0.0", int(port)


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
        self._broker: AccessBroker | None = None
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
            # admission and the ACL are AccessBroker's own.
            "plugins": {},
        }

    async def start(self) -> None:
        """Listen and serve; raises OSError with a hint when the address is taken."""
        amqtt_log = logging.getLogger("amqtt")
        if amqtt_log.level == logging.NOTSET:
            # amqtt logs every connection at INFO; a fleet of devices would flood the terminal.
            amqtt_log.setLevel(logging.WARNING)
        if self._ingest is not None:
            self._broker = IngestingBroker(self._config(), self.access, self._ingest)
        else:
            self._broker = AccessBroker(self._config(), self.access)
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
