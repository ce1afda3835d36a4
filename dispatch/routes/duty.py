"""Duty over HTTP: shifts (admins make them, everyone reads them) and assignments, which unit holds which
patrol grid when (dispatchers make and end them, everyone reads them).

The seed's rules are the store's (`store.duty`): a police officer holds a police grid, an auxiliary a
community grid, a vehicle none; one holder per grid and one grid per unit at a time. A clash is a 409 whose
`holder` names the assignment in the way, unless the request says `replace`. Every change is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from aiohttp import web

from dispatch.auth import principal
from dispatch.blocking import run_db
from dispatch.keys import AUDIT_KEY, CLOCK_KEY, ENGINE_KEY, PATROL_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.problems import Conflict, InvalidParameter, NotFound
from dispatch.routes.instants import Instant, optional_range, parse_instant
from dispatch.routes.params import MAX_ROW_ID, QueryText, RowPathId, encode, read_body
from schemas.tables.grids import GRID_ID_PATTERN
from schemas.values import END, Name, UnitId
from store import duty

RowId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ROW_ID)]
GridId = Annotated[str, msgspec.Meta(pattern=GRID_ID_PATTERN)]
# RFC 3339 with a time zone, or epoch seconds (a string or a number), read by `instants.parse_instant`.
BodyInstant = Annotated[str, msgspec.Meta(max_length=64)] | float

ASSIGNMENT_ID = RowPathId("id", "the assignment's id")
api = DocumentedRoutes("duty", path_params=[ASSIGNMENT_ID])
AT = Instant("at", "the assignments holding their grid at this instant (default: now)", required=False)
FROM = Instant("from", "shifts ending after this instant", required=False)
TO = Instant("to", "shifts starting before this instant", required=False)
UNIT_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,64}" + END
UNIT = QueryText("unit", "only the assignments of this unit (its id)", pattern=UNIT_ID_PATTERN)
GRID = QueryText("grid", "only the assignments of this grid (its id)", pattern=GRID_ID_PATTERN)


class ShiftIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new shift over [starts_at, ends_at)."""

    name: Name
    starts_at: BodyInstant
    ends_at: BodyInstant


class ShiftOut(duty.Shift, frozen=True):
    """A shift."""


class ShiftList(msgspec.Struct):
    """Shifts by start."""

    shifts: list[ShiftOut]


class AssignmentIn(msgspec.Struct, forbid_unknown_fields=True):
    """Unit `unit_id` holds `grid_id` over [starts_at, ends_at), or over its shift (`shift_id`; times given
    with a shift must lie inside it). `replace`: end whatever clashes at this assignment's start."""

    unit_id: UnitId
    grid_id: GridId
    starts_at: BodyInstant | None = None
    ends_at: BodyInstant | None = None
    shift_id: RowId | None = None
    replace: bool = False


class AssignmentOut(duty.Assignment, frozen=True):
    """An assignment: it holds its grid over [starts_at, until); `until` is `ended_at` when it was ended
    early (by `ended_by`, or replaced by assignment `replaced_by`), else `ends_at`."""

    until: datetime


class AssignmentMade(msgspec.Struct):
    """The new assignment and those it replaced."""

    assignment: AssignmentOut
    replaced: list[AssignmentOut]


class AssignmentList(msgspec.Struct):
    """The assignments holding their grid at `at`, by grid."""

    at: datetime
    assignments: list[AssignmentOut]


def _shift(s: duty.Shift) -> ShiftOut:
    return msgspec.convert(s, ShiftOut, from_attributes=True)


def _assignment(a: duty.Assignment) -> AssignmentOut:
    return msgspec.convert(a, AssignmentOut, from_attributes=True)


def _holder(clash: duty.Clash) -> dict[str, Any]:
    h = clash.holder
    return {
        "rule": clash.rule,
        "assignment_id": h.id,
        "unit_id": h.unit_id,
        "grid_id": h.grid_id,
        "starts_at": h.starts_at,
        "until": h.until,
    }


def _instant(name: str, value: str | float | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(name, str(value).strip())
    except OverflowError:  # an offset pushing year 1 or 9999 off the calendar when turned into UTC
        raise InvalidParameter(name, f"is outside the calendar in UTC, got {str(value)[:40]!r}") from None


def _now(request: web.Request) -> datetime:
    return datetime.fromtimestamp(request.app[CLOCK_KEY].now(), UTC)


async def _write(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await run_db(fn, *args, **kwargs)
    except duty.AssignmentConflict as exc:
        holders = [_holder(c) for c in exc.clashes]
        raise Conflict(exc.message, holder=holders[0], clashes=holders) from None
    except duty.DutyNotFound as exc:
        raise NotFound(exc.message) from None
    except duty.DutyConflict as exc:
        raise Conflict(exc.message) from None
    except duty.DutyError as exc:
        raise InvalidParameter(exc.field, exc.message) from None


@api.route("POST", "/v1/shifts", role="admin", body=ShiftIn, response=ShiftOut, status=201)
async def create_shift(request: web.Request) -> web.Response:
    """Create a shift

    A named shift over [starts_at, ends_at); assignments may name it instead of their times."""
    body = await read_body(request, ShiftIn)
    made: duty.Shift = await _write(
        duty.create_shift,
        request.app[ENGINE_KEY],
        name=body.name,
        starts_at=_instant("body.starts_at", body.starts_at),
        ends_at=_instant("body.ends_at", body.ends_at),
        now=_now(request),
    )
    request.app[AUDIT_KEY].record(
        principal(request).actor, "create_shift", f"shift:{made.id}", {"name": made.name}
    )
    return encode(_shift(made), status=201)


@api.route("GET", "/v1/shifts", role="viewer", params=[FROM, TO], response=ShiftList)
async def list_shifts(request: web.Request) -> web.Response:
    """Shifts in a time range

    The shifts overlapping [from, to) (either absent: unbounded), by start."""
    start, end = optional_range(request, FROM, TO)
    found = await run_db(duty.list_shifts, request.app[ENGINE_KEY], start=start, end=end)
    return encode(ShiftList([_shift(s) for s in found]))


@api.create("/v1/assignments", role="dispatcher", body=AssignmentIn, response=AssignmentMade)
async def create_assignment(request: web.Request) -> web.Response:
    """Assign a unit to a grid

    Unit `unit_id` holds `grid_id` over the times given or its shift's, under the seed's rules. 409 when the
    grid has a holder or the unit holds another grid then: `holder` names the first assignment in the way
    and `clashes` all of them; `replace: true` ends them at the new start."""
    body = await read_body(request, AssignmentIn)
    actor = principal(request).actor
    made: duty.Made = await _write(
        duty.create_assignment,
        request.app[ENGINE_KEY],
        unit_id=body.unit_id,
        grid_id=body.grid_id,
        starts_at=_instant("body.starts_at", body.starts_at),
        ends_at=_instant("body.ends_at", body.ends_at),
        shift_id=body.shift_id,
        replace=body.replace,
        actor=actor,
        now=_now(request),
    )
    await request.app[PATROL_KEY].check()  # the patrol watch judges the new holder now
    a = made.assignment
    detail = {"unit": a.unit_id, "grid": a.grid_id, "replaced": [r.id for r in made.replaced]}
    request.app[AUDIT_KEY].record(actor, "create_assignment", f"assignment:{a.id}", detail)
    return encode(AssignmentMade(_assignment(a), [_assignment(r) for r in made.replaced]), status=201)


@api.route("GET", "/v1/assignments", role="viewer", params=[AT, UNIT, GRID], response=AssignmentList)
async def list_assignments(request: web.Request) -> web.Response:
    """Who holds which grid at an instant

    The assignments holding their grid at `at` (default now), optionally of one unit or one grid."""
    at = AT.get(request) or _now(request)
    found = await run_db(
        duty.assignments_at,
        request.app[ENGINE_KEY],
        at,
        unit_id=UNIT.get(request),
        grid_id=GRID.get(request),
    )
    return encode(AssignmentList(at, [_assignment(a) for a in found]))


@api.route("DELETE", "/v1/assignments/{id}", role="dispatcher", response=AssignmentOut, errors=[409])
async def end_assignment(request: web.Request) -> web.Response:
    """End an assignment now

    The assignment stops holding its grid now (one not begun never will); its history stays. 409 once
    it is over."""
    assignment_id = ASSIGNMENT_ID.row_id(request, "an assignment id")
    actor = principal(request).actor
    ended: duty.Assignment = await _write(
        duty.end_assignment, request.app[ENGINE_KEY], assignment_id, actor=actor, now=_now(request)
    )
    await request.app[PATROL_KEY].check()
    request.app[AUDIT_KEY].record(
        actor, "end_assignment", f"assignment:{ended.id}", {"unit": ended.unit_id, "grid": ended.grid_id}
    )
    return encode(_assignment(ended))
