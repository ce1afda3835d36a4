"""Duty status from the device: only its own unit's, only along the transitions a device may make, every
change in the status history (device or API), refusals named, counted and dead-lettered, never a change.
Both stores."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from store import registry
from store.fixes import count_rejected
from tests.dispatch.field.world import Field, field_api


@pytest.fixture
async def world(store_url: str) -> AsyncIterator[Field]:
    async with field_api(store_url) as w:
        w.unit("p1")
        w.device("phone-1", "p1")
        w.device("loose", None)
        yield w


async def test_a_device_brings_its_unit_on_duty_breaks_and_goes_off_duty_each_change_recorded(
    world: Field,
) -> None:
    steps = [
        ("on_duty", "available"),
        ("break", "break"),
        ("available", "available"),
        ("off_duty", "off_duty"),
    ]
    for reported, expected in steps:
        answer = await world.send("phone-1", "status", {"status": reported, "why": f"said {reported}"})
        assert answer.ok, answer
        assert world.status("p1") == expected
    history = registry.status_history(world.engine, "p1")
    assert [(c.from_status, c.to_status, c.actor, c.why) for c in history] == [
        ("off_duty", "available", "device:phone-1", "said on_duty"),
        ("available", "break", "device:phone-1", "said break"),
        ("break", "available", "device:phone-1", "said available"),
        ("available", "off_duty", "device:phone-1", "said off_duty"),
    ]
    # The device hears each outcome on its downlink; the consoles see each change on the stream.
    outcomes = world.to("phone-1")
    assert [(o["type"], o["outcome"], o["status"]) for o in outcomes] == [
        ("status_outcome", "taken", s) for _, s in steps
    ]
    assert [e["new"] for e in world.events("unit.status")] == [s for _, s in steps]


async def test_reporting_the_status_a_unit_has_changes_nothing_and_records_nothing(world: Field) -> None:
    await world.send("phone-1", "status", {"status": "off_duty"})
    answer = await world.send("phone-1", "status", {"status": "on_duty"})
    again = await world.send("phone-1", "status", {"status": "on_duty"})
    assert answer.ok and again.ok and "already" in again.detail
    assert [c.to_status for c in registry.status_history(world.engine, "p1")] == ["available"]


@pytest.mark.parametrize("status", ["en_route", "on_scene", "offered", "assigned"])
async def test_a_unit_on_an_incident_cannot_go_available_from_its_phone(world: Field, status: str) -> None:
    await world.api.fleet.set_status("p1", status, actor="incident-loop")
    for reported in ("available", "off_duty", "break", "busy"):
        answer = await world.send("phone-1", "status", {"status": reported})
        assert (answer.ok, answer.reasons) == (False, ("unit_on_incident",)), answer
    assert world.status("p1") == status
    assert count_rejected(world.engine, "unit_on_incident") == 4
    assert world.to("phone-1")[-1]["reasons"] == ["unit_on_incident"]


async def test_off_duty_units_come_on_duty_before_anything_else_and_out_of_service_is_a_dispatchers(
    world: Field,
) -> None:
    answer = await world.send("phone-1", "status", {"status": "busy"})
    assert answer.reasons == ("transition_not_allowed",)
    await world.api.fleet.set_status("p1", "out_of_service", actor="token:1:desk")
    answer = await world.send("phone-1", "status", {"status": "available"})
    assert answer.reasons == ("unit_out_of_service",)
    assert world.status("p1") == "out_of_service"


@pytest.mark.parametrize(
    ("device_id", "payload", "reason"),
    [
        ("loose", b'{"status": "on_duty"}', "device_unbound"),
        ("phone-1", b'{"status": "asleep"}', "malformed_message"),
        ("phone-1", b"not json", "malformed_message"),
        ("phone-1", b'{"status": "on_duty", "unit_id": "p2"}', "malformed_message"),
        ("phone-1", b"[]", "malformed_message"),
    ],
)
async def test_bad_status_reports_are_refused_by_name_counted_dead_lettered_and_change_nothing(
    world: Field, device_id: str, payload: bytes, reason: str
) -> None:
    answer = await world.send(device_id, "status", payload)
    assert (answer.ok, answer.reasons) == (False, (reason,))
    assert world.status("p1") == "off_duty"
    assert registry.status_history(world.engine, "p1") == []
    assert count_rejected(world.engine, reason) == 1


async def test_api_changes_are_in_the_history_route_with_who_and_why(world: Field) -> None:
    api = world.api
    await api.json("POST", "/v1/units/p1/status", "dispatcher", json={"status": "available", "why": "shift"})
    await world.send("phone-1", "status", {"status": "break"})
    body = await api.json("GET", "/v1/units/p1/status-history", "viewer")
    assert [(c["from_status"], c["to_status"], c["why"]) for c in body["changes"]] == [
        ("off_duty", "available", "shift"),
        ("available", "break", "the device reported break"),
    ]
    assert body["changes"][0]["actor"].startswith("token:")
    assert body["changes"][1]["actor"] == "device:phone-1"
    ranged = await api.json("GET", "/v1/units/p1/status-history?from=2100-01-01T00:00:00Z", "viewer")
    assert ranged["changes"] == []


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/units/nobody/status-history", 404),
        ("/v1/units/p1/status-history?from=yesterday", 400),
        ("/v1/units/p1/status-history?from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z", 400),
        ("/v1/units/p1/status-history?limit=0", 400),
        ("/v1/units/%00/status-history", 400),
        ("/v1/units/" + "x" * 300 + "/status-history", 400),
    ],
)
async def test_hostile_history_requests_get_problems_never_500(world: Field, path: str, status: int) -> None:
    response = await world.api.call("GET", path, "viewer")
    assert response.status == status
    assert response.content_type == "application/problem+json"


async def test_the_history_needs_a_token(world: Field) -> None:
    assert (await world.api.call("GET", "/v1/units/p1/status-history", None)).status == 401
