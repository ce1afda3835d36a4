"""The incident loop on the real San Francisco grids, on PostgreSQL and SQLite: an incident's place gives
it its grids; the recommendation cascade (own grids' holders, then the touching grids', then the nearest
anywhere) with every pick's and exclusion's reason; the tiers' owners told as the incident climbs; a new
priority re-arming the SLA; a duplicate merged with its call and times kept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from dispatch.incidents.notify import device_messages
from dispatch.problems import Conflict, InvalidParameter
from geo import haversine_m
from tests.dispatch.incidents.sf_grids import (
    COMMUNITY,
    NEAR_COMMUNITY,
    NEAR_POLICE,
    POLICE,
    assign,
    load_sf,
)
from tests.dispatch.incidents.world import CENTRE, START_S, World, point, world_on


@pytest.fixture
async def world(store_url: str) -> AsyncIterator[World]:
    async with world_on(store_url) as w:
        load_sf(w)
        yield w


def _staff(world: World) -> None:
    """Holders of the incident's grids far off, holders of touching grids nearer, a free unit nearest."""
    world.add_unit("aux-own", "auxiliary", at=point(0, 900), device="phone-aux-own")
    world.add_unit("cop-own", "police", at=point(90, 1200), device="phone-cop-own")
    world.add_unit("aux-near", "auxiliary", at=point(250, 600))
    world.add_unit("cop-near", "police", at=point(180, 500))
    world.add_unit("free", "police", at=point(45, 50))
    for unit_id, grid_id in (
        ("aux-own", COMMUNITY),
        ("cop-own", POLICE),
        ("aux-near", NEAR_COMMUNITY),
        ("cop-near", NEAR_POLICE),
    ):
        assign(world, unit_id, grid_id)


async def test_an_incident_is_placed_in_its_grids_and_shows_them(world: World) -> None:
    incident_id = await world.report("P3")
    got = await world.service.get(incident_id)
    assert (got.community_grid_id, got.police_grid_id) == (COMMUNITY, POLICE)
    assert (got.community_grid_name, got.police_grid_name) == ("Financial District/South Beach", "CENTRAL")
    listed = await world.service.list_incidents()
    assert (listed.incidents[0].community_grid_id, listed.incidents[0].police_grid_id) == (COMMUNITY, POLICE)
    (created,) = world.events("created")
    assert created["community_grid_id"] == COMMUNITY and created["police_grid_id"] == POLICE
    # Out in the Pacific there is no grid: nothing is made up.
    far = await world.service.get(await world.report("P3", at=(-123.2, 37.7)))
    assert far.community_grid_id is None and far.police_grid_id is None


async def test_the_cascade_picks_own_grids_then_neighbours_then_the_nearest(world: World) -> None:
    _staff(world)
    incident_id = await world.report("P3")
    rec = await world.service.recommendations(incident_id)
    (slot,) = rec.slots
    picks = [(c.unit_id, c.basis, c.grid_id) for c in slot.candidates]
    assert picks == [
        ("aux-own", "community_grid", COMMUNITY),
        ("cop-own", "police_grid", POLICE),
        ("cop-near", "neighbouring_grid", NEAR_POLICE),
        ("aux-near", "neighbouring_grid", NEAR_COMMUNITY),
        ("free", "nearest", None),
    ]
    first = slot.candidates[0]
    assert first.reason.startswith("#1 holder of the incident's community grid, Financial District/South")
    assert "#3 holder of a neighbouring police grid, SOUTHERN: 500 m" in slot.candidates[2].reason
    assert slot.candidates[4].reason.startswith("#5 nearest available police: 50 m")
    # Exact distances and ETAs, as the nearest search measures them.
    pos = world.fleet.position("aux-own")
    assert pos is not None
    exact = haversine_m(CENTRE[0], CENTRE[1], pos.lon, pos.lat)
    assert first.distance_m == round(exact, 1) and first.eta_s == round(exact / 1.4, 1)
    assert (rec.community_grid_id, rec.police_grid_id) == (COMMUNITY, POLICE)


async def test_holders_passed_over_say_why_and_policy_fills_each_slot_in_cascade_order(world: World) -> None:
    _staff(world)
    await world.fleet.set_status("cop-own", "busy", actor="test")
    incident_id = await world.report("P1")  # auto: a police officer and an auxiliary
    got = await world.service.get(incident_id)
    assert sorted((o.slot, o.unit_id) for o in got.offers) == [
        ("auxiliary", "aux-own"),
        ("police", "cop-near"),
    ]
    police = next(s for s in got.snapshots if s.slot == "police")
    by_unit = {c["unit_id"]: c for c in police.candidates}
    assert by_unit["cop-own"]["eligible"] is False
    assert by_unit["cop-own"]["reason"] == "holder of the incident's police grid, CENTRAL: status busy"
    assert by_unit["aux-own"]["reason"].endswith("kind auxiliary does not fill the police slot")
    assert police.query["grids"]["community_grid_id"] == COMMUNITY
    assert police.query["grids"]["holders"]["police_grid"] == ["cop-own"]
    rec = await world.service.recommendations(await world.report("P3"))
    passed = {p.unit_id: p for p in rec.slots[0].passed_over}
    assert passed["cop-own"].basis == "police_grid" and passed["cop-own"].reason.endswith("status busy")
    assert passed["aux-own"].reason.endswith("status offered")


async def test_each_tier_s_owners_are_told_as_the_incident_climbs(world: World) -> None:
    _staff(world)
    incident_id = await world.report("P3")
    (community,) = world.events("tier_notified")
    assert (community["tier"], community["owner"], community["grid_id"]) == (
        "community_grid",
        "units",
        COMMUNITY,
    )
    assert (community["units"], community["devices"]) == (["aux-own"], ["phone-aux-own"])
    topics = dict(device_messages(community))
    assert "outpost/v1/events/incident.tier_notified" in topics
    notice = msgspec.json.decode(topics["outpost/v1/devices/phone-aux-own/offers"])
    assert notice["type"] == "incident_notice" and notice["incident_id"] == incident_id

    await world.service.escalate(incident_id, actor="token:1:alice", reason="needs an officer")
    police = world.events("tier_notified")[-1]
    assert (police["tier"], police["grid_id"], police["units"]) == ("police_grid", POLICE, ["cop-own"])
    assert police["why"] == "needs an officer"

    await world.advance(3600)  # P3's police-grid target: the SLA timer escalates to the station
    station = world.events("tier_notified")[-1]
    assert (station["tier"], station["owner"], station["units"], station["devices"]) == (
        "station",
        "station",
        [],
        [],
    )
    assert station["why"].startswith("SLA breached")
    assert [t.event for t in (await world.service.get(incident_id)).history][-2:] == ["escalate", "escalate"]


async def test_a_transfer_moves_the_incident_up_to_a_named_tier(world: World) -> None:
    _staff(world)
    incident_id = await world.report("P4")
    stepped = await world.service.transfer(incident_id, to="station", actor="token:1:alice", reason="riot")
    assert stepped.after.tier_name == "station" and stepped.after.state.value == "escalated"
    got = await world.service.get(incident_id)
    assert [(h.event, h.to_tier, h.reason) for h in got.history[1:]] == [
        ("escalate", "police_grid", "transferred to station: riot"),
        ("escalate", "station", "transferred to station: riot"),
    ]
    assert got.sla_due_at is not None and got.sla_due_at.timestamp() == START_S + 14400  # P4 at the station
    assert [e["tier"] for e in world.events("tier_notified")] == ["community_grid", "station"]
    with pytest.raises(Conflict, match="a transfer moves it up"):
        await world.service.transfer(incident_id, to="police_grid", actor="token:1:alice")


async def test_a_new_priority_is_audited_and_re_arms_the_sla(world: World) -> None:
    incident_id = await world.report("P4")
    await world.advance(100)
    stepped = await world.service.change_priority(incident_id, "P2", actor="token:1:alice", reason="weapon")
    assert stepped.transition.event.value == "change_priority" and stepped.after.state.value == "new"
    got = await world.service.get(incident_id)
    assert got.priority == "P2" and got.sla_due_at is not None
    assert got.sla_due_at.timestamp() == START_S + 600  # P2's community-grid target, from the report
    assert (got.history[-1].event, got.history[-1].reason) == ("change_priority", "priority P4 → P2: weapon")
    (changed,) = world.events("priority_changed")
    assert (changed["from_priority"], changed["priority"]) == ("P4", "P2")
    assert world.service.deps.timers.next_due_s == START_S + 600
    await world.advance(500)
    assert (await world.service.get(incident_id)).tier == "police_grid"
    with pytest.raises(Conflict, match="already P2"):
        await world.service.change_priority(incident_id, "P2", actor="token:1:alice")


async def test_a_duplicate_is_merged_with_its_call_and_times_kept(world: World) -> None:
    world.add_unit("u1", "police", at=point(0, 300))
    survivor = await world.report("P3", reporter="caller one")
    await world.advance(120)
    duplicate = await world.report("P3", reporter="caller two", description="same fight", at=point(90, 40))
    await world.service.offer(duplicate, unit_id="u1", actor="token:1:alice")
    await world.advance(30)
    stepped = await world.service.merge(duplicate, into=survivor, actor="token:1:alice", reason="same")
    assert stepped.after.state.value == "merged"
    assert world.status("u1") == "available"  # its offer withdrawn, as a cancel does
    dup = await world.service.get(duplicate)
    assert dup.merged_into == survivor and dup.ended_at is not None
    assert (dup.history[-1].event, dup.history[-1].reason) == ("merge", f"duplicate of {survivor}: same")
    got = await world.service.get(survivor)
    assert [(c.incident_id, c.reporter, c.reported_at.timestamp()) for c in got.calls] == [
        (survivor, "caller one", START_S),
        (duplicate, "caller two", START_S + 120),
    ]
    assert got.calls[1].merged_at is not None and got.calls[1].merged_at.timestamp() == START_S + 150
    assert got.calls[1].description == "same fight"
    assert (got.history[-1].event, got.state) == ("absorb", "new")
    assert [e["duplicate_id"] for e in world.events("absorbed")] == [duplicate]
    assert world.events("merged")[0]["merged_into"] == survivor

    with pytest.raises(Conflict, match="already merged into"):
        await world.service.merge(duplicate, into=survivor, actor="token:1:alice")
    with pytest.raises(Conflict, match="into itself"):
        await world.service.merge(survivor, into=survivor, actor="token:1:alice")
    third = await world.report("P3")
    with pytest.raises(Conflict, match="was itself merged into"):
        await world.service.merge(third, into=duplicate, actor="token:1:alice")
    await world.service.cancel(survivor, actor="token:1:alice")
    with pytest.raises(Conflict, match="is cancelled: merge into an incident still open"):
        await world.service.merge(third, into=survivor, actor="token:1:alice")
    with pytest.raises(InvalidParameter):
        await world.service.merge(third, into="no-such-incident", actor="token:1:alice")
    # A chain: what was merged into a duplicate's survivor stays listed on the survivor it ends in.
    await world.advance(10)
    fourth = await world.report("P3", reporter="caller four")
    await world.service.merge(fourth, into=third, actor="token:1:alice")
    fifth = await world.report("P3")
    await world.service.merge(third, into=fifth, actor="token:1:alice")
    assert [c.incident_id for c in (await world.service.get(fifth)).calls] == [fifth, third, fourth]
