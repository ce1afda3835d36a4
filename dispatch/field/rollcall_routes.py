"""Roll calls over HTTP: a dispatcher (the supervisor) starts one; every role follows it, live while it is
open (also on the event stream: rollcall.started, answered, repinged, closed) and as stored afterwards."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from dispatch.auth import principal
from dispatch.blocking import run_db
from dispatch.field.api import FIELD_KEY, api
from dispatch.field.rollcall_scope import RollCallIn
from dispatch.field.rollcall_verdict import tally
from dispatch.keys import AUDIT_KEY, ENGINE_KEY
from dispatch.problems import NotFound
from dispatch.routes.params import PathId, encode, read_body
from store import attendance

ROLLCALL_ID = PathId("id", "the roll call's id")


class RollCallOut(msgspec.Struct):
    """A roll call, its units and how many ended each way (`pending`: not decided yet)."""

    id: str
    state: str
    scope: dict[str, Any]
    started_by: str
    started_at: datetime
    deadline_at: datetime
    closed_at: datetime | None
    counts: dict[str, int]
    units: list[attendance.RollCallUnit]  # each unit's devices, answer, fix and result (null: pending)


async def rollcall_out(request: web.Request, rollcall_id: str) -> RollCallOut:
    """The stored roll call with its units; NotFound when there is none."""
    engine = request.app[ENGINE_KEY]
    record = await run_db(attendance.get_rollcall, engine, rollcall_id)
    if record is None:
        raise NotFound(f"no roll call {rollcall_id}")
    units = await run_db(attendance.rollcall_units, engine, rollcall_id)
    counts = tally(u.result for u in units)
    return RollCallOut(
        record.id,
        record.state,
        record.scope,
        record.started_by,
        record.started_at,
        record.deadline_at,
        record.closed_at,
        counts,
        units,
    )


@api.create("/v1/rollcalls", role="dispatcher", body=RollCallIn, response=RollCallOut, errors=[404])
async def start_rollcall(request: web.Request) -> web.Response:
    """Call the roll of everyone on duty, a grid, or a list of units

    Start a roll call now over the body's scope, with its deadline. It is sent to every called unit's
    devices over MQTT (`outpost/v1/devices/{id}/rollcall`, and `reportLocation` to OwnTracks phones). An
    answer counts with a fix newer than the start: `present`, `present_out_of_grid`, or after the deadline
    `late`; without a fresh fix `answered_without_fix`; none `silent`. At the deadline the silent are
    pinged once more; OUTPOST_ROLLCALL_LATE_S later the roll call closes."""
    body = await read_body(request, RollCallIn)
    actor = principal(request).actor
    record = await request.app[FIELD_KEY].rollcalls.start(body.scope, body.deadline_s, actor)
    request.app[AUDIT_KEY].record(actor, "start_rollcall", f"rollcall:{record.id}", {"scope": record.scope})
    return encode(await rollcall_out(request, record.id), status=201)


@api.route("GET", "/v1/rollcalls/{id}", role="viewer", params=[ROLLCALL_ID], response=RollCallOut)
async def get_rollcall(request: web.Request) -> web.Response:
    """A roll call: progress while open, the result once closed

    The roll call, each unit's answer and result so far, and the counts."""
    return encode(await rollcall_out(request, ROLLCALL_ID.get(request)))
