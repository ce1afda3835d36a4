"""Device replies to offers and alarms: not fixes. They skip decoding, validation and storage and go
straight to dispatch's handler (the `OnDeviceMessage` port), from MQTT topics or from HTTP."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from ingest import metrics
from ingest.ports import DeviceOutcome, OnDeviceMessage, Registry
from schemas.topics import DEVICE_MESSAGE_KINDS, device_message_of

log = logging.getLogger(__name__)


class DeviceMessages:
    """Hands replies and alarms of registered, enabled devices to dispatch, when one is attached."""

    def __init__(self, registry: Registry, handler: OnDeviceMessage | None) -> None:
        self._registry = registry
        self._handler = handler

    @property
    def attached(self) -> bool:
        """Whether replies and alarms reach a dispatcher (the `ingest` role has none attached)."""
        return self._handler is not None

    def from_mqtt(self, topic: str, payload: bytes) -> None:
        """A message on a device topic that is not a fix: forwarded if it is a reply or an alarm of a known,
        enabled device; dropped (no answer over MQTT) otherwise."""
        parsed = device_message_of(topic)
        if parsed is None or self._handler is None:
            return
        device_id, kind = parsed
        device = self._registry.get(device_id)
        if device is None or not device.enabled:
            # Only a registered, enabled device may answer offers or raise an alarm (a P1 incident).
            log.warning(
                "device message from an unknown or disabled device ignored",
                extra={"device_id": device_id, "kind": kind},
            )
            return
        try:
            self.forward(device_id, kind, payload)
        except Exception:
            log.exception("device message handler failed", extra={"device_id": device_id, "kind": kind})

    def forward(self, device_id: str, kind: str, payload: bytes) -> Awaitable[DeviceOutcome] | None:
        """Hand a device's reply or alarm (`kind` in DEVICE_MESSAGE_KINDS) to dispatch, as MQTT does; the
        running task of its outcome, when the handler gives one. Raises what the handler raises."""
        if kind not in DEVICE_MESSAGE_KINDS:
            raise ValueError(f"device message kind {kind!r}: not one of {DEVICE_MESSAGE_KINDS}")
        if self._handler is None:
            return None
        metrics.DEVICE_MESSAGES.labels(kind).inc()
        return self._handler(device_id, kind, payload)
