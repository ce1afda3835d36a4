"""The incident loop on the real database (PostgreSQL and SQLite), real Fleet and EventBus, a ManualClock."""

from __future__ import annotations

import asyncio

import pytest

from dispatch.incidents import models as m
from dispatch.incidents.states import Event
from dispatch.problems import Conflict, InvalidParameter
from dispatch.settings import DispatchSettings
from tests.dispatch.incidents.world import START_S, World, point, world_on


@pytest.fixture
async def world(store_url: str):  # type: ignore[no-untyped-def]
    async with world_on(store_url) as w:
        yield w


async def test_report_records_the_creation_and_waits_for_a_dispatcher(world: World) -> None:
    incident_id = await world.report("P3", address="Powell St & Geary St")
    got = await world.service.get(incident_id)
    assert got.state == "new" and got.tier == "community_grid" and got.address == "Powell St & Geary St"
    assert [(h.event, h.from_state, h.to_state, h.actor) for h in got.history] == [
        ("create", None, "new", "token:1:alice")
    ]
    assert got.sla_due_at is not None and got.sla_due_at.timestamp() == START_S + 1800
    assert [e["incident_id"] for e in world.events("created")] == [incident_id]
    listed = await world.service.list_incidents(states=("new",))
    assert [i.id for i in listed.incidents] == [incident_id]


async def test_offer_times_out_and_goes_to_the_next_nearest(world: World) -> None:
    world.add_unit("near", at=point(0, 200))
    world.add_unit("mid", at=point(90, 400))
    world.add_unit("far", at=point(180, 900))
    world.add_unit("busy", status="busy", at=point(270, 50))
    incident_id = await world.report("P2")  # auto-dispatched
    got = await world.service.get(incident_id)
    assert got.state == "offered" and [(o.unit_id, o.state) for o in got.offers] == [("near", "pending")]
    assert world.status("near") == "offered"
    snapshot = got.snapshots[0]
    assert snapshot.decision == "auto_offer" and snapshot.chosen_unit_id == "near"
    by_unit = {c["unit_id"]: c for c in snapshot.candidates}
    assert by_unit["busy"]["eligible"] is False and by_unit["busy"]["status"] == "busy"
    assert by_unit["near"]["distance_m"] == pytest.approx(200, abs=0.5) and by_unit["near"]["fix_age_s"] == 0

    await world.advance(60)  # DispatchSettings.offer_timeout_s
    got = await world.service.get(incident_id)
    assert [(o.unit_id, o.state) for o in got.offers] == [("near", "timed_out"), ("mid", "pending")]
    assert world.status("near") == "available" and world.status("mid") == "offered"
    assert got.snapshots[1].decision == "reoffer_after_timed_out"
    assert got.snapshots[1].query["excluding_already_offered"] == ["near"]
    assert [e["unit_id"] for e in world.events("timed_out")] == ["near"]

    await world.advance(60)
    got = await world.service.get(incident_id)
    # "near" is free and nearest again, but it is never re-offered this incident.
    assert [(o.unit_id, o.state) for o in got.offers][-1] == ("far", "pending")


async def test_the_loop_from_accept_to_close_with_intervals(world: World) -> None:
    world.add_unit("u1", at=point(45, 1500))
    incident_id = await world.report("P3")
    await world.advance(30)
    offer = await world.service.offer(incident_id, unit_id=None, actor="token:1:alice")
    await world.advance(20)
    await world.service.accept(incident_id, offer.id, actor="token:1:alice")
    assert world.status("u1") == "assigned"
    await world.advance(40)
    world.move("u1", point(45, 1300))  # left: detected en route (moved ≥ 100 m from where it accepted)
    await world.service.settle()
    assert (await world.service.get(incident_id)).state == "en_route"
    await world.advance(120)
    world.move("u1", point(45, 300))
    await world.service.settle()
    assert (await world.service.get(incident_id)).state == "en_route"
    await world.advance(60)
    world.move("u1", point(45, 40))  # within 75 m: detected on scene
    await world.service.settle()
    got = await world.service.get(incident_id)
    assert got.state == "on_scene" and world.status("u1") == "on_scene"
    assert got.intervals == m.IntervalsOut(processing_s=50.0, turnout_s=40.0, travel_s=180.0, total_s=270.0)
    assert got.sla_due_at is None
    await world.service.resolve(incident_id, actor="token:1:alice")
    assert world.status("u1") == "available"
    await world.service.review(
        incident_id, m.FeedbackIn(outcome="advice given", officer="PC 17"), actor="token:1:alice"
    )
    await world.service.review(incident_id, m.EvaluationIn(score=4, evaluator="Sgt Lee"), actor="token:2:lee")
    await world.service.close(incident_id, actor="token:2:lee")
    got = await world.service.get(incident_id)
    assert [h.to_state for h in got.history] == [
        "new",
        "offered",
        "dispatched",
        "en_route",
        "on_scene",
        "resolved",
        "feedback_recorded",
        "evaluated",
        "closed",
    ]
    assert [h.actor for h in got.history if h.event in ("en_route", "arrive")] == ["system:telemetry"] * 2
    assert got.feedback is not None and got.feedback.officer == "PC 17"
    assert got.evaluation is not None and got.evaluation.score == 4 and got.allowed == []
    assert [h.seq for h in got.history] == list(range(1, 10))
    kinds = [e["type"] for e in world.events()]
    for kind in ("created", "offered", "accepted", "en_route", "arrived", "resolved", "closed"):
        assert f"incident.{kind}" in kinds


async def test_illegal_steps_are_409_naming_the_state(world: World) -> None:
    incident_id = await world.report("P4")
    with pytest.raises(Conflict) as caught:
        await world.service.resolve(incident_id, actor="token:1:alice")
    assert caught.value.current_state == "new" and "new" in caught.value.detail
    with pytest.raises(Conflict) as caught:
        await world.service.unit_step(incident_id, Event.ARRIVE, unit_id=None, actor="token:1:alice")
    assert caught.value.current_state == "new"
    await world.service.cancel(incident_id, actor="token:1:alice", reason="caller rang back")
    with pytest.raises(Conflict) as caught:
        await world.service.escalate(incident_id, actor="token:1:alice")
    assert caught.value.current_state == "cancelled"


async def test_p1_offers_a_police_officer_and_an_auxiliary(world: World) -> None:
    world.add_unit("pol-near", at=point(0, 300))
    world.add_unit("pol-far", at=point(0, 800))
    world.add_unit("aux", "auxiliary", at=point(180, 600))
    incident_id = await world.report("P1")
    got = await world.service.get(incident_id)
    assert sorted((o.slot, o.unit_id) for o in got.offers) == [("auxiliary", "aux"), ("police", "pol-near")]
    for offer in got.offers:
        await world.service.accept(incident_id, offer.id, actor="token:1:alice")
    got = await world.service.get(incident_id)
    assert got.state == "dispatched" and {u.unit_id for u in got.units} == {"pol-near", "aux"}
    with pytest.raises(InvalidParameter):  # two units could go en route: which one?
        await world.service.unit_step(incident_id, Event.EN_ROUTE, unit_id=None, actor="token:1:alice")
    await world.service.unit_step(incident_id, Event.EN_ROUTE, unit_id="aux", actor="token:1:alice")
    await world.service.unit_step(incident_id, Event.ARRIVE, unit_id="pol-near", actor="token:1:alice")
    got = await world.service.get(incident_id)
    assert got.state == "on_scene" and got.intervals.travel_s == 0.0


async def test_a_decline_goes_to_the_next_nearest(world: World) -> None:
    world.add_unit("a", at=point(0, 100))
    world.add_unit("b", at=point(0, 200))
    incident_id = await world.report("P2")
    first = (await world.service.get(incident_id)).offers[0]
    await world.service.decline(incident_id, first.id, actor="token:1:alice", reason="on a break")
    got = await world.service.get(incident_id)
    assert [(o.unit_id, o.state) for o in got.offers] == [("a", "declined"), ("b", "pending")]
    assert world.status("a") == "available"
    with pytest.raises(Conflict) as caught:
        await world.service.accept(incident_id, first.id, actor="token:1:alice")
    assert caught.value.current_state == "declined"


async def test_two_dispatchers_racing_for_one_unit_get_one_success(world: World) -> None:
    world.add_unit("only", at=point(0, 100))
    first, second = await world.report("P3"), await world.report("P3", at=point(90, 500))
    results = await asyncio.gather(
        world.service.offer(first, unit_id="only", actor="token:1:alice"),
        world.service.offer(second, unit_id="only", actor="token:2:bob"),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, m.OfferOut)]
    losses = [r for r in results if isinstance(r, Conflict)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert losses[0].current_state == "offered"
    assert world.status("only") == "offered"
    states = {(await world.service.get(i)).state for i in (first, second)}
    assert states == {"offered", "new"}


async def test_an_offer_reaches_the_device_and_its_mqtt_reply_is_taken(world: World) -> None:
    world.add_unit("u1", at=point(0, 100), device="phone-1")
    world.add_unit("u2", at=point(0, 300), device="phone-2")
    incident_id = await world.report("P2")
    offered = world.events("offered")[0]
    assert offered["devices"] == ["phone-1"]
    wrong = await world.service.handle_device_reply(
        "phone-2", f'{{"offer_id":"{offered["offer_id"]}","answer":"accept"}}'
    )
    assert not wrong.ok and "not bound" in wrong.detail
    assert not (await world.service.handle_device_reply("phone-1", b"{not json")).ok
    reply = await world.service.handle_device_reply(
        "phone-1", f'{{"offer_id":"{offered["offer_id"]}","answer":"accept"}}'
    )
    assert reply.ok
    got = await world.service.get(incident_id)
    assert got.state == "dispatched" and got.history[-1].actor == "device:phone-1"


async def test_a_breached_sla_escalates_tier_by_tier(world: World) -> None:
    incident_id = await world.report("P4")  # 3600/7200/14400/28800 s, no units around
    await world.advance(3600)
    got = await world.service.get(incident_id)
    assert got.state == "escalated" and got.tier == "police_grid"
    breach = got.history[-1]
    assert (
        breach.actor == "system:sla"
        and breach.from_tier == "community_grid"
        and "3600 s" in (breach.reason or "")
    )
    assert got.sla_due_at is not None and got.sla_due_at.timestamp() == START_S + 3600 + 7200
    await world.advance(7200 + 14400 + 28800)
    got = await world.service.get(incident_id)
    assert got.tier == "command_centre" and got.sla_due_at is None
    assert [h.event for h in got.history[1:]] == ["escalate", "escalate", "escalate", "sla_breach"]
    assert [e["tier"] for e in world.events("escalated")] == ["police_grid", "station", "command_centre"]
    assert len(world.events("sla_breached")) == 1


async def test_cancel_withdraws_offers_and_frees_units(world: World) -> None:
    world.add_unit("pol", at=point(0, 100))
    world.add_unit("aux", "auxiliary", at=point(0, 200))
    incident_id = await world.report("P1")
    offers = (await world.service.get(incident_id)).offers
    await world.service.accept(incident_id, offers[0].id, actor="token:1:alice")
    await world.service.cancel(incident_id, actor="token:1:alice", reason="false alarm")
    got = await world.service.get(incident_id)
    assert got.state == "cancelled" and {o.state for o in got.offers} == {"accepted", "withdrawn"}
    assert world.status("pol") == world.status("aux") == "available"
    assert [u.state for u in got.units] == ["released"]
    await world.advance(120)  # the withdrawn offer's timer is gone: nothing happens
    assert (await world.service.get(incident_id)).history[-1].event == "cancel"


async def test_timers_survive_a_restart(store_url: str) -> None:
    async with world_on(store_url) as first:
        first.add_unit("a", at=point(0, 100))
        first.add_unit("b", at=point(0, 200))
        incident_id = await first.report("P2")
    async with world_on(store_url, DispatchSettings()) as second:
        second.clock.advance(0)
        # The new process knows the units from the database; positions come back with new fixes.
        second.move("a", point(0, 100))
        second.move("b", point(0, 200))
        await second.advance(60)
        got = await second.service.get(incident_id)
        assert [(o.unit_id, o.state) for o in got.offers] == [("a", "timed_out"), ("b", "pending")]
