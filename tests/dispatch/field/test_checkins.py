"""Check-ins on both stores: judged with every reason (inside the assigned grid with the tolerance,
accurate, not mocked, fresh, during the assignment, from a bound device), stored once per check-in id,
answered on the device's downlink and published; attendance by unit, grid, time and shift; automatic
check-in on first entering the grid."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from dispatch.settings import FieldSettings
from store import attendance, duty
from store.fixes import count_rejected
from tests.dispatch.conftest import START_S
from tests.dispatch.field.world import Field, field_api, utc
from tests.support.duty import seed

# Metres per degree of longitude at latitude 0.5 (the test grids are 1° squares from (0, 0)).
M_PER_DEG = 111_195.0
INSIDE = (0.5, 0.5)


def fix_body(lon: float, lat: float, age_s: float = 5.0, **extra: Any) -> dict[str, Any]:
    return {"ts": round((START_S - age_s) * 1000), "lon": lon, "lat": lat, "acc_m": 8.0, **extra}


@pytest.fixture
async def world(store_url: str) -> AsyncIterator[Field]:
    async with field_api(store_url) as w:
        seed(w.engine, utc(START_S - 86400))
        for device_id, unit_id in (("phone-1", "p1"), ("phone-a1", "a1"), ("phone-p2", "p2")):
            w.device(device_id, unit_id)
        w.device("loose", None)
        assign(w, "p1", "police-1", START_S - 600, START_S + 3600)
        yield w


def assign(
    w: Field, unit_id: str, grid_id: str, start_s: float, end_s: float, shift_id: int | None = None
) -> int:
    made = duty.create_assignment(
        w.engine,
        unit_id=unit_id,
        grid_id=grid_id,
        starts_at=None if shift_id else utc(start_s),
        ends_at=None if shift_id else utc(end_s),
        shift_id=shift_id,
        actor="test",
        now=utc(START_S - 86400),
    )
    return made.assignment.id


async def test_a_check_in_inside_the_grid_is_accepted_stored_answered_and_published(world: Field) -> None:
    answer = await world.send("phone-1", "checkin", {"checkin_id": "c-1", "fix": fix_body(*INSIDE)})
    assert (answer.ok, answer.reasons, answer.detail) == (True, (), "checked in")
    told = world.to("phone-1")[-1]
    assert told["type"] == "checkin_outcome" and told["outcome"] == "taken" and told["checkin_id"] == "c-1"
    assert told["grid_id"] == "police-1" and told["distance_m"] == 0.0
    [event] = world.events("unit.checkin")
    assert (event["unit_id"], event["accepted"], event["grid_id"]) == ("p1", True, "police-1")
    body = await world.api.json("GET", "/v1/checkins?unit=p1", "viewer")
    assert [(c["checkin_id"], c["accepted"], c["source"]) for c in body["checkins"]] == [
        ("c-1", True, "device")
    ]


async def test_every_reason_is_given_at_once(world: Field) -> None:
    bad = fix_body(-0.01, 0.5, age_s=300, acc_m=500.0, mock=True)  # ~1.1 km west of the grid
    answer = await world.send("phone-1", "checkin", {"checkin_id": "c-2", "fix": bad})
    assert not answer.ok
    assert answer.reasons == ("fix_not_fresh", "low_accuracy", "mock_location", "outside_grid")
    assert "1112 m outside" in answer.detail
    assert world.to("phone-1")[-1]["reasons"] == list(answer.reasons)
    [stored] = attendance.list_checkins(world.engine, unit_id="p1")
    assert (stored.accepted, stored.reasons) == (False, answer.reasons)


@pytest.mark.parametrize(("outside_m", "accepted"), [(30.0, True), (49.0, True), (80.0, False)])
async def test_the_tolerance_lets_a_fix_just_outside_the_grid_count(
    world: Field, outside_m: float, accepted: bool
) -> None:
    fix = fix_body(-outside_m / M_PER_DEG, 0.5)
    answer = await world.send("phone-1", "checkin", {"checkin_id": "edge", "fix": fix})
    assert answer.ok is accepted, answer
    assert answer.refs["distance_m"] == pytest.approx(outside_m, rel=0.01)


async def test_without_a_carried_fix_the_devices_latest_counts(world: Field) -> None:
    answer = await world.send("phone-1", "checkin", {"checkin_id": "none-yet"})
    assert answer.reasons == ("no_fix",)
    world.move("phone-1", "p1", *INSIDE, age_s=10)
    assert (await world.send("phone-1", "checkin", {"checkin_id": "latest"})).ok
    world.move("phone-1", "p1", *INSIDE, age_s=0, accuracy_m=None)
    assert (await world.send("phone-1", "checkin", {"checkin_id": "coarse"})).reasons == ("low_accuracy",)


async def test_retrying_a_check_in_id_answers_the_first_verdict_and_stores_once(world: Field) -> None:
    first = await world.send("phone-1", "checkin", {"checkin_id": "c-9", "fix": fix_body(5.0, 5.0)})
    again = await world.send("phone-1", "checkin", {"checkin_id": "c-9", "fix": fix_body(*INSIDE)})
    assert (first.ok, again.ok, again.reasons) == (False, False, ("outside_grid",))
    assert (first.refs["repeated"], again.refs["repeated"]) == (False, True)
    assert len(attendance.list_checkins(world.engine, unit_id="p1")) == 1
    assert len(world.events("unit.checkin")) == 1
    other = await world.send("phone-a1", "checkin", {"checkin_id": "c-9", "fix": fix_body(*INSIDE)})
    assert other.refs["repeated"] is False  # the id is the device's own: another device's c-9 is another


async def test_only_during_the_assignment_or_just_before_it(world: Field) -> None:
    early = await world.send("phone-a1", "checkin", {"checkin_id": "x", "fix": fix_body(*INSIDE)})
    assert early.reasons == ("outside_shift",)
    assign(world, "a1", "community-1", START_S + 600, START_S + 4000)  # starts in 10 min: within 15
    soon = await world.send("phone-a1", "checkin", {"checkin_id": "y", "fix": fix_body(*INSIDE)})
    assert soon.ok, soon


async def test_an_unbound_device_or_a_malformed_check_in_is_refused_and_nothing_is_stored(
    world: Field,
) -> None:
    unbound = await world.send("loose", "checkin", {"checkin_id": "c-1", "fix": fix_body(*INSIDE)})
    malformed = await world.send("phone-1", "checkin", b'{"checkin_id": ""}')
    assert (unbound.reasons, malformed.reasons) == (("device_unbound",), ("malformed_message",))
    assert attendance.list_checkins(world.engine) == []
    assert count_rejected(world.engine, "device_unbound") == 1
    assert count_rejected(world.engine, "malformed_message") == 1
    assert world.events("unit.checkin") == []


async def test_a_shifts_attendance_says_on_time_late_missing_and_not_yet_due(world: Field) -> None:
    shift = duty.create_shift(
        world.engine, name="day", starts_at=utc(START_S), ends_at=utc(START_S + 8 * 3600), now=utc(START_S)
    )
    duty.end_assignment(world.engine, 1, actor="test", now=utc(START_S - 700))  # p1's earlier one
    for unit_id, grid_id in (("p1", "police-1"), ("a1", "community-1")):
        assign(world, unit_id, grid_id, 0, 0, shift.id)
    assign(world, "p2", "police-2", START_S + 7200, START_S + 8 * 3600)  # not in the shift
    assert (await world.send("phone-1", "checkin", {"checkin_id": "on-time", "fix": fix_body(*INSIDE)})).ok
    world.api.clock.advance(600)  # ten minutes after the start: late
    late_fix = {"ts": round(world.api.clock.now() * 1000), "lon": 0.5, "lat": 0.5, "acc_m": 5.0}
    assert (await world.send("phone-a1", "checkin", {"checkin_id": "late", "fix": late_fix})).ok
    body = await world.api.json("GET", f"/v1/shifts/{shift.id}/attendance", "viewer")
    got = {(r["unit_id"], r["standing"], r["checkin_id"]) for r in body["assignments"]}
    assert got == {("p1", "on_time", "on-time"), ("a1", "late", "late")}
    assert body["counts"] == {"on_time": 1, "late": 1, "missing": 0, "not_yet_due": 0}
    second = duty.create_shift(
        world.engine,
        name="night",
        starts_at=utc(START_S + 3600),
        ends_at=utc(START_S + 7200),
        now=utc(START_S),
    )
    duty.create_assignment(
        world.engine, unit_id="a2", grid_id="community-2", shift_id=second.id, actor="t", now=utc(START_S)
    )
    night = await world.api.json("GET", f"/v1/shifts/{second.id}/attendance", "viewer")
    assert night["counts"]["not_yet_due"] == 1
    world.api.clock.advance(2 * 3600)
    night = await world.api.json("GET", f"/v1/shifts/{second.id}/attendance", "viewer")
    assert night["counts"]["missing"] == 1


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/checkins?unit=%00", 400),
        ("/v1/checkins?grid=NOT A GRID", 400),
        ("/v1/checkins?from=soon", 400),
        ("/v1/checkins?from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z", 400),
        ("/v1/checkins?verdict=maybe", 400),
        ("/v1/checkins?limit=100000", 400),
        ("/v1/shifts/0/attendance", 400),
        ("/v1/shifts/99999999999/attendance", 400),
        ("/v1/shifts/abc/attendance", 400),
        ("/v1/shifts/12345/attendance", 404),
    ],
)
async def test_hostile_attendance_requests_get_problems_never_500(
    world: Field, path: str, status: int
) -> None:
    response = await world.api.call("GET", path, "viewer")
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"


async def test_attendance_needs_a_token(world: Field) -> None:
    assert (await world.api.call("GET", "/v1/checkins", None)).status == 401


async def test_a_unit_first_entering_its_grid_is_checked_in_automatically(store_url: str) -> None:
    async with field_api(store_url, FieldSettings(auto_checkin=True)) as w:
        seed(w.engine, utc(START_S - 86400))
        w.device("phone-1", "p1")
        assign(w, "p1", "police-1", START_S - 600, START_S + 3600)
        await w.api.json("POST", "/v1/units/p1/status", "dispatcher", json={"status": "available"})
        auto = w.desk.auto_checkin
        assert auto is not None
        await auto.refresh()
        w.move("phone-1", "p1", 1.5, 0.5)  # in the next grid: nothing
        await auto.settle()
        assert attendance.list_checkins(w.engine) == []
        w.api.clock.advance(30)
        w.move("phone-1", "p1", *INSIDE)
        await auto.settle()
        w.api.clock.advance(30)
        w.move("phone-1", "p1", 0.6, 0.6)  # inside again: once per assignment
        await auto.settle()
        [checked] = attendance.list_checkins(w.engine)
        assert (checked.source, checked.checkin_id, checked.accepted) == ("auto", "auto:1", True)
        assert [e["source"] for e in w.events("unit.checkin")] == ["auto"]
        assert checked.at - utc(START_S) == timedelta(seconds=30)
