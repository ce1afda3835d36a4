"""Automatic check-in (OUTPOST_AUTO_CHECKIN): a unit whose fused position first lies inside its assigned
grid (within the tolerance) while the assignment is on is checked in, as if its device had sent it, with
source `auto` and the check-in id `auto:<assignment id>` (so once per assignment, in every process).

It follows the live picture's change records, so it costs nothing per fix beyond a dictionary look-up for
units already checked in or holding no grid, and an in-memory distance for the others. Only a check-in
that holds is recorded: a unit entering with a coarse fix is tried again on its next fix.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import geo
from dispatch.blocking import run_db
from dispatch.field.checkins import Checkins
from dispatch.field.context import FieldContext
from dispatch.field.evidence import gather, position_of
from dispatch.field.verdict import Position, reasons
from store import attendance, duty

log = logging.getLogger(__name__)

# Who holds which grid is read again this often (s).
REFRESH_S = 60.0


class AutoCheckin:
    """Follows the picture's change records; `run` keeps the assignments on now in memory."""

    def __init__(self, ctx: FieldContext, checkins: Checkins) -> None:
        self._ctx = ctx
        self._checkins = checkins
        self._held: dict[str, duty.Assignment] = {}  # unit → its assignment on now
        self._done: set[int] = set()  # assignments checked in (automatically or by the device)
        self._trying: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def refresh(self) -> None:
        """Read the assignments on now and the current grids."""
        ctx = self._ctx
        held = await run_db(duty.assignments_at, ctx.engine, ctx.now())
        self._held = {a.unit_id: a for a in held}
        self._done &= {a.id for a in held}
        for a in held:
            await ctx.grid(a.grid_id)

    async def run(self) -> None:
        """Refresh every REFRESH_S, forever."""
        while True:
            try:
                await self.refresh()
            except Exception:
                log.warning("automatic check-in: assignments not refreshed", exc_info=True)
            await self._ctx.clock.sleep(REFRESH_S)

    def on_change(self, change: geo.Change) -> None:
        """A unit's index entry changed: check it in if it has just come inside its grid."""
        new = change.new
        if new is None:
            return
        held = self._held.get(new.unit_id)
        if held is None or held.id in self._done or held.id in self._trying:
            return
        now_s = self._ctx.clock.now()
        if not held.starts_at.timestamp() <= now_s < held.until.timestamp():
            return
        found = self._ctx.cached_grid(held.grid_id)
        if found is None:
            return
        index, grid = found
        if index.distance_outside_m(grid.id, new.lon, new.lat) > self._ctx.settings.checkin_tolerance_m:
            return
        self._trying.add(held.id)
        task = asyncio.get_running_loop().create_task(self._check_in(new, held))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check_in(self, p: geo.UnitPosition, held: duty.Assignment) -> None:
        ctx = self._ctx
        try:
            since = held.starts_at - timedelta(seconds=ctx.settings.checkin_early_s)
            already = await run_db(
                attendance.list_checkins, ctx.engine, unit_id=p.unit_id, start=since, accepted=True, limit=1
            )
            if already:
                self._done.add(held.id)
                return
            device = position_of(ctx, p.device_id, None) if p.device_id else None
            mock = device.mock if device is not None else False
            position = Position(p.lon, p.lat, p.ts_s, p.accuracy_m, mock)
            gathered = await gather(ctx, p.unit_id, position, held)
            if reasons(gathered.evidence, ctx.settings):
                return  # not yet: the next fix tries again
            device_id = p.device_id or f"unit:{p.unit_id}"
            await self._checkins.record(device_id, f"auto:{held.id}", p.unit_id, gathered, "auto")
            self._done.add(held.id)
        except Exception:
            log.warning("automatic check-in of %s failed", p.unit_id, exc_info=True)
        finally:
            self._trying.discard(held.id)

    async def settle(self) -> None:
        """Wait for the check-ins under way (tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
