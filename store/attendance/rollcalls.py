"""Roll calls: started with their units in one transaction, answers recorded once (the first that counts),
re-pings, and the close that judges every unit still without a result as silent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update

from store.attendance.records import RollCall, RollCallUnit, rollcall_units_table, rollcalls
from store.rows import record_of
from store.times import utc

SILENT = "silent"
WITHOUT_FIX = "answered_without_fix"


@dataclass(frozen=True, slots=True)
class Called:
    """A unit a roll call goes to: its assigned grid (if any) and the devices it is sent to."""

    unit_id: str
    grid_id: str | None
    devices: tuple[str, ...]


def start_rollcall(
    engine: Engine,
    *,
    rollcall_id: str,
    scope: dict[str, Any],
    units: Sequence[Called],
    started_by: str,
    started_at: datetime,
    deadline_at: datetime,
) -> RollCall:
    """Store a new open roll call and its units."""
    with engine.begin() as conn:
        conn.execute(
            rollcalls.insert().values(
                id=rollcall_id,
                started_at=utc(started_at),
                deadline_at=utc(deadline_at),
                scope=scope,
                started_by=started_by,
                state="open",
            )
        )
        if units:
            conn.execute(
                rollcall_units_table.insert(),
                [
                    {
                        "rollcall_id": rollcall_id,
                        "unit_id": u.unit_id,
                        "grid_id": u.grid_id,
                        "devices": list(u.devices),
                    }
                    for u in units
                ],
            )
    found = get_rollcall(engine, rollcall_id)
    assert found is not None
    return found


def get_rollcall(engine: Engine, rollcall_id: str) -> RollCall | None:
    """One roll call, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(rollcalls).where(rollcalls.c.id == rollcall_id)).first()
    return record_of(RollCall, row) if row is not None else None


def open_rollcalls(engine: Engine) -> list[RollCall]:
    """The roll calls not closed yet (re-armed after a restart), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(rollcalls).where(rollcalls.c.state == "open").order_by(rollcalls.c.started_at)
        )
        return [record_of(RollCall, r) for r in rows]


def rollcall_units(engine: Engine, rollcall_id: str) -> list[RollCallUnit]:
    """A roll call's units, by unit id."""
    t = rollcall_units_table
    with engine.connect() as conn:
        rows = conn.execute(select(t).where(t.c.rollcall_id == rollcall_id).order_by(t.c.unit_id))
        return [record_of(RollCallUnit, r) for r in rows]


def record_answered(engine: Engine, rollcall_id: str, unit_id: str, *, device_id: str, at: datetime) -> None:
    """The unit answered (its result waits for a fresh fix); only its first answer is kept."""
    t = rollcall_units_table
    with engine.begin() as conn:
        conn.execute(
            update(t)
            .where(t.c.rollcall_id == rollcall_id, t.c.unit_id == unit_id, t.c.answered_at.is_(None))
            .values(answered_at=utc(at), answered_by=device_id)
        )


def record_result(
    engine: Engine,
    rollcall_id: str,
    unit_id: str,
    *,
    result: str,
    fix_ts: datetime | None,
    lon: float | None,
    lat: float | None,
    inside: bool | None,
    answered: tuple[str, datetime] | None = None,
) -> bool:
    """The unit's result, with the fix it was judged by (and its answer, device and time, when it comes
    with it), unless it has one (the first stands); whether this one was recorded."""
    t = rollcall_units_table
    values: dict[str, Any] = {
        "result": result,
        "fix_ts": utc(fix_ts) if fix_ts is not None else None,
        "lon": lon,
        "lat": lat,
        "inside": inside,
    }
    if answered is not None:
        values["answered_by"] = func.coalesce(t.c.answered_by, answered[0])
        values["answered_at"] = func.coalesce(t.c.answered_at, utc(answered[1]))
    with engine.begin() as conn:
        done = conn.execute(
            update(t)
            .where(t.c.rollcall_id == rollcall_id, t.c.unit_id == unit_id, t.c.result.is_(None))
            .values(**values)
        )
    return done.rowcount == 1


def record_reping(engine: Engine, rollcall_id: str, unit_ids: Sequence[str], *, at: datetime) -> None:
    """The silent units were pinged once more at `at`."""
    if not unit_ids:
        return
    t = rollcall_units_table
    with engine.begin() as conn:
        conn.execute(
            update(t)
            .where(t.c.rollcall_id == rollcall_id, t.c.unit_id.in_(list(unit_ids)))
            .values(pinged_again_at=utc(at))
        )


def close_rollcall(engine: Engine, rollcall_id: str, *, at: datetime) -> bool:
    """Close the roll call: every unit still without a result is `answered_without_fix` when it answered,
    `silent` otherwise. False when it was closed already."""
    t = rollcall_units_table
    with engine.begin() as conn:
        closed = conn.execute(
            update(rollcalls)
            .where(rollcalls.c.id == rollcall_id, rollcalls.c.state == "open")
            .values(state="closed", closed_at=utc(at))
        )
        if closed.rowcount != 1:
            return False
        pending = (t.c.rollcall_id == rollcall_id) & t.c.result.is_(None)
        conn.execute(update(t).where(pending, t.c.answered_at.is_not(None)).values(result=WITHOUT_FIX))
        conn.execute(update(t).where(pending).values(result=SILENT))
    return True
