"""Who may publish and subscribe to what on the embedded broker: pure rules over a client's principal.

    service     Outpost's own clients (ingest, the device channel): every topic, every filter.
    device      logged in as its id: publishes only what a device sends on its own topics
                (`outpost/v1/devices/{id}/fix|reply|alarm|status|checkin|answer`, and for an OwnTracks id
                "user/device" `owntracks/user/device[/subtopic]` except `cmd`); subscribes only to what
                Outpost sends it (`…/{id}/offers|rollcall|cmd`, `owntracks/user/device/cmd`), by exact topic.
    anonymous   open mode on loopback only (demos, load tests: one client may speak for a whole fleet):
                publishes what devices send on the topics of devices without credentials (never for a device
                that has a secret: only that secret speaks for it), never what Outpost sends them (offers,
                roll calls, commands); subscribes only to Outpost's events (`outpost/v1/events/…`).

Exact topics rather than `{id}/#` for devices: ids may span levels (OwnTracks "user/device"), so device
"alice"'s `outpost/v1/devices/alice/#` would also cover device "alice/phone".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from schemas.topics import (
    CMD,
    DEVICE_MESSAGE_KINDS,
    DEVICES_PREFIX,
    EVENTS_PREFIX,
    FIX,
    OFFERS,
    OWNTRACKS_PREFIX,
    ROLLCALL,
    device_topic,
    owntracks_command_topic,
    owntracks_levels,
)

# What a device sends, and what Outpost sends a device (its inbound topics, which nobody else may write).
DEVICE_SENT_KINDS = frozenset((FIX, *DEVICE_MESSAGE_KINDS))
INBOUND_KINDS = (OFFERS, ROLLCALL, CMD)

Kind = Literal["service", "device", "anonymous"]


@dataclass(frozen=True)
class Principal:
    """Who a connected client is; for a device, what it was admitted with (see BrokerAccess.revoked)."""

    kind: Kind
    device_id: str = ""
    secret_hash: str | None = None
    known: bool = False  # the device was in the directory when admitted


SERVICE = Principal("service")
ANONYMOUS = Principal("anonymous")


def may_publish(
    principal: Principal, topic: str, has_credentials: Callable[[str], bool] = lambda _device_id: False
) -> bool:
    """Whether `principal` may publish on `topic` (a topic name, never a filter). `has_credentials(id)`:
    the device has a secret (then an anonymous client may not speak for it)."""
    if principal.kind == "service":
        return True
    if principal.kind == "device":
        return _own_sent_topic(principal.device_id, topic)
    device_id = _sender_of(topic)
    return device_id is not None and not has_credentials(device_id)


def may_subscribe(principal: Principal, topic_filter: str) -> bool:
    """Whether `principal` may subscribe to `topic_filter`."""
    if principal.kind == "service":
        return True
    if principal.kind == "device":
        return topic_filter in inbound_topics(principal.device_id)
    return topic_filter.startswith(EVENTS_PREFIX)


class DeviceRule(NamedTuple):
    """One rule of a device's own, as an external broker's ACL states it."""

    allow: bool
    action: Literal["publish", "subscribe"]
    topic: str  # a topic name, or (exact False) a filter
    exact: bool = True


def device_rules(device_id: str) -> list[DeviceRule]:
    """The device's rules for an external broker, saying what may_publish and may_subscribe say for a
    device (anything else is denied), in the order a first-match broker needs: a deny before the filter it
    is carved out of. Mosquitto's dynamic security (ingest.broker_registry) and EMQX
    (ingest.http.broker_login) translate them into their own terms."""
    rules = [DeviceRule(True, "publish", device_topic(device_id, kind)) for kind in sorted(DEVICE_SENT_KINDS)]
    if owntracks_command_topic(device_id) is not None:  # an OwnTracks id "user/device"
        base = OWNTRACKS_PREFIX + device_id
        rules.append(DeviceRule(False, "publish", f"{base}/{CMD}"))  # Outpost's to send, not the device's
        rules.append(DeviceRule(True, "publish", base))
        rules.append(DeviceRule(True, "publish", f"{base}/#", exact=False))
    rules += [DeviceRule(True, "subscribe", topic) for topic in inbound_topics(device_id)]
    return rules


def inbound_topics(device_id: str) -> tuple[str, ...]:
    """The topics Outpost sends `device_id` on: the only ones it may subscribe to."""
    topics = tuple(device_topic(device_id, kind) for kind in INBOUND_KINDS)
    owntracks = owntracks_command_topic(device_id)
    return (*topics, owntracks) if owntracks is not None else topics


def _own_sent_topic(device_id: str, topic: str) -> bool:
    prefix = DEVICES_PREFIX + device_id + "/"
    if topic.startswith(prefix):
        return topic[len(prefix) :] in DEVICE_SENT_KINDS
    base = OWNTRACKS_PREFIX + device_id
    if topic == base:
        return owntracks_command_topic(device_id) is not None  # an OwnTracks id: "user/device"
    if topic.startswith(base + "/"):
        return owntracks_command_topic(device_id) is not None and topic != base + "/" + CMD
    return False


def _sender_of(topic: str) -> str | None:
    """The device whose sent topic `topic` is (a fix, reply, alarm …, an OwnTracks report); None for any
    other topic, what Outpost sends devices included."""
    if topic.startswith(DEVICES_PREFIX):
        device_id, _, kind = topic[len(DEVICES_PREFIX) :].rpartition("/")
        return device_id if device_id and kind in DEVICE_SENT_KINDS else None
    levels = owntracks_levels(topic)
    if levels is None or (len(levels) == 4 and levels[3] == CMD):
        return None
    return f"{levels[1]}/{levels[2]}"
