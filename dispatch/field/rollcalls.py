"""Roll calls: started over a scope, sent to every called unit's devices, answered, judged, pinged once
more, closed and reported.

Sent to each device on `outpost/v1/devices/{id}/rollcall` (an OwnTracks phone also gets reportLocation).
A device answers on `outpost/v1/devices/{id}/answer`; the answer counts with a fix newer than the start
(carried, the device's latest, or the unit's fused position), and a unit with a position-only device
answers with a fresh fix alone, seen in the live picture's change records (`dispatch.field.rollcall_verdict`
says how each ends). At the deadline the units still silent are pinged once more; answers still count, as
`late`, for OUTPOST_ROLLCALL_LATE_S; then the roll call closes and the silent are reported on the stream.
Every result is stored as it is decided; open roll calls are re-armed after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import geo
from dispatch.blocking import run_db
from dispatch.field.answers import DeviceAnswer
from dispatch.field.context import FieldContext
from dispatch.field.downlink import rollcall_messages
from dispatch.field.evidence import position_of
from dispatch.field.rollcall_scope import Called, ScopeIn, called_units
from dispatch.field.rollcall_verdict import at_close, judged, position_only, tally
from dispatch.field.verdict import Position
from schemas.device_messages import AnswerIn
from schemas.topics import ANSWER
from store import attendance

log = logging.getLogger(__name__)

ROLLCALL_UNKNOWN = "rollcall_unknown"
ROLLCALL_CLOSED = "rollcall_closed"
DEVICE_NOT_CALLED = "device_not_called"


@dataclass
class _Unit:
    called: Called
    answered_by: str | None = None
    result: str | None = None
    judging: bool = False


@dataclass
class _Open:
    record: attendance.RollCall
    units: dict[str, _Unit]
    by_device: dict[str, str] = field(init=False)  # the devices it was sent to → their unit

    def __post_init__(self) -> None:
        self.by_device = {d: u for u, state in self.units.items() for d in state.called.devices}

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def start_s(self) -> float:
        return self.record.started_at.timestamp()

    @property
    def deadline_s(self) -> float:
        return self.record.deadline_at.timestamp()

    def counts(self) -> dict[str, int]:
        return tally(u.result for u in self.units.values())


class RollCalls:
    """The open roll calls and their timers (one API process runs them)."""

    def __init__(self, ctx: FieldContext) -> None:
        self._ctx = ctx
        self._open: dict[str, _Open] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # judgements under way
        self._timelines: dict[str, asyncio.Task[None]] = {}  # each open roll call's deadline and close

    # ---- starting ------------------------------------------------------------------------------------

    async def start(self, scope: ScopeIn, deadline_s: float | None, actor: str) -> attendance.RollCall:
        """Call the roll of `scope` now; the stored roll call."""
        ctx = self._ctx
        called = await called_units(ctx, scope)
        now = ctx.now()
        record = await run_db(
            attendance.start_rollcall,
            ctx.engine,
            rollcall_id=str(uuid.uuid4()),
            scope=msgspec_dict(scope),
            units=called,
            started_by=actor,
            started_at=now,
            deadline_at=now + timedelta(seconds=deadline_s or ctx.settings.rollcall_deadline_s),
        )
        rollcall = _Open(record, {c.unit_id: _Unit(c) for c in called})
        self._arm(rollcall)
        self._ping(rollcall, list(called), again=False)
        ctx.bus.publish(self._event(rollcall, "started", started_by=actor, units=len(called)))
        return record

    async def resume(self) -> None:
        """Re-arm the roll calls left open by the last run."""
        ctx = self._ctx
        for record in await run_db(attendance.open_rollcalls, ctx.engine):
            stored = await run_db(attendance.rollcall_units, ctx.engine, record.id)
            units = {}
            for s in stored:
                quiet = any(position_only(d, _kind(ctx, d)) for d in s.devices)
                units[s.unit_id] = _Unit(
                    Called(s.unit_id, s.grid_id, s.devices, quiet), s.answered_by, s.result
                )
            self._arm(_Open(record, units))

    def _arm(self, rollcall: _Open) -> None:
        self._open[rollcall.id] = rollcall
        task = asyncio.get_running_loop().create_task(
            self._timeline(rollcall), name=f"rollcall-{rollcall.id}"
        )
        self._timelines[rollcall.id] = task
        task.add_done_callback(lambda _: self._timelines.pop(rollcall.id, None))

    def _ping(self, rollcall: _Open, units: list[Called], *, again: bool) -> None:
        body = {
            "rollcall_id": rollcall.id,
            "deadline_at": rollcall.record.deadline_at.isoformat(),
            "again": again,
        }
        devices = [d for c in units for d in c.devices]
        self._ctx.send(rollcall_messages(devices, body), f"roll call {rollcall.id}")

    # ---- answers -------------------------------------------------------------------------------------

    async def answer(self, device_id: str, body: AnswerIn, payload: bytes) -> DeviceAnswer:
        """A device's answer to a roll call: counted (perhaps waiting for a fresh fix), or refused."""
        ctx = self._ctx
        now_s = ctx.clock.now()
        refs = {"rollcall_id": body.rollcall_id}
        rollcall = self._open.get(body.rollcall_id)
        if rollcall is None:
            stored = await run_db(attendance.get_rollcall, ctx.engine, body.rollcall_id)
            if stored is not None and stored.state == "open":
                # Open, but not held here: by another desk (the one that started it counts the answer
                # and tells the device), or not yet resumed by this one (it just took the lead).
                return DeviceAnswer(True, f"roll call {stored.id} is not held here", silent=True)
            reason = ROLLCALL_UNKNOWN if stored is None else ROLLCALL_CLOSED
            detail = f"roll call {body.rollcall_id} is {'unknown' if stored is None else 'closed'}"
            return await ctx.refusals.refuse(device_id, ANSWER, payload, (reason,), detail, now_s, **refs)
        unit_id = rollcall.by_device.get(device_id)
        if unit_id is None:
            detail = f"roll call {rollcall.id} was not sent to device {device_id}"
            return await ctx.refusals.refuse(
                device_id, ANSWER, payload, (DEVICE_NOT_CALLED,), detail, now_s, **refs
            )
        unit = rollcall.units[unit_id]
        refs["unit_id"] = unit_id
        first = unit.answered_by is None
        if first:
            unit.answered_by = device_id
        answered = (device_id, ctx.now())
        carried = position_of(ctx, device_id, body.fix)
        result = unit.result or await self._judge(rollcall, unit, carried, answered if first else None)
        if result is None and first:
            await run_db(
                attendance.record_answered,
                ctx.engine,
                rollcall.id,
                unit_id,
                device_id=device_id,
                at=answered[1],
            )
        if result is None:
            return DeviceAnswer(True, "answer taken: waiting for a fresh fix", refs={**refs, "result": None})
        return DeviceAnswer(True, f"counted: {result}", refs={**refs, "result": result})

    def on_change(self, change: geo.Change) -> None:
        """A unit moved: a fresh fix answers for a position-only unit, or completes an answer."""
        new = change.new
        if new is None or not self._open:
            return
        for rollcall in self._open.values():
            unit = rollcall.units.get(new.unit_id)
            if unit is None or unit.result is not None or unit.judging or new.ts_s <= rollcall.start_s:
                continue
            if unit.answered_by is not None or unit.called.position_only:
                self._spawn(self._judge(rollcall, unit, None))

    async def _judge(
        self,
        rollcall: _Open,
        unit: _Unit,
        carried: Position | None,
        answered: tuple[str, datetime] | None = None,
    ) -> str | None:
        """Decide the unit's result from its freshest fix (recording its answer with it, when `answered`);
        None while it has none."""
        ctx = self._ctx
        p = self._freshest(unit, carried)
        if p is None or p.ts_s <= rollcall.start_s or unit.result is not None or unit.judging:
            return unit.result
        unit.judging = True
        try:
            inside = await self._inside(unit.called.grid_id, p)
            result = judged(
                fix_ts_s=p.ts_s,
                start_s=rollcall.start_s,
                deadline_s=rollcall.deadline_s,
                now_s=ctx.clock.now(),
                inside=inside,
            )
            if result is None or unit.result is not None:
                return unit.result
            unit.result = result
            await run_db(
                attendance.record_result,
                ctx.engine,
                rollcall.id,
                unit.called.unit_id,
                result=result,
                fix_ts=datetime.fromtimestamp(p.ts_s, UTC),
                lon=p.lon,
                lat=p.lat,
                inside=inside,
                answered=answered,
            )
        finally:
            unit.judging = False
        ctx.bus.publish(self._event(rollcall, "answered", unit_id=unit.called.unit_id, result=result))
        return result

    def _freshest(self, unit: _Unit, carried: Position | None) -> Position | None:
        """The carried fix, else the newest of the answering device's and the unit's fused position."""
        if carried is not None:
            return carried
        candidates = [position_of(self._ctx, d, None) for d in unit.called.devices]
        fused = self._ctx.fleet.position(unit.called.unit_id)
        if fused is not None:
            candidates.append(Position(fused.lon, fused.lat, fused.ts_s, fused.accuracy_m, False))
        found = [c for c in candidates if c is not None]
        return max(found, key=lambda c: c.ts_s) if found else None

    async def _inside(self, grid_id: str | None, p: Position) -> bool:
        if grid_id is None:
            return True  # holding no grid, a unit is present wherever it is
        found = await self._ctx.grid(grid_id)
        if found is None:
            return False
        index, grid = found
        return index.distance_outside_m(grid.id, p.lon, p.lat) <= self._ctx.settings.checkin_tolerance_m

    # ---- the timeline --------------------------------------------------------------------------------

    async def _timeline(self, rollcall: _Open) -> None:
        ctx = self._ctx
        try:
            await ctx.clock.sleep(rollcall.deadline_s - ctx.clock.now())
            silent = [u.called for u in rollcall.units.values() if u.result is None and u.answered_by is None]
            if silent and rollcall.record.state == "open":
                self._ping(rollcall, silent, again=True)
                ids = [c.unit_id for c in silent]
                await run_db(attendance.record_reping, ctx.engine, rollcall.id, ids, at=ctx.now())
                ctx.bus.publish(self._event(rollcall, "repinged", units=ids))
            await ctx.clock.sleep(rollcall.deadline_s + ctx.settings.rollcall_late_s - ctx.clock.now())
            await self.close(rollcall.id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "roll call %s: its timeline failed; it stays open until the next start", rollcall.id
            )

    async def close(self, rollcall_id: str) -> None:
        """Judge what the picture holds for the units still pending, close, and report the silent."""
        ctx = self._ctx
        rollcall = self._open.get(rollcall_id)
        if rollcall is None:
            return
        for unit in rollcall.units.values():
            if unit.result is None and (unit.answered_by is not None or unit.called.position_only):
                await self._judge(rollcall, unit, None)
        await run_db(attendance.close_rollcall, ctx.engine, rollcall_id, at=ctx.now())
        for unit in rollcall.units.values():
            if unit.result is None:
                unit.result = at_close(unit.answered_by is not None)
        del self._open[rollcall_id]
        silent = sorted(u for u, state in rollcall.units.items() if state.result == "silent")
        if silent:
            log.warning(
                "roll call %s: %d units silent", rollcall_id, len(silent), extra={"units": silent[:50]}
            )
        by = rollcall.record.started_by
        ctx.bus.publish(
            self._event(rollcall, "closed", counts=rollcall.counts(), silent=silent, started_by=by)
        )

    # ---- helpers -------------------------------------------------------------------------------------

    def _event(self, rollcall: _Open, what: str, **fields: Any) -> dict[str, Any]:
        at = self._ctx.now().isoformat()
        return {"type": f"rollcall.{what}", "rollcall_id": rollcall.id, "at": at, **fields}

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for the judgements under way (the timelines wait for the clock)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel the timers (open roll calls stay open in the store, re-armed on the next start)."""
        running = [*self._tasks, *self._timelines.values()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


def _kind(ctx: FieldContext, device_id: str) -> str:
    state = ctx.fleet.device(device_id)
    return state.kind if state is not None else "other"


def msgspec_dict(scope: ScopeIn) -> dict[str, Any]:
    """The scope as stored (JSON)."""
    return {
        k: v for k, v in {"kind": scope.kind, "grid_id": scope.grid_id, "units": scope.units}.items() if v
    }
