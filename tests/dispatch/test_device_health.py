"""Device health end to end over the API, on PostgreSQL and SQLite, driven by a manual clock: a bound
device of an on-duty unit goes offline after N × its learned interval (the patrol watch's check), is
cleared by its next fix at once and when its unit goes off duty; low battery with hysteresis; the SOS
alarm raised as the priority event `device.alarm` beside its P1 incident. Every event has an id and a time
and goes out on MQTT `outpost/v1/events/{type}` (the root's device sink)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
import pytest
from sqlalchemy import Engine

from dispatch.app import ApiPlugin
from dispatch.clock import ManualClock
from dispatch.events import EventBus
from dispatch.fleet import Fleet
from dispatch.incidents.alarms import raise_alarm
from dispatch.incidents.plugin import IncidentsPlugin
from dispatch.incidents.service import IncidentService
from dispatch.keys import PATROL_KEY
from dispatch.patrol import event_messages
from dispatch.settings import ApiSettings, DispatchSettings
from store.errors import StoreUnavailable
from store.fixes import FixWriter
from tests.dispatch.conftest import START_S, LiveApi, fix, running_api
from tests.dispatch.test_patrol import _drain

SETTINGS = ApiSettings(device_offline_factor=3.0, device_offline_min_s=20.0, device_offline_max_s=600.0)
AT = (-122.4194, 37.7793)


@contextlib.asynccontextmanager
async def _health_api(url: str) -> AsyncIterator[tuple[LiveApi, IncidentService]]:
    services: list[IncidentService] = []

    def make(engine: Engine, fleet: Fleet, bus: EventBus, clock: ManualClock) -> list[ApiPlugin]:
        services.append(IncidentService(engine, fleet, bus, clock, DispatchSettings(), SETTINGS))
        return [IncidentsPlugin(services[0])]

    async with running_api(url, settings=SETTINGS, make_plugins=make) as api:
        await api.json("POST", "/v1/units", status=201, json={"id": "u1", "name": "U1", "kind": "police"})
        await api.json("POST", "/v1/devices", status=201, json={"id": "cam-1", "kind": "body_cam"})
        await api.json("POST", "/v1/units/u1/devices", status=201, json={"device_id": "cam-1"})
        await _status(api, "available")
        yield api, services[0]


async def _status(api: LiveApi, status: str) -> None:
    await api.json("POST", "/v1/units/u1/status", role="dispatcher", json={"status": status})


def _report(api: LiveApi, battery_pct: float | None = None) -> None:
    """cam-1 reports now."""
    sent = fix("cam-1", None, *AT, api.clock.now())
    api.fleet.apply([msgspec.structs.replace(sent, battery_pct=battery_pct)])


@pytest.fixture
async def health(store_url: str) -> AsyncIterator[tuple[LiveApi, IncidentService]]:
    async with _health_api(store_url) as both:
        yield both


async def test_offline_after_n_intervals_cleared_by_the_next_fix_and_by_going_off_duty(
    health: tuple[LiveApi, IncidentService],
) -> None:
    api, _ = health
    patrol = api.app[PATROL_KEY]
    sub = api.bus.subscribe()
    for _ in range(5):  # every 10 s: the limit is 3 × 10 s
        _report(api)
        api.clock.advance(10.0)
    api.clock.advance(19.0)  # 29 s since the last fix
    await patrol.check()
    assert _drain(sub, "device_offline.") == []
    api.clock.advance(2.0)
    await patrol.check()
    [raised] = _drain(sub, "device_offline.")
    assert raised["type"] == "device_offline.raised" and isinstance(raised["id"], str)
    assert raised["at"] == datetime.fromtimestamp(START_S + 71.0, UTC)
    assert (raised["device_id"], raised["unit_id"], raised["limit_s"], raised["usual_interval_s"]) == (
        "cam-1",
        "u1",
        30.0,
        10.0,
    )
    assert raised["last_fix_at"] == datetime.fromtimestamp(START_S + 40.0, UTC)
    [(topic, payload)] = event_messages(raised)
    assert topic == "outpost/v1/events/device_offline.raised"
    assert msgspec.json.decode(payload)["id"] == raised["id"]
    _report(api)  # cleared at once, without waiting for a check
    [cleared] = _drain(sub, "device_offline.")
    assert cleared["type"] == "device_offline.cleared" and cleared["reason"] == "a fix was heard again"
    # Silent again, then off duty: cleared, and not raised while off duty.
    api.clock.advance(31.0)
    await patrol.check()
    assert [e["type"] for e in _drain(sub, "device_offline.")] == ["device_offline.raised"]
    await _status(api, "off_duty")
    await patrol.check()
    [off] = _drain(sub, "device_offline.")
    assert off["type"] == "device_offline.cleared" and "no longer watched" in off["reason"]
    api.clock.advance(600.0)
    await patrol.check()
    assert _drain(sub, "device_offline.") == []


async def test_low_battery_raises_once_and_clears_above_the_band(
    health: tuple[LiveApi, IncidentService],
) -> None:
    api, _ = health
    sub = api.bus.subscribe()
    for pct in (40.0, 15.0, 12.0, 18.0, 21.0):
        _report(api, pct)
        api.clock.advance(10.0)
    events = _drain(sub, "battery_low.")
    assert [(e["type"], e["battery_pct"]) for e in events] == [
        ("battery_low.raised", 15.0),
        ("battery_low.cleared", 21.0),
    ]
    assert events[0]["device_id"] == "cam-1" and events[0]["unit_id"] == "u1" and events[0]["id"]
    assert event_messages(events[0])[0][0] == "outpost/v1/events/battery_low.raised"


async def test_an_alarm_is_a_priority_event_beside_its_p1_incident(
    health: tuple[LiveApi, IncidentService],
) -> None:
    api, incidents = health
    _report(api)
    sub = api.bus.subscribe()
    reply = await raise_alarm(incidents, api.fleet, "cam-1", b'{"description": "officer down"}')
    assert reply.ok
    [alarm] = _drain(sub, "device.alarm")
    assert (alarm["priority"], alarm["device_id"], alarm["unit_id"], alarm["description"]) == (
        "P1",
        "cam-1",
        "u1",
        "officer down",
    )
    assert (alarm["lon"], alarm["lat"]) == AT and alarm["at"] == datetime.fromtimestamp(START_S, UTC)
    incident = await api.json("GET", f"/v1/incidents/{alarm['incident_id']}", role="viewer")
    assert incident["priority"] == "P1" and incident["category"] == "officer_alarm"
    assert event_messages(alarm)[0][0] == "outpost/v1/events/device.alarm"


async def test_a_device_going_silent_while_the_database_is_away_is_still_reported(
    health: tuple[LiveApi, IncidentService], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _ = health
    patrol = api.app[PATROL_KEY]
    sub = api.bus.subscribe()
    for _ in range(5):
        _report(api)
        api.clock.advance(10.0)

    def database_away(*_: object, **__: object) -> None:
        raise StoreUnavailable("connection refused")  # the fault injected: PostgreSQL stopped

    monkeypatch.setattr("dispatch.patrol.watch.duty.assignments_at", database_away)
    api.clock.advance(21.0)
    await patrol.check()  # the holders cannot be re-read; the health watch needs no database
    assert [e["type"] for e in _drain(sub, "device_offline.")] == ["device_offline.raised"]


async def test_an_alarm_is_never_lost_to_what_is_wrong_in_it(health: tuple[LiveApi, IncidentService]) -> None:
    api, incidents = health
    _report(api)
    sub = api.bus.subscribe()
    nul = b'{"lat": 37.7, "lon": -122.4, "description": "help\\u0000 me"}'
    assert (await raise_alarm(incidents, api.fleet, "cam-1", nul)).ok  # the NUL is cleaned away
    off_earth = b'{"lat": 500, "lon": -122.4}'
    assert (await raise_alarm(incidents, api.fleet, "cam-1", off_earth)).ok  # the unit's position instead
    first, second = _drain(sub, "device.alarm")
    assert (first["description"], (first["lon"], first["lat"])) == ("help me", (-122.4, 37.7))
    assert (second["lon"], second["lat"]) == AT and "unusable" in second["description"]
    for alarm in (first, second):
        incident = await api.json("GET", f"/v1/incidents/{alarm['incident_id']}", role="viewer")
        assert incident["priority"] == "P1"
    # A device with no unit and an alarm with no position: nobody can be sent, the dispatchers still hear.
    reply = await raise_alarm(incidents, api.fleet, "stray-9", b"{}")
    [lost] = _drain(sub, "device.alarm")
    assert not reply.ok and (lost["device_id"], lost["incident_id"], lost["lon"]) == ("stray-9", None, None)


async def test_the_openapi_document_names_the_health_events(sqlite_api: LiveApi) -> None:
    doc = await sqlite_api.json("GET", "/openapi.json", role=None)
    described = doc["paths"]["/v1/stream"]["get"]["description"]
    assert all(k in described for k in ("device_offline.raised", "battery_low.raised", "device.alarm"))


async def test_a_device_already_silent_at_a_restart_is_noticed(store_url: str) -> None:
    async with _health_api(store_url) as (api, _):
        FixWriter(api.engine).write([fix("cam-1", None, *AT, START_S - 100.0)])  # stored, then silence
    # The next process starts 700 s later: the fleet is rebuilt from the store, the watch takes the fix as
    # heard when it was received, and the check at start finds it past the ceiling (nothing learned).
    async with running_api(store_url, settings=SETTINGS, clock=ManualClock(START_S + 600.0)) as later:
        health = later.app[PATROL_KEY].health.health
        assert [(d, v.offline_at_s) for d, v in health.raised()] == [("cam-1", START_S + 600.0)]
