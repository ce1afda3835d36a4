"""Incident events for devices: which MQTT topics they go to and what the device receives.

Topics are per device, so a broker ACL can let each device read only its own (`pattern read
outpost/v1/devices/%u/#` in Mosquitto):

- `outpost/v1/devices/{device_id}/offers` (QoS 1, not retained): what Outpost sends to every device bound
  to the unit. `{"type": "offer", "offer_id", "incident_id", "priority", "category", "description",
  "lon", "lat", "address", "expires_at"}` when the unit is offered an incident, and `{"type":
  "offer_closed", "offer_id", "incident_id", "reason": "timed_out" | "withdrawn" | "declined"}` when the
  offer ends without the device's answer. After a device's reply or alarm arrives over MQTT, `{"type":
  "reply_outcome" | "alarm_outcome", "offer_id", "outcome": "taken" | "refused", "detail"}` tells it what
  became of it (the same outcome and detail the HTTP twins answer with).
- `outpost/v1/devices/{device_id}/reply` (what the device publishes, QoS 1): `{"offer_id": …, "answer":
  "accept" | "decline"}`. Ingest subscribes to `outpost/v1/devices/+/reply` and hands the message to the
  composition root, which calls `IncidentService.handle_device_reply(device_id, payload)` with the device
  id from the topic (the broker's ACL makes sure a device can publish only under its own id).

On the event bus, incident events are dicts with `"type": "incident.<what>"` (created, offered, accepted,
declined, timed_out, offer_withdrawn, no_unit_available, en_route, arrived, resolved, cancelled,
transferred, escalated, sla_breached, feedback_recorded, evaluated, closed) and `incident_id`, `state`,
`tier`, `priority`, `category`, `lon`, `lat`, `address`, `at` (ISO 8601 UTC); unit events add `unit_id`,
offer events `offer_id` and `devices` (the unit's devices at that moment).

The tiers' notices (`dispatch.incidents.tiers`): `incident.tier_notified` (`owner`: "units" or
"station", `grid_id`, `grid_name`, `units`, `devices`, `why`) also goes to MQTT
`outpost/v1/events/incident.tier_notified` for every listener, and `{"type": "incident_notice",
"incident_id", "tier", "priority", "category", "description", "lon", "lat", "address", "why"}` to each
owning unit's devices on their offers topic.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.topics import OFFERS, REPLY, REPLY_FILTER, device_message_of, device_topic, event_topic

OFFER_TOPIC = device_topic("{device_id}", OFFERS)
REPLY_TOPIC = device_topic("{device_id}", REPLY)
REPLY_SUBSCRIPTION = REPLY_FILTER
_CLOSED = {
    "incident.timed_out": "timed_out",
    "incident.offer_withdrawn": "withdrawn",
    "incident.declined": "declined",
}


def device_of_reply_topic(topic: str) -> str | None:
    """The device id in a reply topic, or None when the topic is not one."""
    parsed = device_message_of(topic)
    if parsed is None or parsed[1] != REPLY or "/" in parsed[0]:
        return None
    return parsed[0]


def outcome_message(
    device_id: str, kind: str, ok: bool, detail: str, offer_id: str | None
) -> tuple[str, bytes]:
    """(topic, payload) telling a device what became of its reply or alarm (`kind`)."""
    body = {
        "type": f"{kind}_outcome",
        "offer_id": offer_id,
        "outcome": "taken" if ok else "refused",
        "detail": detail,
    }
    return OFFER_TOPIC.format(device_id=device_id), msgspec.json.encode(body)


_NOTICE_KEYS = ("incident_id", "tier", "priority", "category", "description", "lon", "lat", "address", "why")


def _tier_notice(event: dict[str, Any]) -> list[tuple[str, bytes]]:
    """A tier's notice: on the events topic for everyone, and to each owning unit's devices."""
    notice = msgspec.json.encode({"type": "incident_notice", **{k: event.get(k) for k in _NOTICE_KEYS}})
    everyone = (event_topic(str(event["type"])), msgspec.json.encode(event))
    return [everyone, *((OFFER_TOPIC.format(device_id=d), notice) for d in event.get("devices", ()))]


def device_messages(event: dict[str, Any]) -> list[tuple[str, bytes]]:
    """(topic, payload) for every device that must hear of this bus event; empty for most events."""
    kind = event.get("type")
    if kind == "incident.tier_notified":
        return _tier_notice(event)
    if kind == "incident.offered":
        body: dict[str, Any] = {"type": "offer"}
        for key in (
            "offer_id",
            "incident_id",
            "priority",
            "category",
            "description",
            "lon",
            "lat",
            "address",
            "expires_at",
        ):
            body[key] = event.get(key)
    elif kind in _CLOSED:
        body = {
            "type": "offer_closed",
            "offer_id": event.get("offer_id"),
            "incident_id": event.get("incident_id"),
            "reason": _CLOSED[str(kind)],
        }
    else:
        return []
    payload = msgspec.json.encode(body)
    return [(OFFER_TOPIC.format(device_id=d), payload) for d in event.get("devices", ())]
