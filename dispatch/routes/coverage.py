"""Who covers each patrol grid now: its holder, the units inside and since when, gaps (viewer and up).

Answered from the live patrol watch (`dispatch.patrol`), never from the database: the holders are those it
read at its last check (every OUTPOST_PATROL_CHECK_S, and at once after an assignment through the API).
Registered before `grids`: /v1/grids/{id} would otherwise match /v1/grids/coverage.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from aiohttp import web

from dispatch.keys import CLOCK_KEY, FLEET_KEY, PATROL_KEY
from dispatch.openapi import DocumentedRoutes
from dispatch.patrol import Patrol
from dispatch.routes.params import Words, encode
from dispatch.routes.present import utc_of
from geo.grids import Grid
from schemas.tables.grids import GRID_LEVELS

api = DocumentedRoutes("grids")
LEVEL = Words("level", "only grids of these levels", choices=GRID_LEVELS)


class Inside(msgspec.Struct):
    """A unit inside the grid, since when (the border crossing, or when it was first seen there)."""

    unit_id: str
    since: datetime


class Holder(msgspec.Struct):
    """The unit assigned the grid now, whether it covers it, and where it stands against it."""

    unit_id: str
    assignment_id: int
    status: str | None
    covering: bool
    reason: str | None  # why it is not covering the grid (null: it is)
    out_of_grid: str | None  # inside, near_border, outside, out_of_grid, excused (null: not watched)
    out_of_grid_reason: str | None
    distance_m: float | None


class GapOut(msgspec.Struct):
    """A coverage gap: uncovered since when, raised when (null: not yet, below OUTPOST_COVERAGE_GAP_S)."""

    since: datetime
    raised_at: datetime | None
    reason: str | None


class GridCoverage(msgspec.Struct):
    """One grid's coverage."""

    grid_id: str
    name: str
    level: str
    holder: Holder | None
    inside: list[Inside]
    gap: GapOut | None


class CoverageOut(msgspec.Struct):
    """Every current grid's coverage, by id."""

    at: datetime
    grids: list[GridCoverage]


def _holder(patrol: Patrol, grid_id: str, now_s: float) -> Holder | None:
    held = next((a for a in patrol.held.values() if a.grid_id == grid_id), None)
    if held is None:
        return None
    unit = patrol.fleet.unit(held.unit_id)
    reason = patrol.uncovered(held, now_s)
    j = patrol.out_of_grid.judgement(held.unit_id)
    distance = patrol.distance_outside_m(held.unit_id, grid_id, now_s)
    return Holder(
        unit_id=held.unit_id,
        assignment_id=held.id,
        status=unit.status if unit else None,
        covering=reason is None,
        reason=reason,
        out_of_grid=j.state if j else None,
        out_of_grid_reason=j.reason if j else None,
        distance_m=None if distance is None else round(distance, 1),
    )


def _gap(patrol: Patrol, grid_id: str) -> GapOut | None:
    c = patrol.coverage.cover(grid_id)
    if c is None or c.uncovered_since_s is None:
        return None
    raised = utc_of(c.raised_at_s) if c.raised_at_s is not None else None
    return GapOut(since=utc_of(c.uncovered_since_s), raised_at=raised, reason=c.reason)


def coverage_of(patrol: Patrol, grids: list[Grid], now_s: float) -> list[GridCoverage]:
    """The coverage of these grids now."""
    inside: dict[str, list[Inside]] = {}
    for unit_id, seen in patrol.fleet.zones.units():
        for (area, zone_id), since_s in seen.since.items():
            if area == "grid":
                inside.setdefault(zone_id, []).append(Inside(unit_id, utc_of(since_s)))
    return [
        GridCoverage(
            grid_id=g.id,
            name=g.name,
            level=g.level,
            holder=_holder(patrol, g.id, now_s),
            inside=sorted(inside.get(g.id, []), key=lambda i: i.unit_id),
            gap=_gap(patrol, g.id),
        )
        for g in grids
    ]


@api.route("GET", "/v1/grids/coverage", role="viewer", params=[LEVEL], response=CoverageOut)
async def grid_coverage(request: web.Request) -> web.Response:
    """Who covers each grid now: holder, units inside and since when, gaps

    Per current grid (optionally of some levels): the unit assigned it now (whether it covers the grid,
    and its out-of-grid state with the reason: a unit on an incident is excused), every unit inside it and
    since when, and the coverage gap (uncovered since, raised once uncovered longer than
    OUTPOST_COVERAGE_GAP_S)."""
    levels = LEVEL.get(request) or GRID_LEVELS
    patrol, now_s = request.app[PATROL_KEY], request.app[CLOCK_KEY].now()
    index = request.app[FLEET_KEY].zones.grids
    grids = [g for g in index.grids() if g.level in levels]
    return encode(
        CoverageOut(at=utc_of(now_s), grids=coverage_of(patrol, sorted(grids, key=lambda g: g.id), now_s))
    )
