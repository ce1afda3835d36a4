"""Roll calls on both stores: started over a scope, sent to every called unit's devices (and OwnTracks'
reportLocation), answers counted only with a fresh fix, radios present on a fresh fix alone, the silent
pinged once more at the deadline, late answers, the close reporting the silent; progress on the stream and
in GET /v1/rollcalls/{id}; bad answers refused by name, counted, dead-lettered, changing nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from dispatch.field.desk import FieldDesk
from dispatch.settings import FieldSettings
from store import duty
from store.fixes import count_rejected
from tests.dispatch.conftest import START_S
from tests.dispatch.field.world import Field, field_api, utc
from tests.ingest.ingest_harness import wait_for
from tests.support.duty import seed

DEVICES = {"p1": ("cam-p1", "body_cam"), "a1": ("phone-a1", "phone"), "p2": ("radio-p2", "radio")}
DEVICES["a2"] = ("alice/phone", "phone")  # OwnTracks: position only
GRIDS = {"p1": "police-1", "a1": "community-1", "p2": "police-2", "a2": "community-2"}
SETTINGS = FieldSettings(rollcall_deadline_s=60.0, rollcall_late_s=60.0)


@pytest.fixture
async def world(store_url: str) -> AsyncIterator[Field]:
    async with field_api(store_url, SETTINGS) as w:
        seed(w.engine, utc(START_S - 86400))
        for unit_id, (device_id, kind) in DEVICES.items():
            w.device(device_id, unit_id, kind)
            duty.create_assignment(
                w.engine,
                unit_id=unit_id,
                grid_id=GRIDS[unit_id],
                starts_at=utc(START_S - 600),
                ends_at=utc(START_S + 7200),
                actor="test",
                now=utc(START_S - 3600),
            )
            await w.api.fleet.set_status(unit_id, "available", actor="test")
            w.move(device_id, unit_id, 0.5 if unit_id != "p2" else 1.5, 0.5, age_s=300)  # before the start
        yield w


def fresh(w: Field, lon: float, lat: float) -> dict[str, Any]:
    return {"ts": round(w.api.clock.now() * 1000), "lon": lon, "lat": lat, "acc_m": 5.0}


async def start(w: Field, scope: dict[str, Any], **body: Any) -> dict[str, Any]:
    return await w.api.json("POST", "/v1/rollcalls", "dispatcher", status=201, json={"scope": scope, **body})


async def test_a_roll_call_of_everyone_on_duty_from_start_to_report(world: Field) -> None:
    w, clock = world, world.api.clock
    called = await start(w, {"kind": "on_duty"})
    rollcall_id = called["id"]
    assert [u["unit_id"] for u in called["units"]] == ["a1", "a2", "p1", "p2"]  # v1 is off duty
    for device_id, _ in DEVICES.values():
        [sent] = w.to(device_id, "rollcall")
        assert (sent["type"], sent["rollcall_id"], sent["again"]) == ("rollcall", rollcall_id, False)
    assert ("owntracks/alice/phone/cmd", b'{"_type":"cmd","action":"reportLocation"}') in w.sent
    clock.advance(5)
    # p1 answers with a fresh fix inside its grid: present.
    answer = await w.send("cam-p1", "answer", {"rollcall_id": rollcall_id, "fix": fresh(w, 0.4, 0.4)})
    assert (answer.ok, answer.refs["result"]) == (True, "present")
    # a1 answers without a fresh fix: counted once one comes (outside its grid).
    answer = await w.send("phone-a1", "answer", {"rollcall_id": rollcall_id})
    assert (answer.ok, answer.refs["result"]) == (True, None)
    w.move("phone-a1", "a1", 1.5, 0.5)
    # p2's radio cannot answer: its fresh fix alone counts.
    w.move("radio-p2", "p2", 1.5, 0.5)
    await w.desk.rollcalls.settle()
    progress = await w.api.json("GET", f"/v1/rollcalls/{rollcall_id}", "viewer")
    results = {u["unit_id"]: u["result"] for u in progress["units"]}
    assert results == {"a1": "present_out_of_grid", "a2": None, "p1": "present", "p2": "present"}
    assert progress["counts"]["pending"] == 1
    # The deadline: the silent OwnTracks phone is pinged once more; its fix then counts as late.
    await clock.tick(60)
    await wait_for(lambda: bool(w.events("rollcall.repinged")))
    assert w.events("rollcall.repinged")[0]["units"] == ["a2"]
    assert [m["again"] for m in w.to("alice/phone", "rollcall")] == [False, True]
    await clock.tick(10)
    w.move("alice/phone", "a2", 2.5, 0.5)
    await w.desk.rollcalls.settle()
    await clock.tick(60)
    await wait_for(lambda: bool(w.events("rollcall.closed")))
    [closed] = w.events("rollcall.closed")
    assert closed["silent"] == [] and closed["counts"]["late"] == 1
    final = await w.api.json("GET", f"/v1/rollcalls/{rollcall_id}", "viewer")
    assert final["state"] == "closed"
    assert {u["unit_id"]: u["result"] for u in final["units"]}["a2"] == "late"
    answered = [e["unit_id"] for e in w.events("rollcall.answered")]
    assert sorted(answered) == ["a1", "a2", "p1", "p2"]


async def test_a_list_of_units_ends_answered_without_fix_and_silent(world: Field) -> None:
    w = world
    called = await start(w, {"kind": "units", "units": ["p1", "v1"]}, deadline_s=30)
    answer = await w.send("cam-p1", "answer", {"rollcall_id": called["id"]})
    assert answer.refs["result"] is None
    await w.api.clock.tick(30 + 60)
    await wait_for(lambda: bool(w.events("rollcall.closed")))
    [closed] = w.events("rollcall.closed")
    assert closed["silent"] == ["v1"]
    final = await w.api.json("GET", f"/v1/rollcalls/{called['id']}", "viewer")
    assert {u["unit_id"]: u["result"] for u in final["units"]} == {
        "p1": "answered_without_fix",
        "v1": "silent",
    }
    late = await w.send("cam-p1", "answer", {"rollcall_id": called["id"], "fix": fresh(w, 0.5, 0.5)})
    assert late.reasons == ("rollcall_closed",)


async def test_a_grid_roll_call_takes_the_police_grid_and_its_community_grids(world: Field) -> None:
    called = await start(world, {"kind": "grid", "grid_id": "police-1"})
    assert [u["unit_id"] for u in called["units"]] == ["a1", "p1"]
    assert {u["unit_id"]: u["grid_id"] for u in called["units"]} == {"a1": "community-1", "p1": "police-1"}


async def test_bad_answers_are_refused_by_name_counted_dead_lettered_and_change_nothing(world: Field) -> None:
    w = world
    called = await start(w, {"kind": "units", "units": ["p1"]})
    cases = [
        ("cam-p1", {"rollcall_id": "no-such-roll-call"}, "rollcall_unknown"),
        ("phone-a1", {"rollcall_id": called["id"], "fix": fresh(w, 0.5, 0.5)}, "device_not_called"),
        ("cam-p1", b'{"rollcall_id": 7}', "malformed_message"),
    ]
    for device_id, body, reason in cases:
        answer = await w.send(device_id, "answer", body)
        assert (answer.ok, answer.reasons) == (False, (reason,))
        assert count_rejected(w.engine, reason) == 1
        assert w.to(device_id)[-1]["reasons"] == [reason]
    state = await w.api.json("GET", f"/v1/rollcalls/{called['id']}", "viewer")
    assert [(u["answered_at"], u["result"]) for u in state["units"]] == [(None, None)]


@pytest.mark.parametrize(
    ("role", "body", "status"),
    [
        ("viewer", {"scope": {"kind": "on_duty"}}, 403),
        (None, {"scope": {"kind": "on_duty"}}, 401),
        ("dispatcher", {"scope": {"kind": "everyone"}}, 400),
        ("dispatcher", {"scope": {"kind": "grid"}}, 400),
        ("dispatcher", {"scope": {"kind": "grid", "grid_id": "police-9"}}, 404),
        ("dispatcher", {"scope": {"kind": "units", "units": ["nobody"]}}, 404),
        ("dispatcher", {"scope": {"kind": "units", "units": []}}, 400),
        ("dispatcher", {"scope": {"kind": "units", "units": ["v1"]}, "deadline_s": 0}, 400),
        ("dispatcher", {"scope": {"kind": "units", "units": ["bad id!"]}}, 400),
    ],
)
async def test_bad_roll_calls_get_problems_and_nothing_is_sent(
    world: Field, role: str | None, body: dict[str, Any], status: int
) -> None:
    before = len(world.sent)
    response = await world.api.call("POST", "/v1/rollcalls", role, json=body)
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    assert len(world.sent) == before


@pytest.mark.parametrize(("path", "status"), [("/v1/rollcalls/nope", 404), ("/v1/rollcalls/%00", 400)])
async def test_unknown_roll_calls_are_404(world: Field, path: str, status: int) -> None:
    assert (await world.api.call("GET", path, "viewer")).status == status


async def test_a_desk_hearing_an_answer_to_a_roll_call_it_does_not_hold_stays_quiet(
    world: Field,
) -> None:
    """A desk that does not hold an open roll call (another one started it, or it has not resumed it yet
    after taking the lead) neither refuses an answer to it as closed nor dead-letters it: the holder counts
    it and answers the device."""
    w = world
    called = await start(w, {"kind": "units", "units": ["p1"]})
    other_sent: list[tuple[str, bytes]] = []
    other = FieldDesk(
        w.engine, w.api.fleet, w.api.bus, w.api.clock, SETTINGS, lambda m, _what: other_sent.extend(m)
    )
    w.api.clock.advance(5)
    body = msgspec.json.encode({"rollcall_id": called["id"], "fix": fresh(w, 0.4, 0.4)})
    quiet = await other.take("cam-p1", "answer", body)
    assert (quiet.ok, quiet.silent) == (True, True)
    assert other_sent == []
    assert count_rejected(w.engine, "rollcall_closed") == count_rejected(w.engine, "rollcall_unknown") == 0
    counted = await w.send("cam-p1", "answer", body)  # the replica that holds it
    assert (counted.ok, counted.silent, counted.refs["result"]) == (True, False, "present")
    assert w.to("cam-p1")[-1]["outcome"] == "taken"
    await w.api.clock.tick(60 + 60)
    await wait_for(lambda: bool(w.events("rollcall.closed")))
    refused = await other.take("cam-p1", "answer", body)  # closed now: refused, as before
    assert (refused.ok, refused.silent, refused.reasons) == (False, False, ("rollcall_closed",))
    assert len(other_sent) == 1
