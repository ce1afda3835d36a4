"""Device messages that are not fixes (replies to offers, alarms, duty status, check-ins, roll-call
answers): they skip decoding, validation and storage and go straight to dispatch's handler (the
`OnDeviceMessage` port), from MQTT topics or from HTTP.

Only a registered, enabled device's message is handed on, and only once credentials are issued for it
(unless the station runs open, `register_unknown_devices`: an id alone then identifies a device); the kinds
that change state (status, check-in, answer) only in their shape (`schemas.device_messages`); anything
else is refused with a named reason, which the caller dead-letters and counts (an SOS of a device without
credentials too: it is what an impostor would send). An alarm is never refused for its body (an SOS button may
send anything): its position falls back to the unit's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import msgspec

from ingest import metrics
from ingest.decode.common import ElementError, check_device_id
from ingest.decode.reasons import INVALID_DEVICE_ID
from ingest.ports import DeviceOutcome, OnDeviceMessage, Registry
from ingest.rules import DISABLED_DEVICE, NO_CREDENTIALS, UNKNOWN_DEVICE
from schemas.device_messages import SHAPES
from schemas.topics import ALARM, DEVICE_MESSAGE_KINDS, REPLY, device_message_of

log = logging.getLogger(__name__)

MALFORMED_MESSAGE = "malformed_message"
DEVICE_MESSAGE_REASONS = (MALFORMED_MESSAGE,)  # beside unknown_device, disabled_device, no_credentials
# Over MQTT, replies and alarms were always judged by dispatch alone (an alarm is never refused for its body).
_CHECKED_OVER_MQTT = frozenset(DEVICE_MESSAGE_KINDS) - {REPLY, ALARM}


def refusal(
    registry: Registry,
    device_id: str,
    kind: str,
    payload: bytes,
    *,
    strict: bool,
    allow_unknown: bool = False,
) -> tuple[str, str] | None:
    """Why ingest refuses this device message, as (reason, detail); None: hand it on. `strict`: check the
    shape of every kind (HTTP); otherwise only of the kinds that change state. `allow_unknown`: an unknown
    device is judged by dispatch (HTTP with unknown devices registered on first contact)."""
    device = registry.get(device_id)
    if device is None and not allow_unknown:
        return UNKNOWN_DEVICE, f"device {device_id} is not registered"
    if device is None:  # registered on first contact (open mode): only an id a topic can carry
        try:
            check_device_id(device_id)
        except ElementError as bad:
            return INVALID_DEVICE_ID, bad.detail
    if device is not None and not device.enabled:
        return DISABLED_DEVICE, f"device {device_id} is disabled"
    if device is not None and not device.has_credentials and not registry.register_unknown:
        return NO_CREDENTIALS, no_credentials_detail(device_id)
    if strict or kind in _CHECKED_OVER_MQTT:
        try:
            msgspec.json.decode(payload.strip() or b"{}", type=SHAPES[kind])
        except msgspec.DecodeError as exc:  # ValidationError included
            return MALFORMED_MESSAGE, f"malformed {kind}: {exc}"
    return None


def no_credentials_detail(device_id: str) -> str:
    """What a device without credentials is told, naming the fix."""
    path = f"/v1/devices/{device_id}/credentials"
    return f"device {device_id} has no credentials: issue credentials with POST {path}"


class DeviceMessages:
    """Hands replies and alarms of registered, enabled devices to dispatch, when one is attached."""

    def __init__(self, registry: Registry, handler: OnDeviceMessage | None) -> None:
        self._registry = registry
        self._handler = handler

    @property
    def attached(self) -> bool:
        """Whether replies and alarms reach a dispatcher (the `ingest` role has none attached)."""
        return self._handler is not None

    def from_mqtt(self, topic: str, payload: bytes) -> tuple[str | None, str] | None:
        """A message on a device topic that is not a fix: forwarded when its device is known and enabled
        and it has its kind's shape; otherwise (device id, reason) for the caller to dead-letter. Messages
        on other topics, or with no dispatcher attached, are left alone (None)."""
        parsed = device_message_of(topic)
        if parsed is None or self._handler is None:
            return None
        device_id, kind = parsed
        refused = refusal(self._registry, device_id, kind, payload, strict=False)
        if refused is not None:
            extra = {"device_id": device_id, "kind": kind, "reason": refused[0]}
            log.warning("device message refused", extra=extra)
            return device_id, refused[0]
        try:
            self.forward(device_id, kind, payload)
        except Exception:
            log.exception("device message handler failed", extra={"device_id": device_id, "kind": kind})
        return None

    def forward(self, device_id: str, kind: str, payload: bytes) -> Awaitable[DeviceOutcome] | None:
        """Hand a device's message (`kind` in DEVICE_MESSAGE_KINDS) to dispatch, as MQTT does; the
        running task of its outcome, when the handler gives one. Raises what the handler raises."""
        if kind not in DEVICE_MESSAGE_KINDS:
            raise ValueError(f"device message kind {kind!r}: not one of {DEVICE_MESSAGE_KINDS}")
        if self._handler is None:
            return None
        metrics.DEVICE_MESSAGES.labels(kind).inc()
        return self._handler(device_id, kind, payload)
