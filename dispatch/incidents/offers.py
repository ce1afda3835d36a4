"""Offers: offer, answer, time out, and offer the next nearest unit.

Every decision (a dispatcher's or policy's) stores a snapshot of what was seen (see `candidates`). Claiming a
unit is the fleet's atomic compare-and-set of its status (available → offered): of two dispatchers
racing for one unit, one wins and the other gets a 409.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Any

from sqlalchemy import Connection

from dispatch.blocking import run_db
from dispatch.incidents.arrival import Watched
from dispatch.incidents.candidates import (
    Seen,
    Situation,
    bound_devices,
    look,
    read_situation,
    record_unfilled,
    snapshot_values,
    surveyed,
    unit_status,
)
from dispatch.incidents.core import (
    Deps,
    Stepped,
    conflict,
    deadline_moved_later,
    iso,
    offer_key,
    progress_of,
    publish,
    step,
)
from dispatch.incidents.policy import open_slots, slot_for
from dispatch.incidents.states import ACTIVE, Event, IllegalTransitionError, Progress, apply
from dispatch.problems import Conflict, NotFound
from store import incidents as db

log = logging.getLogger(__name__)

POLICY_ACTOR = "system:policy"


async def offer_locked(
    deps: Deps, incident_id: str, *, unit_id: str | None, actor: str, decision: str
) -> db.OfferRow:
    """Offer the incident to `unit_id`, or to the nearest eligible unit for its first open slot."""
    sit = await run_db(read_situation, deps.store, incident_id)
    try:
        apply(progress_of(sit.row), Event.OFFER)
    except IllegalTransitionError as exc:
        raise conflict(exc) from exc
    needed = deps.policy.needed(sit.row.priority)
    around = await surveyed(deps, sit.row)
    if unit_id is None:
        still_open = open_slots(needed, sit.filled)
        seen = look(deps, sit.row, still_open[0] if still_open else "extra", sit.tried, around)
        if not seen.eligible:
            await record_unfilled(deps, sit, seen, actor, decision)
            raise Conflict(f"no suitable available unit for the {seen.slot} slot", excluded=seen.excluded)
        return await claim_and_offer(deps, sit, seen, seen.eligible, actor=actor, decision=decision)
    if any(e.unit_id == unit_id and e.released_at is None for e in sit.engaged):
        raise Conflict(f"unit {unit_id} is already engaged in this incident")
    kind, _ = await unit_status(deps, unit_id)
    seen = look(deps, sit.row, slot_for(kind, needed, sit.filled), sit.tried - {unit_id}, around)
    for c in seen.candidates:
        c["chosen"] = c["unit_id"] == unit_id
    return await claim_and_offer(deps, sit, seen, [unit_id], actor=actor, decision=decision, named=True)


async def _claim(deps: Deps, order: list[str], slot: str, actor: str, named: bool) -> str:
    """The first unit of `order` whose status goes available → offered (atomically); Conflict if none."""
    for unit_id in order:
        if await deps.fleet.compare_and_set_status(unit_id, ("available",), "offered", actor=actor):
            return unit_id
    if named:
        _, status = await unit_status(deps, order[0])
        raise Conflict(f"unit {order[0]} is {status}, not available", current_state=status)
    raise Conflict(f"every eligible unit for the {slot} slot was taken meanwhile")


async def claim_and_offer(
    deps: Deps,
    sit: Situation,
    seen: Seen,
    order: list[str],
    *,
    actor: str,
    decision: str,
    named: bool = False,
    automatic: bool = False,
) -> db.OfferRow:
    """Claim the first unit of `order` that is still available, and record the offer and its snapshot."""
    chosen = await _claim(deps, order, seen.slot, actor, named)
    at = deps.clock.now()
    snapshot = snapshot_values(deps, seen, sit.row.id, actor, decision, chosen, at)
    offer = db.OfferRow(
        id=str(uuid.uuid4()),
        incident_id=sit.row.id,
        unit_id=chosen,
        slot=seen.slot,
        state="pending",
        automatic=automatic,
        snapshot_id=snapshot["id"],
        offered_by=actor,
        offered_at=at,
        expires_at=at + deps.policy.settings.offer_timeout_s,
        answered_by=None,
        answered_at=None,
    )

    def record(conn: Connection, row: db.IncidentRow, after: Progress) -> None:
        db.insert_snapshot(conn, snapshot)
        db.insert_offer(conn, dataclasses.asdict(offer))

    try:
        stepped = await step(
            deps,
            sit.row.id,
            Event.OFFER,
            actor=actor,
            reason=decision,
            unit_id=chosen,
            offer_id=offer.id,
            effects=record,
        )
    except BaseException:
        await deps.fleet.compare_and_set_status(chosen, ("offered",), "available", actor=actor)
        raise
    arm_timeout(deps, offer.id, offer.expires_at)
    publish(
        deps,
        "offered",
        stepped.before,
        stepped.after,
        at,
        unit_id=chosen,
        offer_id=offer.id,
        slot=offer.slot,
        expires_at=iso(offer.expires_at),
        automatic=automatic,
        devices=await bound_devices(deps, chosen),
        snapshot_id=snapshot["id"],
        description=sit.row.description,
    )
    return offer


async def fill_locked(deps: Deps, incident_id: str, *, decision: str, actor: str = POLICY_ACTOR) -> list[str]:
    """Offer every open slot to its nearest eligible unit (policy); returns the offer ids made."""
    sit = await run_db(read_situation, deps.store, incident_id)
    if sit.row.state not in ACTIVE:
        return []
    made: list[str] = []
    tried = sit.tried
    around = await surveyed(deps, sit.row)
    for slot in open_slots(deps.policy.needed(sit.row.priority), sit.filled):
        seen = look(deps, sit.row, slot, tried, around)
        if not seen.eligible:
            await record_unfilled(deps, sit, seen, actor, decision)
            continue
        try:
            offer = await claim_and_offer(
                deps, sit, seen, seen.eligible, actor=actor, decision=decision, automatic=True
            )
        except Conflict as exc:
            log.info("policy could not offer incident %s (%s): %s", incident_id, slot, exc.detail)
            continue
        made.append(offer.id)
        tried = tried | {offer.unit_id}
    return made


def _answer_effect(offer_id: str, state: str, actor: str, at: float) -> Any:
    def answer(conn: Connection, row: db.IncidentRow, after: Progress) -> None:
        if not db.answer_offer(conn, offer_id, state, by=actor, at=at):
            raise Conflict(f"offer {offer_id} is no longer pending")

    return answer


async def _pending_offer(deps: Deps, incident_id: str, offer_id: str) -> db.OfferRow:
    def read() -> db.OfferRow | None:
        with deps.store.read() as conn:
            return db.get_offer(conn, offer_id)

    offer = await run_db(read)
    if offer is None or offer.incident_id != incident_id:
        raise NotFound(f"no offer {offer_id} for incident {incident_id}")
    if offer.state != "pending":
        raise Conflict(f"offer {offer_id} is {offer.state}, not pending", current_state=offer.state)
    return offer


async def accept_locked(deps: Deps, incident_id: str, offer_id: str, actor: str) -> Stepped:
    """The unit takes the incident: it becomes engaged (assigned) and its timeout stops."""
    offer = await _pending_offer(deps, incident_id, offer_id)
    if deps.clock.now() >= offer.expires_at:
        await expire_locked(deps, offer)
        raise Conflict(f"offer {offer_id} timed out", current_state="timed_out")
    at = deps.clock.now()
    pos = deps.fleet.position(offer.unit_id)
    answer = _answer_effect(offer_id, "accepted", actor, at)

    def engage(conn: Connection, row: db.IncidentRow, after: Progress) -> None:
        answer(conn, row, after)
        db.insert_engagement(
            conn,
            {
                "incident_id": incident_id,
                "unit_id": offer.unit_id,
                "offer_id": offer_id,
                "slot": offer.slot,
                "state": "assigned",
                "assigned_at": at,
                "accepted_lon": pos.lon if pos else None,
                "accepted_lat": pos.lat if pos else None,
            },
        )

    stepped = await step(
        deps, incident_id, Event.ACCEPT, actor=actor, unit_id=offer.unit_id, offer_id=offer_id, effects=engage
    )
    deps.timers.cancel(offer_key(offer_id))
    deps.watch.watch(
        offer.unit_id,
        Watched(
            incident_id,
            stepped.before.lon,
            stepped.before.lat,
            "assigned",
            pos.lon if pos else None,
            pos.lat if pos else None,
        ),
    )
    if not await deps.fleet.compare_and_set_status(offer.unit_id, ("offered",), "assigned", actor=actor):
        log.warning(
            "unit %s accepted incident %s but its status was no longer offered", offer.unit_id, incident_id
        )
    publish(
        deps,
        "accepted",
        stepped.before,
        stepped.after,
        at,
        unit_id=offer.unit_id,
        offer_id=offer_id,
        slot=offer.slot,
    )
    return stepped


async def lapse_locked(
    deps: Deps, offer: db.OfferRow, event: Event, actor: str, reason: str | None
) -> Stepped:
    """Decline, timeout or withdraw: the offer ends, the unit is available again, the slot is re-offered."""
    state = {Event.DECLINE: "declined", Event.TIMEOUT: "timed_out", Event.WITHDRAW: "withdrawn"}[event]
    at = deps.clock.now()
    stepped = await step(
        deps,
        offer.incident_id,
        event,
        actor=actor,
        reason=reason,
        unit_id=offer.unit_id,
        offer_id=offer.id,
        effects=_answer_effect(offer.id, state, actor, at),
    )
    deps.timers.cancel(offer_key(offer.id))
    await deps.fleet.compare_and_set_status(offer.unit_id, ("offered",), "available", actor=actor)
    kind = {Event.DECLINE: "declined", Event.TIMEOUT: "timed_out", Event.WITHDRAW: "offer_withdrawn"}[event]
    devices = await bound_devices(deps, offer.unit_id)
    publish(
        deps,
        kind,
        stepped.before,
        stepped.after,
        at,
        unit_id=offer.unit_id,
        offer_id=offer.id,
        slot=offer.slot,
        devices=devices,
    )
    if event != Event.WITHDRAW:  # a dispatcher who takes an offer back chooses the next unit
        await fill_locked(deps, offer.incident_id, decision=f"reoffer_after_{state}")
    return stepped


async def decline_locked(
    deps: Deps, incident_id: str, offer_id: str, actor: str, reason: str | None
) -> Stepped:
    """The unit declines; the next nearest eligible unit is offered."""
    offer = await _pending_offer(deps, incident_id, offer_id)
    return await lapse_locked(deps, offer, Event.DECLINE, actor, reason)


async def withdraw_locked(
    deps: Deps, incident_id: str, offer_id: str, actor: str, reason: str | None
) -> Stepped:
    """A dispatcher takes an offer back; the unit is available again."""
    offer = await _pending_offer(deps, incident_id, offer_id)
    return await lapse_locked(deps, offer, Event.WITHDRAW, actor, reason)


async def expire_locked(deps: Deps, offer: db.OfferRow) -> None:
    """No answer in time: the unit is available again and is not offered this incident again."""
    reason = f"no answer within {deps.policy.settings.offer_timeout_s:g} s"
    try:
        await lapse_locked(deps, offer, Event.TIMEOUT, "system:offer_timeout", reason)
    except Conflict as exc:  # answered in the same instant: the answer won
        log.info("offer %s timeout lost to an answer: %s", offer.id, exc.detail)


def arm_timeout(deps: Deps, offer_id: str, expires_at_s: float) -> None:
    """Arm the offer's timeout (replacing an earlier one)."""
    deps.timers.arm(offer_key(offer_id), expires_at_s, lambda: expire(deps, offer_id, expires_at_s))


async def expire(deps: Deps, offer_id: str, armed_s: float) -> None:
    """The offer timer's handler; `armed_s` is the expiry its timer was armed for."""

    def read() -> db.OfferRow | None:
        with deps.store.read() as conn:
            return db.get_offer(conn, offer_id)

    offer = await run_db(read)
    if offer is None:
        return
    async with deps.lock(offer.incident_id):
        try:
            current = await _pending_offer(deps, offer.incident_id, offer_id)
        except NotFound:
            return
        except Conflict:
            if offer.state == "timed_out":
                # A retry after the timeout committed but re-offering failed (the database went away):
                # finish the job. Filling only offers slots still open, so this is safe to repeat.
                await fill_locked(deps, offer.incident_id, decision="reoffer_after_timed_out")
            return
        if deadline_moved_later(current.expires_at, armed_s):
            arm_timeout(deps, offer_id, current.expires_at)
            return
        await expire_locked(deps, current)


def withdraw_effect(offers: list[db.OfferRow], actor: str, at: float) -> Any:
    """An effect that withdraws every pending offer (the incident ended)."""

    def withdraw(conn: Connection) -> None:
        for offer in offers:
            db.answer_offer(conn, offer.id, "withdrawn", by=actor, at=at)

    return withdraw


async def release_offered(
    deps: Deps, offers: list[db.OfferRow], row: db.IncidentRow, after: Progress, actor: str, at: float
) -> None:
    """After the incident ended: stop the withdrawn offers' timers, free their units, tell their devices."""
    for offer in offers:
        deps.timers.cancel(offer_key(offer.id))
        await deps.fleet.compare_and_set_status(offer.unit_id, ("offered",), "available", actor=actor)
        publish(
            deps,
            "offer_withdrawn",
            row,
            after,
            at,
            unit_id=offer.unit_id,
            offer_id=offer.id,
            devices=await bound_devices(deps, offer.unit_id),
        )
