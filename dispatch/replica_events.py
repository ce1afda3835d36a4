"""Events only the replica that acted sees, told to the other replicas' live streams.

The incident loop and the field desk run on one replica, the leader (dispatch.leader), and so do their
events: `incident.*`, `device.alarm`, `rollcall.*` and `unit.checkin`. A console whose `/v1/stream` the
balancer connected to another replica would never see them. Every other event each replica derives
itself, from its own picture (unit moves and statuses, zone and health alerts).

So the bus hands each shared event to the broker on `outpost/internal/v1/events/{tag}` (QoS 1, `tag`
new at every start), and every replica fans out what it hears there from the others to its own stream
subscribers only: never back to the broker, never to the devices. Best effort, as the stream itself is:
an event published while a replica's subscription was down is not replayed to it, and a console that
reconnects there with a `Last-Event-ID` it cannot serve is told to resync from the API, which reads the
database.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import msgspec
from prometheus_client import Counter

from dispatch.events import Event, EventBus
from schemas.topics import EVENTS_FEED_PREFIX

log = logging.getLogger(__name__)

_SHARED_PREFIXES = ("incident.", "rollcall.")
_SHARED_TYPES = frozenset({"device.alarm", "unit.checkin"})

RELAYED = Counter(
    "outpost_api_events_relayed",
    "Events only the leading replica makes (incidents, alarms, roll calls, check-ins), sent to the other "
    "replicas or taken from them.",
    ["direction"],
)
RELAYED_INVALID = Counter(
    "outpost_api_events_relayed_invalid",
    "Messages on the replicas' event topic that were not a shared event.",
)


def shared(event: Event) -> bool:
    """Whether an event is one only the replica that made it sees."""
    kind = event.get("type")
    return isinstance(kind, str) and (kind in _SHARED_TYPES or kind.startswith(_SHARED_PREFIXES))


class ReplicaEvents:
    """One replica's side of the relay: what its bus sends out, and what it takes in from the others."""

    def __init__(self, bus: EventBus, tag: str | None = None) -> None:
        self._bus = bus
        self.topic = EVENTS_FEED_PREFIX + (tag or secrets.token_hex(6))

    def outgoing(self, event: Event) -> list[tuple[str, bytes]]:
        """The message that tells the other replicas of `event`, if it is a shared one."""
        if not shared(event):
            return []
        RELAYED.labels("out").inc()
        return [(self.topic, msgspec.json.encode(event))]

    def incoming(self, topic: str, payload: bytes) -> None:
        """A message heard on the replicas' event topic: another replica's event, to this one's streams."""
        if topic == self.topic:
            return  # its own, back from the broker
        try:
            event: Any = msgspec.json.decode(payload)
        except msgspec.DecodeError:
            event = None
        if not isinstance(event, dict) or not shared(event):
            RELAYED_INVALID.inc()
            log.warning("not a shared event on %s: ignored", topic)
            return
        RELAYED.labels("in").inc()
        self._bus.fan_in(event)
