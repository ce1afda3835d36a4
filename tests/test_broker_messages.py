"""What an API process sends the broker for each bus event: the patrol events on
`outpost/v1/events/…` once per deployment (from the leader when there are replicas), and the leader's own
events to the other replicas' consoles."""

from __future__ import annotations

from dispatch.clock import ManualClock
from dispatch.events import EventBus
from dispatch.replica_events import ReplicaEvents
from outpost.scale import broker_messages
from schemas.topics import EVENTS_FEED_PREFIX, EVENTS_PREFIX

PATROL = {
    "type": "out_of_grid.raised",
    "id": "a1",
    "unit_id": "u1",
    "grid_id": "g1",
    "at": "2026-12-07T16:00:00Z",
}
INCIDENT = {"type": "incident.created", "incident_id": "inc-1"}


class Side:
    def __init__(self, leading: bool) -> None:
        self.leading = leading


def _topics(messages: list[tuple[str, bytes]]) -> list[str]:
    return [topic for topic, _ in messages]


def test_one_process_sends_the_patrol_events_and_relays_nothing() -> None:
    assert _topics(broker_messages(PATROL, None, None)) == [EVENTS_PREFIX + "out_of_grid.raised"]
    assert broker_messages(INCIDENT, None, None) == []


def test_among_replicas_the_leader_alone_sends_the_patrol_events() -> None:
    relay = ReplicaEvents(EventBus(ManualClock(0.0)), "r1")
    leader = broker_messages(PATROL, Side(True), relay)  # type: ignore[arg-type]
    follower = broker_messages(PATROL, Side(False), relay)  # type: ignore[arg-type]
    assert _topics(leader) == [EVENTS_PREFIX + "out_of_grid.raised"]
    assert follower == []
    assert _topics(broker_messages(INCIDENT, Side(True), relay)) == [EVENTS_FEED_PREFIX + "r1"]  # type: ignore[arg-type]
