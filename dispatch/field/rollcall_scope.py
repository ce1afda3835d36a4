"""Who a roll call goes to: everyone on duty, a grid (a police grid with its community grids), or a list
of units; for each unit its assigned grid now and the devices bound to it now (the ones it is sent to)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from dispatch.blocking import run_db
from dispatch.field.context import FieldContext
from dispatch.field.rollcall_verdict import position_only
from dispatch.problems import InvalidParameter, NotFound
from dispatch.routes.duty import GridId
from schemas.values import UnitId
from store import attendance, duty, registry

# Statuses that are not on duty: a roll call of everyone on duty skips them.
NOT_ON_DUTY = frozenset({"off_duty", "out_of_service"})
MAX_UNITS = 5000


class ScopeIn(msgspec.Struct, forbid_unknown_fields=True):
    """`on_duty`: every enabled unit on duty; `grid`: the units holding `grid_id` now (a police grid: and
    its community grids); `units`: the units listed."""

    kind: Literal["on_duty", "grid", "units"]
    grid_id: GridId | None = None
    units: Annotated[list[UnitId], msgspec.Meta(min_length=1, max_length=MAX_UNITS)] | None = None


class RollCallIn(msgspec.Struct, forbid_unknown_fields=True):
    """A roll call over `scope`, answered within `deadline_s` (default OUTPOST_ROLLCALL_DEADLINE_S)."""

    scope: ScopeIn
    deadline_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] | None = None


@dataclass(frozen=True, slots=True)
class Called(attendance.Called):
    """A called unit, and whether a fresh fix alone answers for it (it has a position-only device)."""

    position_only: bool = False


async def called_units(ctx: FieldContext, scope: ScopeIn) -> list[Called]:
    """The units of `scope` now, by id; InvalidParameter or NotFound naming what is wrong."""
    now = ctx.now()
    units = {u.id: u for u in await run_db(registry.list_units, ctx.engine, enabled=True)}
    held = {a.unit_id: a.grid_id for a in await run_db(duty.assignments_at, ctx.engine, now)}
    if scope.kind == "on_duty":
        chosen = [u for u, record in units.items() if record.status not in NOT_ON_DUTY]
    elif scope.kind == "grid":
        if scope.grid_id is None:
            raise InvalidParameter("body.scope.grid_id", "is required with kind grid")
        found = await ctx.grid(scope.grid_id)
        if found is None:
            raise NotFound(f"no current grid {scope.grid_id}")
        index, grid = found
        grids = {grid.id, *(g.id for g in index.children(grid.id))}
        chosen = [u for u, g in held.items() if g in grids and u in units]
    else:
        if scope.units is None:
            raise InvalidParameter("body.scope.units", "is required with kind units")
        unknown = [u for u in scope.units if u not in units]
        if unknown:
            raise NotFound(f"no enabled unit {', '.join(unknown[:20])}")
        chosen = list(dict.fromkeys(scope.units))
    if not chosen:
        raise InvalidParameter("body.scope", "no unit is in this scope now")
    devices: dict[str, list[str]] = {}
    for b in await run_db(registry.bindings_active_at, ctx.engine, now):
        devices.setdefault(b.unit_id, []).append(b.device_id)
    return [_called(ctx, u, held.get(u), sorted(devices.get(u, ()))) for u in sorted(chosen)]


def _called(ctx: FieldContext, unit_id: str, grid_id: str | None, devices: list[str]) -> Called:
    kinds = {d: (state.kind if (state := ctx.fleet.device(d)) is not None else "other") for d in devices}
    quiet = any(position_only(d, k) for d, k in kinds.items())
    return Called(unit_id, grid_id, tuple(devices), quiet)
