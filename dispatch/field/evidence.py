"""What check-ins and roll-call answers are judged by, gathered once for both: the fix (carried in the
message, else the device's latest in the live picture), the unit's assignment on now, and how far outside
its grid the fix lies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from dispatch.blocking import run_db
from dispatch.field.context import FieldContext
from dispatch.field.verdict import Evidence, Position
from schemas.device_messages import CarriedFix, carried_ts_s
from schemas.fix import FixFlag
from store import duty


@dataclass(frozen=True, slots=True)
class Gathered:
    """The evidence, and the assignment and grid it was gathered against."""

    evidence: Evidence
    assignment: duty.Assignment | None


def position_of(ctx: FieldContext, device_id: str, carried: CarriedFix | None) -> Position | None:
    """The carried fix, or the device's latest fix as the live picture has it (None: neither)."""
    if carried is not None:
        return Position(carried.lon, carried.lat, carried_ts_s(carried), carried.acc_m, carried.mock)
    device = ctx.fleet.device(device_id)
    last = device.last_fix if device is not None else None
    if last is None:
        return None
    mock = bool(last.flags & FixFlag.MOCK)
    return Position(last.lon, last.lat, last.ts.timestamp(), last.accuracy_m, mock)


async def assignment_on(ctx: FieldContext, unit_id: str) -> duty.Assignment | None:
    """The unit's assignment on now, or the one starting within `checkin_early_s`."""
    now = ctx.now()
    held = await run_db(duty.assignments_at, ctx.engine, now, unit_id=unit_id)
    if held:
        return held[0]
    soon = now + timedelta(seconds=ctx.settings.checkin_early_s)
    coming = await run_db(duty.assignments_at, ctx.engine, soon, unit_id=unit_id)
    return next((a for a in coming if a.starts_at > now), None)


async def gather(
    ctx: FieldContext, unit_id: str, position: Position | None, assignment: duty.Assignment | None = None
) -> Gathered:
    """The evidence for `position` against the unit's assignment (looked up unless given)."""
    if assignment is None:
        assignment = await assignment_on(ctx, unit_id)
    known, distance_m = False, None
    if assignment is not None:
        found = await ctx.grid(assignment.grid_id)
        if found is not None:
            known = True
            if position is not None:
                index, grid = found
                distance_m = index.distance_outside_m(grid.id, position.lon, position.lat)
    evidence = Evidence(ctx.clock.now(), position, assignment is not None, known, distance_m)
    return Gathered(evidence, assignment)
