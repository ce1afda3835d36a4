"""The incident after dispatch: units' steps (en route, on scene), resolution, ending (cancel, transfer),
escalation and its SLA deadlines, feedback, evaluation and closing.

Each function runs under the incident's lock (the service takes it) and records one step via `core.step`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import Connection

from dispatch.blocking import run_db
from dispatch.incidents import models as m
from dispatch.incidents.arrival import Watched
from dispatch.incidents.candidates import Situation, read_situation
from dispatch.incidents.core import (
    Deps,
    Effects,
    Stepped,
    arm_sla,
    conflict,
    deadline_moved_later,
    iso,
    progress_of,
    publish,
    step,
)
from dispatch.incidents.escalation import breach_event, breach_reason
from dispatch.incidents.offers import release_offered, withdraw_effect
from dispatch.incidents.states import TIERS, Event, IllegalTransitionError, Progress, apply
from dispatch.incidents.tiers import notify_tier
from dispatch.problems import Conflict, InvalidParameter, NotFound
from store import incidents as db

log = logging.getLogger(__name__)

# The unit step each event makes, and the engagement states it may start from.
_UNIT_STEPS: dict[Event, tuple[str, tuple[str, ...]]] = {
    Event.EN_ROUTE: ("en_route", ("assigned",)),
    Event.ARRIVE: ("on_scene", ("assigned", "en_route")),
}
_ENDINGS = {
    Event.RESOLVE: "resolved",
    Event.CANCEL: "cancelled",
    Event.TRANSFER: "transferred",
    Event.MERGE: "merged",
}


def _pick_unit(sit: Situation, event: Event, unit_id: str | None) -> db.EngagementRow:
    new_state, starts = _UNIT_STEPS[event]
    engaged = [e for e in sit.engaged if e.released_at is None]
    if unit_id is not None:
        found = next((e for e in engaged if e.unit_id == unit_id), None)
        if found is None:
            raise NotFound(f"unit {unit_id} is not engaged in incident {sit.row.id}")
        if found.state not in starts:
            raise Conflict(
                f"unit {unit_id} is {found.state}: it cannot go {new_state}", current_state=found.state
            )
        return found
    able = [e for e in engaged if e.state in starts]
    if len(able) == 1:
        return able[0]
    if not able:
        raise Conflict(
            f"no unit of incident {sit.row.id} can go {new_state} (incident is {sit.row.state})",
            current_state=sit.row.state,
        )
    raise InvalidParameter("unit_id", f"{len(able)} units could go {new_state}: name one")


async def unit_step_locked(
    deps: Deps, incident_id: str, event: Event, *, unit_id: str | None, actor: str, reason: str | None
) -> Stepped:
    """A unit reports (or telemetry shows) en route or on scene; the incident follows its first unit."""
    sit = await run_db(read_situation, deps.store, incident_id)
    try:
        apply(progress_of(sit.row), event)  # the state machine words the 409, naming the current state
    except IllegalTransitionError as exc:
        raise conflict(exc) from exc
    unit = _pick_unit(sit, event, unit_id)
    new_state, _ = _UNIT_STEPS[event]
    at = deps.clock.now()

    def record(conn: Connection, row: db.IncidentRow, after: Progress) -> None:
        db.update_engagement(conn, incident_id, unit.unit_id, {"state": new_state, f"{new_state}_at": at})

    stepped = await step(
        deps, incident_id, event, actor=actor, reason=reason, unit_id=unit.unit_id, effects=record
    )
    if not await deps.fleet.compare_and_set_status(unit.unit_id, (unit.state,), new_state, actor=actor):
        log.warning("unit %s went %s but its status was no longer %s", unit.unit_id, new_state, unit.state)
    if event == Event.ARRIVE:
        deps.watch.forget(unit.unit_id)
    else:
        deps.watch.advance(unit.unit_id, new_state)
    kind = "arrived" if event == Event.ARRIVE else "en_route"
    publish(deps, kind, stepped.before, stepped.after, stepped.at, unit_id=unit.unit_id, reason=reason)
    return stepped


async def end_locked(
    deps: Deps,
    incident_id: str,
    event: Event,
    *,
    actor: str,
    reason: str | None,
    transferred_to: str | None = None,
    more: Effects | None = None,
    published: Mapping[str, Any] | None = None,
) -> Stepped:
    """Resolve, cancel, transfer or merge: every engaged unit is released and every pending offer
    withdrawn; `more` runs in the same transaction (its column changes join), `published` joins the event."""
    sit = await run_db(read_situation, deps.store, incident_id)
    engaged = [e for e in sit.engaged if e.released_at is None]
    pending = [o for o in sit.offers if o.state == "pending"]
    at = deps.clock.now()
    withdraw = withdraw_effect(pending, actor, at)

    def record(conn: Connection, row: db.IncidentRow, after: Progress) -> dict[str, Any]:
        db.release_engagements(conn, incident_id, at=at, reason=_ENDINGS[event])
        withdraw(conn)
        changes: dict[str, Any] = {"transferred_to": transferred_to} if transferred_to else {}
        if more is not None:
            changes.update(more(conn, row, after) or {})
        return changes

    stepped = await step(deps, incident_id, event, actor=actor, reason=reason, effects=record)
    for unit in engaged:
        deps.watch.forget(unit.unit_id)
        if not await deps.fleet.compare_and_set_status(unit.unit_id, (unit.state,), "available", actor=actor):
            log.warning(
                "unit %s released from %s but its status was no longer %s",
                unit.unit_id,
                incident_id,
                unit.state,
            )
    await release_offered(deps, pending, stepped.before, stepped.after, actor, at)
    extra = {"transferred_to": transferred_to} if transferred_to else {}
    publish(
        deps,
        _ENDINGS[event],
        stepped.before,
        stepped.after,
        at,
        reason=reason,
        units=[u.unit_id for u in engaged],
        **extra,
        **(published or {}),
    )
    return stepped


async def escalate_locked(deps: Deps, incident_id: str, *, actor: str, reason: str | None) -> Stepped:
    """Hand the incident to the next tier (a dispatcher's decision); the new tier's SLA starts."""
    stepped = await step(deps, incident_id, Event.ESCALATE, actor=actor, reason=reason)
    _publish_escalated(deps, stepped, reason, breached=False)
    await notify_tier(deps, stepped.before, stepped.after, stepped.at, why=reason or "escalated")
    return stepped


async def transfer_up_locked(
    deps: Deps, incident_id: str, to_tier: int, *, actor: str, reason: str | None
) -> Stepped:
    """Move the incident up to `to_tier`, one recorded escalation per tier passed; the new tier's SLA
    starts and its owners are told. 409 unless `to_tier` is above the incident's tier."""
    sit = await run_db(read_situation, deps.store, incident_id)
    if to_tier <= sit.row.tier:
        raise Conflict(
            f"incident {incident_id} is at {TIERS[sit.row.tier]}: a transfer moves it up, "
            f"not to {TIERS[to_tier]}",
            current_state=sit.row.state,
        )
    why = f"transferred to {TIERS[to_tier]}" + (f": {reason}" if reason else "")
    while True:
        stepped = await step(deps, incident_id, Event.ESCALATE, actor=actor, reason=why)
        _publish_escalated(deps, stepped, why, breached=False)
        if stepped.after.tier >= to_tier:
            break
    await notify_tier(deps, stepped.before, stepped.after, stepped.at, why=why)
    return stepped


def _publish_escalated(deps: Deps, stepped: Stepped, reason: str | None, *, breached: bool) -> None:
    from_tier = progress_of(stepped.before).tier_name
    due = stepped.changes.get("sla_due_at")
    publish(
        deps,
        "escalated" if stepped.transition.event == Event.ESCALATE else "sla_breached",
        stepped.before,
        stepped.after,
        stepped.at,
        from_tier=from_tier,
        reason=reason,
        sla_breached=breached,
        sla_due_at=iso(None if due is None else float(due)),
    )


async def sla_due(deps: Deps, incident_id: str, armed_s: float) -> None:
    """The SLA timer's handler: a breached deadline escalates (or, at the top tier, is recorded);
    `armed_s` is the deadline its timer was armed for."""
    async with deps.lock(incident_id):
        try:
            sit = await run_db(read_situation, deps.store, incident_id)
        except NotFound:
            return
        row = sit.row
        if row.sla_due_at is None:
            return
        if deadline_moved_later(row.sla_due_at, armed_s):  # moved meanwhile: wait for the new one
            arm_sla(deps, incident_id, row.sla_due_at)
            return
        progress = progress_of(row)
        event = breach_event(progress)
        target_s = deps.policy.sla.target_s(row.priority, row.tier)
        reason = breach_reason(row.priority, progress, target_s)
        stop = None if event == Event.ESCALATE else (lambda c, r, a: {"sla_due_at": None})
        stepped = await step(deps, incident_id, event, actor="system:sla", reason=reason, effects=stop)
        log.warning("incident %s: %s", incident_id, reason)
        _publish_escalated(deps, stepped, reason, breached=True)
        if event == Event.ESCALATE:
            await notify_tier(deps, stepped.before, stepped.after, stepped.at, why=reason)


@dataclass(frozen=True)
class _Review:
    """A step that records a review of the handling: its event, table, reason, and what is published."""

    event: Event
    insert: Callable[[Connection, dict[str, Any]], object]
    kind: str
    reason: Callable[[dict[str, Any]], str]
    published: tuple[str, ...]


_REVIEWS: dict[type, _Review] = {
    m.FeedbackIn: _Review(
        Event.FEEDBACK,
        db.insert_feedback,
        "feedback_recorded",
        lambda f: f["outcome"],
        ("outcome", "officer"),
    ),
    m.EvaluationIn: _Review(
        Event.EVALUATE,
        db.insert_evaluation,
        "evaluated",
        lambda f: f"score {f['score']}",
        ("score", "evaluator"),
    ),
}


async def review_locked(
    deps: Deps, incident_id: str, body: m.FeedbackIn | m.EvaluationIn, *, actor: str
) -> Stepped:
    """Record the handling officer's feedback (after resolution) or the evaluation of the handling (after
    feedback), by the type of `body`."""
    review = _REVIEWS[type(body)]
    fields = msgspec.structs.asdict(body)
    published = {k: fields[k] for k in review.published}
    return await _record_step(
        deps, incident_id, review, fields, actor=actor, reason=review.reason(fields), published=published
    )


async def _record_step(
    deps: Deps,
    incident_id: str,
    review: _Review,
    fields: dict[str, Any],
    *,
    actor: str,
    reason: str,
    published: dict[str, Any],
) -> Stepped:
    """Step the incident by the review's event, inserting `fields` (with who and when) in the same
    transaction."""
    at = deps.clock.now()

    def record(conn: Connection, row: db.IncidentRow, after: Progress) -> None:
        review.insert(conn, {"incident_id": incident_id, **fields, "recorded_by": actor, "at": at})

    stepped = await step(deps, incident_id, review.event, actor=actor, reason=reason, effects=record)
    publish(deps, review.kind, stepped.before, stepped.after, at, **published)
    return stepped


async def close_locked(deps: Deps, incident_id: str, *, actor: str, reason: str | None) -> Stepped:
    """Close an evaluated incident."""
    stepped = await step(deps, incident_id, Event.CLOSE, actor=actor, reason=reason)
    publish(deps, "closed", stepped.before, stepped.after, stepped.at, reason=reason)
    return stepped


def watched_from(engagement: db.EngagementRow, lon: float, lat: float) -> Watched:
    """The arrival watch's record of an engaged unit."""
    return Watched(
        engagement.incident_id, lon, lat, engagement.state, engagement.accepted_lon, engagement.accepted_lat
    )
