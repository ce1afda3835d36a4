"""Events only the leader sees, told to the other replicas' streams: which are shared, that a replica never
takes its own back, and that anything else on the topic (a forged unit status, garbage) is refused and
counted. The relay across real processes and a real broker: tests/e2e/test_replicas.py."""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from dispatch.clock import ManualClock
from dispatch.events import EventBus
from dispatch.replica_events import ReplicaEvents, shared
from schemas.topics import EVENTS_FEED_PREFIX, INTERNAL_PREFIX

INCIDENT = {"type": "incident.created", "incident_id": "inc-1", "priority": "P1"}


def _bus_and_relay(tag: str) -> tuple[EventBus, ReplicaEvents, list[dict[str, object]]]:
    bus = EventBus(ManualClock(0.0))
    sent_to_devices: list[dict[str, object]] = []
    bus.device_sink = sent_to_devices.append
    return bus, ReplicaEvents(bus, tag), sent_to_devices


def _invalid() -> float:
    return REGISTRY.get_sample_value("outpost_api_events_relayed_invalid_total") or 0.0


@pytest.mark.parametrize(
    ("kind", "is_shared"),
    [
        ("incident.created", True),
        ("incident.offered", True),
        ("device.alarm", True),
        ("unit.status", False),  # every replica derives it from its own picture
        ("unit.moved", False),
        ("out_of_grid.raised", False),
        ("rollcall.started", True),
        ("rollcall.answered", True),
        ("unit.checkin", True),  # the leader alone takes the devices' check-ins
        ("incidents", False),
    ],
)
def test_only_what_one_replica_alone_sees_is_shared(kind: str, is_shared: bool) -> None:
    assert shared({"type": kind}) is is_shared


def test_an_event_goes_out_on_the_replicas_own_topic_and_reaches_the_others_streams_only() -> None:
    leader_bus, leader, _ = _bus_and_relay("leader")
    follower_bus, follower, follower_devices = _bus_and_relay("follower")
    assert leader.topic.startswith(EVENTS_FEED_PREFIX) and leader.topic.startswith(INTERNAL_PREFIX)
    assert leader.outgoing({"type": "unit.status", "unit_id": "u1"}) == []
    ((topic, payload),) = leader.outgoing(INCIDENT)
    assert topic == leader.topic
    console = follower_bus.subscribe()
    follower.incoming(topic, payload)
    assert console.get_nowait() == INCIDENT
    assert follower_devices == []  # never handed on to the devices, nor out again
    assert console.get_nowait() is None

    own = leader_bus.subscribe()
    leader.incoming(topic, payload)  # its own, back from the broker
    assert own.get_nowait() is None


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'"incident.created"',
        json.dumps({"type": "unit.status", "unit_id": "u1", "new": "busy"}).encode(),  # forged, not shared
        json.dumps({"incident_id": "x"}).encode(),
        json.dumps({"type": 7}).encode(),
    ],
)
def test_anything_else_on_the_topic_is_refused_and_counted(payload: bytes) -> None:
    bus, relay, _ = _bus_and_relay("follower")
    console = bus.subscribe()
    before = _invalid()
    relay.incoming(EVENTS_FEED_PREFIX + "someone", payload)
    assert console.get_nowait() is None
    assert _invalid() == before + 1
