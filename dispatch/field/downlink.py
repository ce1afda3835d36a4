"""What Outpost sends devices besides the incident loop's offers, and the port it goes through.

- `outpost/v1/devices/{id}/offers` (the device's downlink, shared with offers): `{"type": "<kind>_outcome",
  "outcome": "taken" | "refused", "detail", "reasons", ...}` after a status report, check-in or answer.
- `outpost/v1/devices/{id}/cmd`: `{"type": "command", "command": "request_fix" | "set_interval",
  "interval_s"?, "command_id", "sent_at"}`.
- `outpost/v1/devices/{id}/rollcall`: `{"type": "rollcall", "rollcall_id", "deadline_at", "again"}`.
- `owntracks/{user}/{device}/cmd`: `{"_type": "cmd", "action": "reportLocation"}`: a stock OwnTracks phone
  answers a command or a roll call with a fresh location.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from schemas.topics import CMD, OFFERS, ROLLCALL, device_topic, owntracks_command_topic

Message = tuple[str, bytes]
REPORT_LOCATION = msgspec.json.encode({"_type": "cmd", "action": "reportLocation"})


class DeviceSender(Protocol):
    """The channel to the devices (the gateway's `DeviceChannel.send`): publishes (topic, payload) pairs,
    QoS 1; `what` names them in the log when the broker is away."""

    def __call__(self, messages: Sequence[Message], what: str, /) -> None: ...


def no_channel(messages: Sequence[Message], what: str, /) -> None:
    """A sender for an API without a broker (tests of the routes alone): nothing is sent."""


def answer_message(device_id: str, kind: str, body: dict[str, Any]) -> Message:
    """A device's answer about its status report, check-in or roll-call answer (`kind`), on its downlink."""
    return device_topic(device_id, OFFERS), msgspec.json.encode({"type": f"{kind}_outcome", **body})


def to_device(device_id: str, kind: str, body: dict[str, Any]) -> list[Message]:
    """`body` on the device's `kind` topic (cmd, rollcall); an OwnTracks phone also gets reportLocation."""
    messages = [(device_topic(device_id, kind), msgspec.json.encode(body))]
    owntracks = owntracks_command_topic(device_id)
    if owntracks is not None:
        messages.append((owntracks, REPORT_LOCATION))
    return messages


def command_messages(device_id: str, body: dict[str, Any]) -> list[Message]:
    """A command (`request_fix`, `set_interval`) to one device."""
    return to_device(device_id, CMD, {"type": "command", **body})


def rollcall_messages(device_ids: Sequence[str], body: dict[str, Any]) -> list[Message]:
    """A roll call to each of a unit's devices."""
    return [m for d in device_ids for m in to_device(d, ROLLCALL, {"type": "rollcall", **body})]
