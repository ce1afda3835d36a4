"""A device reports its unit's duty status (`outpost/v1/devices/{id}/status`, or its HTTP twin): only its
own unit's (the one it is bound to now), only along the transitions a device may make
(`dispatch.field.transitions`), recorded in the status history with the device as the actor."""

from __future__ import annotations

from dispatch.blocking import run_db
from dispatch.field.answers import DEVICE_UNBOUND, DeviceAnswer
from dispatch.field.context import FieldContext
from dispatch.field.transitions import judge
from schemas.device_messages import StatusIn
from schemas.topics import STATUS
from store import registry

UNIT_DISABLED = "unit_disabled"
STATUS_CHANGED_MEANWHILE = "status_changed_meanwhile"


async def report_status(ctx: FieldContext, device_id: str, body: StatusIn, payload: bytes) -> DeviceAnswer:
    """Take a device's status report: the unit's new status, or every reason why not."""
    now_s = ctx.clock.now()
    unit_id = await ctx.bound_unit(device_id)
    if unit_id is None:
        detail = f"device {device_id} is bound to no unit now"
        return await ctx.refusals.refuse(device_id, STATUS, payload, (DEVICE_UNBOUND,), detail, now_s)
    unit = await run_db(registry.get_unit, ctx.engine, unit_id)
    if unit is None or not unit.enabled:
        detail = f"unit {unit_id} is disabled"
        return await ctx.refusals.refuse(device_id, STATUS, payload, (UNIT_DISABLED,), detail, now_s)
    refs = {"unit_id": unit_id, "reported": body.status}
    verdict = judge(unit.status, body.status)
    if verdict.refused is not None:
        reasons = (verdict.refused,)
        return await ctx.refusals.refuse(device_id, STATUS, payload, reasons, verdict.detail, now_s, **refs)
    if verdict.target is None:
        return DeviceAnswer(True, verdict.detail, refs={**refs, "status": unit.status})
    why = body.why or f"the device reported {body.status}"
    outcome = await ctx.fleet.change_status(
        unit_id, verdict.target, expected=(unit.status,), actor=f"device:{device_id}", why=why
    )
    if not outcome.written:
        detail = f"unit {unit_id} became {outcome.before} meanwhile: report again"
        reasons = (STATUS_CHANGED_MEANWHILE,)
        return await ctx.refusals.refuse(device_id, STATUS, payload, reasons, detail, now_s, **refs)
    return DeviceAnswer(True, f"unit {unit_id}: {verdict.detail}", refs={**refs, "status": verdict.target})
