"""The fleet at a past instant: every unit's last stored fix at or before T (within a look-back) and its
status at T from the status history, in one statement, the same SQL on PostgreSQL and SQLite.

Per unit the statement makes a few index probes and never scans the window: the fix's time is the newest
`ts` of the unit in [T − look-back, T] (`ix_fixes_unit_ts`, read backwards, one row), the device the
greatest id among the unit's fixes at that very time (ties between devices are rare and must still give
one answer on both stores), and the fix itself a primary-key lookup (device_id, ts), bounded by the window
too so PostgreSQL prunes the day partitions. The status at T is the `to_status` of the unit's last change at
or before T; with none, the `from_status` of its first change after T (it was in that status until then);
with no change at all, its status now (`ix_status_history_unit` serves both probes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Select, and_, func, not_, select

from store.fixes import FIXES
from store.registry.records import units
from store.registry.statuses import history
from store.rows import record_of
from store.times import earlier, utc


@dataclass(frozen=True, slots=True)
class UnitAt:
    """One unit at an instant: who, its status then, and its last fix in the look-back (or Nones)."""

    id: str
    name: str
    kind: str
    status: str
    ts: datetime | None
    lon: float | None
    lat: float | None
    heading_deg: float | None
    speed_mps: float | None
    device_id: str | None
    flags: int | None


def snapshot(
    engine: Engine, at: datetime, lookback: timedelta, *, with_restricted: bool = False
) -> list[UnitAt]:
    """Every unit at `at`, by id; the fixes taken off duty only `with_restricted` (an audited admin read)."""
    with engine.connect() as conn:
        return _snapshot(conn, utc(at), lookback, with_restricted)


def frames(
    engine: Engine, instants: Sequence[datetime], lookback: timedelta, *, with_restricted: bool = False
) -> list[list[UnitAt]]:
    """`snapshot` at each of `instants`, in order, read on one connection."""
    with engine.connect() as conn:
        return [_snapshot(conn, utc(at), lookback, with_restricted) for at in instants]


def _snapshot(conn: Connection, at: datetime, lookback: timedelta, with_restricted: bool) -> list[UnitAt]:
    statement = snapshot_statement(at, lookback, with_restricted=with_restricted)
    return [record_of(UnitAt, row) for row in conn.execute(statement)]


def snapshot_statement(at: datetime, lookback: timedelta, *, with_restricted: bool = False) -> Select[Any]:
    """The one statement of a snapshot at `at` (public for the benchmark's EXPLAIN)."""
    start = earlier(at, lookback)
    newest = FIXES.alias("newest")
    in_window = and_(newest.c.unit_id == units.c.id, newest.c.ts <= at, newest.c.ts >= start)
    if not with_restricted:
        # The fix picked is the newest one not taken off duty; the device and the row follow from it.
        in_window = and_(in_window, not_(newest.c.restricted))
    # Correlated to `units` explicitly: nested inside `fix_device` below, automatic correlation would look
    # only one level up, miss `units` there, and give every unit the newest fix of any unit.
    fix_ts = (
        select(newest.c.ts)
        .where(in_window)
        .order_by(newest.c.ts.desc())
        .limit(1)
        .correlate(units)
        .scalar_subquery()
    )
    tied = FIXES.alias("tied")
    # Bounded by the window too: PostgreSQL then plans only the partitions it spans.
    same = and_(tied.c.unit_id == units.c.id, tied.c.ts == fix_ts, tied.c.ts <= at, tied.c.ts >= start)
    if not with_restricted:
        same = and_(same, not_(tied.c.restricted))
    fix_device = select(func.max(tied.c.device_id)).where(same).scalar_subquery()
    picked = select(
        units.c.id,
        units.c.name,
        units.c.kind,
        status_at(at).label("status"),
        fix_ts.label("fix_ts"),
        fix_device.label("fix_device"),
    ).subquery("picked")
    fix = FIXES.alias("fix")
    joined = picked.outerjoin(
        fix,
        and_(
            fix.c.device_id == picked.c.fix_device,
            fix.c.ts == picked.c.fix_ts,
            fix.c.ts <= at,
            fix.c.ts >= start,
        ),
    )
    return (
        select(
            picked.c.id,
            picked.c.name,
            picked.c.kind,
            picked.c.status,
            fix.c.ts,
            fix.c.lon,
            fix.c.lat,
            fix.c.heading_deg,
            fix.c.speed_mps,
            fix.c.device_id,
            fix.c.flags,
        )
        .select_from(joined)
        .order_by(picked.c.id)
    )


def status_at(at: datetime) -> ColumnElement[str]:
    """The status of the unit of the enclosing `units` row at `at` (see the module's docstring)."""
    before = (
        select(history.c.to_status)
        .where(history.c.unit_id == units.c.id, history.c.at <= at)
        .order_by(history.c.at.desc(), history.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    after = (
        select(history.c.from_status)
        .where(history.c.unit_id == units.c.id, history.c.at > at)
        .order_by(history.c.at, history.c.id)
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(before, after, units.c.status)
