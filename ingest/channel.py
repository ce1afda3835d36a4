"""The channel back to the devices: offers, commands and outcomes published to their MQTT topics.

The dispatcher's side reaches devices through a port it owns (a callable taking (topic, payload) pairs); the
composition root fills it with `DeviceChannel.send`. The channel connects in the background, retrying, so a
broker that is down when Outpost starts delays the messages instead of silencing them for good; once
connected, the publisher reconnects by itself. Offers also reach consoles on the live stream and time out as
usual, so a message not sent is never the only copy of a decision.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ingest.mqtt.publisher import Publisher
from schemas.backoff import Backoff

log = logging.getLogger(__name__)

# How long one connection attempt may take, and the retry delays after a failed one (s).
_CONNECT_TIMEOUT_S = 5.0
_RETRY_MIN_S, _RETRY_MAX_S = 1.0, 30.0


class DeviceChannel:
    """Publishes messages to devices over MQTT, QoS 1."""

    def __init__(self, url: str, client_id: str, *, ca_file: str = "") -> None:
        """`ca_file`: the certificates an mqtts:// `url` trusts (empty: the system's trust store)."""
        self._url, self._client_id, self._ca_file = url, client_id, ca_file
        self._publisher: Publisher | None = None

    async def connect(self) -> None:
        """Connect, retrying with backoff until the broker answers."""
        backoff = Backoff(_RETRY_MIN_S, _RETRY_MAX_S)
        while self._publisher is None:
            publisher = Publisher(self._url, client_id=self._client_id, ca_file=self._ca_file)
            try:
                await publisher.connect(timeout_s=_CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                delay_s = backoff.failed()
                log.warning("device notifications wait for the broker (%s); retrying in %.0f s", exc, delay_s)
                await asyncio.sleep(delay_s)
                continue
            self._publisher = publisher

    def send(self, messages: Sequence[tuple[str, bytes]], what: str) -> None:
        """Publish `messages` (topic, payload); `what` names them in the log when the broker is away."""
        if not messages:
            return
        if self._publisher is None:
            log.warning("broker unreachable: %s not sent to the devices", what)
            return
        for topic, payload in messages:
            try:
                self._publisher.publish(topic, payload, qos=1)
            except ValueError as exc:  # a topic MQTT cannot carry: this message is lost, not the others
                log.error("%s not sent to %r: %s", what, topic, exc)

    async def close(self) -> None:
        """Disconnect cleanly."""
        if self._publisher is not None:
            await self._publisher.close()
