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
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from amqtt.broker import Broker
from amqtt.errors import BrokerError
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

log = logging.getLogger(__name__)

# (username, password) -> allowed? Called for clients that are not on the loopback interface.
CredentialCheck = Callable[[str | None, str | None], Awaitable[bool]]

_DEFAULT_SESSION_EXPIRY_S = 7 * 86400


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


class EmbeddedBroker:
    """An amqtt broker in this process's event loop: `async with EmbeddedBroker("127.0.0.1:0") as b: ...`."""

    def __init__(
        self,
        listen: str = "127.0.0.1:1883",
        *,
        check_credentials: CredentialCheck | None = None,
        session_expiry_s: int | None = _DEFAULT_SESSION_EXPIRY_S,
        max_connections: int = 0,
    ) -> None:
        """`session_expiry_s`: how long a disconnected persistent session (and its queue) is kept."""
        self.host, self._requested_port = split_listen(listen)
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
        self._broker = Broker(self._config(), loop=asyncio.get_running_loop())
        try:
            await self._broker.start()
        except BrokerError as exc:
            self._broker = None
            raise OSError(
                f"the embedded MQTT broker cannot listen on {self.host}:{self._requested_port}"
                f" ({exc.__cause__ or exc});"
                " set OUTPOST_MQTT_LISTEN to a free host:port, or OUTPOST_MQTT_URL to use an external broker"
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
