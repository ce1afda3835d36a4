"""Check-ins: stored once per device and check-in id (a retry finds the first), read back by unit, grid and
time, and a shift's attendance (each assignment's first accepted check-in)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from store.attendance.records import Checkin, CheckinDraft, assignments, checkins
from store.duty.records import Assignment, assignment_of
from store.rows import narrowed, record_of
from store.times import utc


def find_checkin(engine: Engine, device_id: str, checkin_id: str) -> Checkin | None:
    """The check-in this device sent with this id, or None."""
    query = select(checkins).where(checkins.c.device_id == device_id, checkins.c.checkin_id == checkin_id)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return record_of(Checkin, row) if row is not None else None


def record_checkin(engine: Engine, draft: CheckinDraft) -> tuple[Checkin, bool]:
    """Store a judged check-in; (the stored one, True) or, when the device already sent this id, (the first
    one, False): retries are idempotent."""
    values = dataclasses.asdict(draft)
    values["reasons"] = list(draft.reasons)
    values["at"] = utc(draft.at)
    values["fix_ts"] = utc(draft.fix_ts) if draft.fix_ts is not None else None
    try:
        with engine.begin() as conn:
            conn.execute(checkins.insert().values(**values))
    except IntegrityError:
        pass  # the same device and id, stored by a racing retry: the first one stands
    else:
        stored = find_checkin(engine, draft.device_id, draft.checkin_id)
        assert stored is not None
        return stored, True
    first = find_checkin(engine, draft.device_id, draft.checkin_id)
    if first is None:
        raise RuntimeError(f"check-in {draft.checkin_id} of {draft.device_id} neither stored nor found")
    return first, False


def list_checkins(
    engine: Engine,
    *,
    unit_id: str | None = None,
    grid_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    accepted: bool | None = None,
    limit: int = 1000,
) -> list[Checkin]:
    """Check-ins in [start, end) (either None: unbounded), optionally of one unit or grid, oldest first."""
    c = checkins.c
    equal = ((c.unit_id, unit_id), (c.grid_id, grid_id), (c.accepted, accepted))
    query = narrowed(select(checkins), equal, ts=c.at, start=start, end=end)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(checkins.c.at, checkins.c.id).limit(limit))
        return [record_of(Checkin, r) for r in rows]


@dataclass(frozen=True, slots=True)
class Attendance:
    """One assignment of a shift and its first accepted check-in (None: none yet)."""

    assignment: Assignment
    first_checkin: Checkin | None


def shift_attendance(engine: Engine, shift_id: int, *, early_s: float) -> list[Attendance]:
    """Every assignment of the shift with the first check-in accepted for it, counted from `early_s` before
    it starts until it ends; by grid."""
    with engine.connect() as conn:
        held = [
            assignment_of(r)
            for r in conn.execute(
                select(assignments)
                .where(assignments.c.shift_id == shift_id)
                .order_by(assignments.c.grid_id, assignments.c.id)
            )
        ]
        found = []
        for a in held:
            row = conn.execute(
                select(checkins)
                .where(
                    checkins.c.unit_id == a.unit_id,
                    checkins.c.accepted.is_(True),
                    checkins.c.at >= utc(a.starts_at - timedelta(seconds=early_s)),
                    checkins.c.at < utc(a.until),
                )
                .order_by(checkins.c.at, checkins.c.id)
                .limit(1)
            ).first()
            found.append(Attendance(a, record_of(Checkin, row) if row is not None else None))
    return found
