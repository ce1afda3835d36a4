"""A device checks its unit in on its assigned grid (`outpost/v1/devices/{id}/checkin`, or its HTTP twin),
or the unit's fix first enters the grid during the assignment (automatic check-in, when switched on).

The check-in is judged (`dispatch.field.verdict`), stored with its verdict and every reason, published on
the event stream (`unit.checkin`), and the device is answered. A device sending the same check-in id again
gets the first verdict back: retries are idempotent. Only a device bound to a unit may check in; another
is refused by name, counted and dead-lettered, and nothing is stored.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from prometheus_client import Counter

from dispatch.blocking import run_db
from dispatch.field.answers import DEVICE_UNBOUND, DeviceAnswer
from dispatch.field.context import FieldContext
from dispatch.field.evidence import Gathered, gather, position_of
from dispatch.field.verdict import Position, explain, reasons
from schemas.device_messages import CheckinIn
from schemas.topics import CHECKIN
from store import attendance

log = logging.getLogger(__name__)

CHECKINS = Counter(
    "outpost_field_checkins", "Check-ins judged, by source and verdict.", ["source", "verdict"]
)


def answer_of(checkin: attendance.Checkin, ctx: FieldContext, *, repeated: bool) -> DeviceAnswer:
    """What the device is told about a stored check-in."""
    refs = {
        "checkin_id": checkin.checkin_id,
        "unit_id": checkin.unit_id,
        "grid_id": checkin.grid_id,
        "distance_m": checkin.distance_m,
        "at": checkin.at.isoformat(),
        "repeated": repeated,
    }
    detail = explain(checkin.reasons, ctx.settings, checkin.distance_m)
    return DeviceAnswer(checkin.accepted, detail, checkin.reasons, refs)


class Checkins:
    """Judges, stores and publishes check-ins."""

    def __init__(self, ctx: FieldContext) -> None:
        self._ctx = ctx

    async def check_in(self, device_id: str, body: CheckinIn, payload: bytes) -> DeviceAnswer:
        """A device's check-in: the verdict with every reason, or why it was refused."""
        ctx = self._ctx
        now_s = ctx.clock.now()
        first = await run_db(attendance.find_checkin, ctx.engine, device_id, body.checkin_id)
        if first is not None:
            return answer_of(first, ctx, repeated=True)
        unit_id = await ctx.bound_unit(device_id)
        if unit_id is None:
            detail = f"device {device_id} is bound to no unit now"
            reasons_ = (DEVICE_UNBOUND,)
            return await ctx.refusals.refuse(
                device_id, CHECKIN, payload, reasons_, detail, now_s, checkin_id=body.checkin_id
            )
        gathered = await gather(ctx, unit_id, position_of(ctx, device_id, body.fix))
        stored, new = await self.record(device_id, body.checkin_id, unit_id, gathered, "device")
        return answer_of(stored, ctx, repeated=not new)

    async def record(
        self, device_id: str, checkin_id: str, unit_id: str, gathered: Gathered, source: str
    ) -> tuple[attendance.Checkin, bool]:
        """Store a judged check-in (the first one of this device and id stands) and publish it."""
        ctx = self._ctx
        e, held = gathered.evidence, gathered.assignment
        found = reasons(e, ctx.settings)
        p: Position | None = e.position
        draft = attendance.CheckinDraft(
            device_id=device_id,
            checkin_id=checkin_id,
            unit_id=unit_id,
            grid_id=held.grid_id if held is not None else None,
            assignment_id=held.id if held is not None else None,
            at=ctx.now(),
            fix_ts=datetime.fromtimestamp(p.ts_s, UTC) if p is not None else None,
            lon=p.lon if p is not None else None,
            lat=p.lat if p is not None else None,
            accuracy_m=p.accuracy_m if p is not None else None,
            distance_m=e.distance_m,
            accepted=not found,
            reasons=found,
            source=source,
        )
        stored, new = await run_db(attendance.record_checkin, ctx.engine, draft)
        if new:
            CHECKINS.labels(source, "accepted" if stored.accepted else "refused").inc()
            ctx.bus.publish(
                {
                    "type": "unit.checkin",
                    "unit_id": unit_id,
                    "device_id": device_id,
                    "checkin_id": checkin_id,
                    "grid_id": stored.grid_id,
                    "accepted": stored.accepted,
                    "reasons": list(stored.reasons),
                    "distance_m": stored.distance_m,
                    "source": source,
                    "at": stored.at.isoformat(),
                }
            )
        return stored, new
