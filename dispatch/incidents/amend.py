"""A dispatcher corrects an incident: a new priority, or a duplicate report merged into the incident it
duplicates.

A new priority is one audited step (`change_priority`, the state kept); a running SLA deadline is moved to
the new priority's target for the tier (from when the incident entered it, so a deadline already past
escalates at once), and a priority that policy offers automatically gets its open slots offered.

A merge ends the duplicate (`merge` → merged, `merged_into` set; its offers withdrawn and its units
released, as a cancel does) and records `absorb` on the survivor, in one transaction; the duplicate's row
keeps its report, reporter and times, and the survivor's record lists it among its calls. Merging into
itself, into a finished incident (closed, cancelled, transferred or merged), or a duplicate merged
already, is a 409 saying which.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from dispatch.blocking import run_db
from dispatch.incidents.candidates import read_situation
from dispatch.incidents.core import Deps, Stepped, iso, progress_of, publish, step
from dispatch.incidents.lifecycle import end_locked
from dispatch.incidents.offers import fill_locked
from dispatch.incidents.states import TERMINAL, Event, IllegalTransitionError, Progress, State, apply
from dispatch.problems import Conflict, InvalidParameter, NotFound
from store import incidents as db


async def change_priority_locked(
    deps: Deps, incident_id: str, priority: str, *, actor: str, reason: str | None
) -> Stepped:
    """Re-rate the incident; its SLA deadline follows the new priority."""
    sit = await run_db(read_situation, deps.store, incident_id)
    was = sit.row.priority
    why = f"priority {was} → {priority}" + (f": {reason}" if reason else "")

    def record(conn: Connection, row: db.IncidentRow, after: Progress) -> dict[str, Any]:
        if row.priority == priority:
            raise Conflict(f"incident {incident_id} is already {priority}", current_state=row.state)
        changes: dict[str, Any] = {"priority": priority}
        if row.sla_due_at is not None:
            changes["sla_due_at"] = deps.policy.sla.due_at(priority, row.tier, row.tier_entered_at)
        return changes

    stepped = await step(deps, incident_id, Event.CHANGE_PRIORITY, actor=actor, reason=why, effects=record)
    due = stepped.changes.get("sla_due_at")
    publish(
        deps,
        "priority_changed",
        stepped.before,
        stepped.after,
        stepped.at,
        priority=priority,
        from_priority=stepped.before.priority,
        reason=reason,
        sla_due_at=iso(None if due is None else float(due)),
    )
    if deps.policy.automatic(priority):
        await fill_locked(deps, incident_id, decision="reoffer_after_priority_change")
    return stepped


def _finished(row: db.IncidentRow) -> str | None:
    """Why an incident cannot take a duplicate (None: it can)."""
    if row.state == State.MERGED.value:
        return f"incident {row.id} was itself merged into {row.merged_into}: merge into that one"
    if row.state in TERMINAL:
        return f"incident {row.id} is {row.state}: merge into an incident still open"
    return None


async def merge_locked(
    deps: Deps, duplicate_id: str, into: str, *, actor: str, reason: str | None
) -> Stepped:
    """Merge the duplicate into `into` (the caller holds both incidents' locks)."""
    if duplicate_id == into:
        raise Conflict(f"incident {duplicate_id} cannot be merged into itself")
    dup = (await run_db(read_situation, deps.store, duplicate_id)).row
    if dup.merged_into is not None:
        raise Conflict(
            f"incident {duplicate_id} was already merged into {dup.merged_into}", current_state=dup.state
        )
    try:
        survivor = (await run_db(read_situation, deps.store, into)).row
    except NotFound:
        raise InvalidParameter("body.into", f"no incident {into}") from None
    refused = _finished(survivor)
    if refused is not None:
        raise Conflict(refused, current_state=survivor.state)
    why = f"duplicate of {into}" + (f": {reason}" if reason else "")

    def absorb(conn: Connection, row: db.IncidentRow, after: Progress) -> dict[str, Any]:
        found = db.get_incident(conn, into, for_update=True)
        assert found is not None  # incidents are never deleted
        refused = _finished(found)
        if refused is not None:
            raise Conflict(refused, current_state=found.state)
        try:
            _, t = apply(progress_of(found), Event.ABSORB)
        except IllegalTransitionError as exc:
            raise Conflict(str(exc), current_state=exc.state.value) from exc
        version = db.update_incident(conn, into, found.version, {})
        db.insert_transition(
            conn,
            {
                "incident_id": into,
                "seq": version,
                "event": Event.ABSORB.value,
                "from_state": t.from_state.value,
                "to_state": t.to_state.value,
                "from_tier": t.from_tier,
                "to_tier": t.to_tier,
                "at": deps.clock.now(),
                "actor": actor,
                "reason": f"merged in duplicate {duplicate_id}" + (f": {reason}" if reason else ""),
            },
        )
        return {"merged_into": into}

    stepped = await end_locked(
        deps,
        duplicate_id,
        Event.MERGE,
        actor=actor,
        reason=why,
        more=absorb,
        published={"merged_into": into},
    )
    publish(
        deps,
        "absorbed",
        survivor,
        progress_of(survivor),
        stepped.at,
        duplicate_id=duplicate_id,
        reason=reason,
    )
    return stepped
