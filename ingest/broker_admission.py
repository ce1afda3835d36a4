"""amqtt's broker with Outpost's admission and ACL (ingest.broker_access, ingest.broker_acl) applied.

`AccessBroker` authenticates a CONNECT before amqtt touches any session (amqtt 0.12 deletes a clean-session
client's old session, overwrites a persistent one's credentials and takes over a connected one before it
asks its auth plugins), checks every PUBLISH and SUBSCRIBE synchronously (no plugin round trip on the hot
path), and disconnects the devices the directory no longer admits (`revoke_changed`). Its
`_initialize_client_session` mirrors amqtt 0.12's own, admission first; tests/ingest/test_embedded.py
checks that the mirrored source still matches the pinned amqtt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from amqtt.adapters import ReaderAdapter, StreamWriterAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session
from amqtt.utils import gen_client_id

from ingest.broker_access import BrokerAccess
from ingest.broker_acl import may_publish, may_subscribe

log = logging.getLogger(__name__)

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


class AccessBroker(Broker):  # type: ignore[misc]  # amqtt ships no type hints
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
            for name in _RENEWED_ON_CONNECT:
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
