"""Attendance over HTTP: check-ins by unit, grid and time, and a shift's attendance (each assignment on
time, late, missing, or not due yet). Every role reads."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

import msgspec
from aiohttp import web

from dispatch.blocking import run_db
from dispatch.field.api import FIELD_KEY, api
from dispatch.keys import ENGINE_KEY
from dispatch.problems import NotFound
from dispatch.routes.duty import GRID, UNIT_ID_PATTERN
from dispatch.routes.instants import Instant, optional_range
from dispatch.routes.params import Integer, QueryText, RowPathId, Words, encode
from dispatch.routes.resources import clock_now
from store import attendance, duty

Standing = Literal["on_time", "late", "missing", "not_yet_due"]

UNIT = QueryText("unit", "only the check-ins of this unit (its id)", pattern=UNIT_ID_PATTERN)
FROM = Instant("from", "check-ins at or after this instant", required=False)
TO = Instant("to", "check-ins before this instant", required=False)
VERDICT = Words("verdict", "only accepted or refused check-ins", ("accepted", "refused"))
LIMIT = Integer("limit", "most check-ins to return, oldest first", default=1000, minimum=1, maximum=10_000)
SHIFT_ID = RowPathId("id", "the shift's id")


class CheckinOut(msgspec.Struct):
    """A check-in as judged: accepted, or refused with every reason."""

    id: int
    checkin_id: str
    device_id: str
    unit_id: str
    grid_id: str | None
    assignment_id: int | None
    at: datetime
    accepted: bool
    reasons: list[str]
    fix_ts: datetime | None
    lon: float | None
    lat: float | None
    accuracy_m: float | None
    distance_m: float | None
    source: str


class CheckinList(msgspec.Struct):
    """Check-ins, oldest first."""

    checkins: list[CheckinOut]


class AttendanceRow(msgspec.Struct):
    """One assignment of the shift: `on_time` (first accepted check-in no later than
    OUTPOST_CHECKIN_LATE_AFTER_S after its start), `late`, `missing`, or `not_yet_due`."""

    assignment_id: int
    unit_id: str
    grid_id: str
    starts_at: datetime
    until: datetime
    standing: Standing
    checked_in_at: datetime | None
    checkin_id: str | None


class ShiftAttendance(msgspec.Struct):
    """A shift's attendance, by grid, and how many of each standing."""

    shift_id: int
    name: str
    starts_at: datetime
    ends_at: datetime
    assignments: list[AttendanceRow]
    counts: dict[str, int]


def checkin_out(c: attendance.Checkin) -> CheckinOut:
    """The API body of a stored check-in."""
    return msgspec.convert(c, CheckinOut, from_attributes=True)


def standing(row: attendance.Attendance, now: datetime, late_after_s: float) -> Standing:
    """How the assignment's unit stands: on time, late, missing, or not due yet."""
    due = row.assignment.starts_at + timedelta(seconds=late_after_s)
    if row.first_checkin is not None:
        return "on_time" if row.first_checkin.at <= due else "late"
    return "not_yet_due" if now <= due else "missing"


@api.route(
    "GET", "/v1/checkins", role="viewer", params=[UNIT, GRID, FROM, TO, VERDICT, LIMIT], response=CheckinList
)
async def list_checkins(request: web.Request) -> web.Response:
    """Check-ins by unit, grid and time

    Check-ins in [from, to) (either absent: unbounded), optionally of one unit or grid, accepted or
    refused, oldest first; each with its verdict and every reason."""
    start, end = optional_range(request, FROM, TO)
    verdicts = VERDICT.get(request)
    accepted = None if verdicts is None or len(verdicts) == 2 else verdicts[0] == "accepted"
    found = await run_db(
        attendance.list_checkins,
        request.app[ENGINE_KEY],
        unit_id=UNIT.get(request),
        grid_id=GRID.get(request),
        start=start,
        end=end,
        accepted=accepted,
        limit=LIMIT.get(request),
    )
    return encode(CheckinList([checkin_out(c) for c in found]))


@api.route("GET", "/v1/shifts/{id}/attendance", role="viewer", params=[SHIFT_ID], response=ShiftAttendance)
async def shift_attendance(request: web.Request) -> web.Response:
    """A shift's attendance: on time, late, missing

    Every assignment of the shift with its unit's first accepted check-in (counted from
    OUTPOST_CHECKIN_EARLY_S before the assignment starts) and how it stands."""
    shift_id = SHIFT_ID.row_id(request, "a shift id")
    engine, settings = request.app[ENGINE_KEY], request.app[FIELD_KEY].ctx.settings
    shift = await run_db(duty.get_shift, engine, shift_id)
    if shift is None:
        raise NotFound(f"no shift {shift_id}")
    rows = await run_db(attendance.shift_attendance, engine, shift_id, early_s=settings.checkin_early_s)
    now = clock_now(request)
    out = []
    for row in rows:
        a, first = row.assignment, row.first_checkin
        out.append(
            AttendanceRow(
                a.id,
                a.unit_id,
                a.grid_id,
                a.starts_at,
                a.until,
                standing(row, now, settings.checkin_late_after_s),
                first.at if first is not None else None,
                first.checkin_id if first is not None else None,
            )
        )
    counts = {
        s: sum(1 for r in out if r.standing == s) for s in ("on_time", "late", "missing", "not_yet_due")
    }
    return encode(ShiftAttendance(shift.id, shift.name, shift.starts_at, shift.ends_at, out, counts))
