"""Writing duty: shifts, and assignments under the seed's rules, each checked and written in one transaction.

The rules: a police officer holds police grids and an auxiliary community grids (vehicles hold none, see
`LEVEL_OF_KIND`); a grid has one holder at a time; a unit holds one grid at a time. An assignment that would
break the last two is refused with every clash named, unless it replaces: then each clashing assignment
ends at the new one's start (or, if it starts later, never begins), recording who ended it and which
assignment replaced it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select, text, update

from store.duty import records
from store.grids.records import current_of
from store.registry.records import units
from store.times import utc

_KIND_WORDS = {"police": "a police officer", "auxiliary": "an auxiliary", "vehicle": "a vehicle"}


class DutyConflict(records.DutyError):
    """The change clashes with the assignment as it is (already ended)."""


@dataclass(frozen=True, slots=True)
class Made:
    """A new assignment and the assignments it replaced (ended at its start)."""

    assignment: records.Assignment
    replaced: tuple[records.Assignment, ...] = ()


def lock(conn: Connection) -> None:
    """Serialise writers of assignments, so two cannot both find a grid free. PostgreSQL: a table lock
    that readers pass. SQLite: pysqlite runs the reads before a transaction's first write outside it, so
    the first statement is a write (of nothing), which opens the transaction and takes the database's write
    lock (other writers wait `busy_timeout`)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE assignments IN SHARE ROW EXCLUSIVE MODE"))
    else:
        conn.execute(text("UPDATE assignments SET id = id WHERE 0"))


def _interval(field: str, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = utc(start), utc(end)
    if end <= start:
        raise records.DutyError(
            field, f"must be after the start ({start.isoformat()}), got {end.isoformat()}"
        )
    return start, end


def create_shift(
    engine: Engine, *, name: str, starts_at: datetime, ends_at: datetime, now: datetime
) -> records.Shift:
    """A new shift over [starts_at, ends_at)."""
    start, end = _interval("body.ends_at", starts_at, ends_at)
    with engine.begin() as conn:
        return insert_shift(conn, name=name, start=start, end=end, now=now)


def insert_shift(
    conn: Connection, *, name: str, start: datetime, end: datetime, now: datetime
) -> records.Shift:
    """Insert a shift inside an open transaction."""
    values = {"name": name, "starts_at": utc(start), "ends_at": utc(end), "created_at": utc(now)}
    row = conn.execute(records.shifts.insert().values(**values).returning(*records.shifts.c)).one()
    return records.shift_of(row)


def check_fit(conn: Connection, unit_id: str, grid_id: str) -> None:
    """The unit and the grid exist (the grid current) and the unit's kind may hold the grid's level."""
    kind = conn.execute(select(units.c.kind).where(units.c.id == unit_id)).scalar()
    if kind is None:
        raise records.DutyError("body.unit_id", f"no unit {unit_id}")
    grid = current_of(conn, grid_id)
    if grid is None:
        raise records.DutyError("body.grid_id", f"no current grid {grid_id}")
    if records.LEVEL_OF_KIND.get(kind) != grid.level:
        who = _KIND_WORDS.get(kind, kind)
        raise records.DutyError(
            "body.grid_id",
            f"{grid.level} grid {grid_id} takes {_KIND_WORDS[records.KIND_OF_LEVEL[grid.level]]}; "
            f"unit {unit_id} is {who}",
        )


def resolve_times(
    conn: Connection, *, shift_id: int | None, starts_at: datetime | None, ends_at: datetime | None
) -> tuple[datetime, datetime]:
    """The interval asked for: given, or the shift's; given times must lie inside the given shift."""
    if shift_id is None:
        if starts_at is None or ends_at is None:
            raise records.DutyError(
                "body.starts_at" if starts_at is None else "body.ends_at", "give it, or shift_id"
            )
        return _interval("body.ends_at", starts_at, ends_at)
    shift = records.get_shift(conn, shift_id)
    if shift is None:
        raise records.DutyError("body.shift_id", f"no shift {shift_id}")
    start, end = _interval(
        "body.ends_at", starts_at or shift.starts_at, ends_at if ends_at is not None else shift.ends_at
    )
    if start < shift.starts_at or end > shift.ends_at:
        raise records.DutyError(
            "body.starts_at" if start < shift.starts_at else "body.ends_at",
            f"must lie inside shift {shift.id} "
            f"({shift.starts_at.isoformat()} to {shift.ends_at.isoformat()})",
        )
    return start, end


def insert_assignment(
    conn: Connection,
    *,
    unit_id: str,
    grid_id: str,
    shift_id: int | None,
    start: datetime,
    end: datetime,
    actor: str,
    now: datetime,
) -> records.Assignment:
    """Insert an assignment inside an open transaction (its rules checked by the caller)."""
    values = {
        "unit_id": unit_id,
        "grid_id": grid_id,
        "shift_id": shift_id,
        "starts_at": utc(start),
        "ends_at": utc(end),
        "created_by": actor,
        "created_at": utc(now),
    }
    return records.assignment_of(
        conn.execute(records.assignments.insert().values(**values).returning(*records.assignments.c)).one()
    )


def _end(
    conn: Connection, held: records.Assignment, at: datetime, *, actor: str, by: int | None
) -> records.Assignment:
    ended_at = max(held.starts_at, min(utc(at), held.until))
    query = update(records.assignments).where(records.assignments.c.id == held.id)
    conn.execute(query.values(ended_at=ended_at, ended_by=actor, replaced_by=by))
    ended = records.get_assignment(conn, held.id)
    assert ended is not None  # updated inside this transaction
    return ended


def create_assignment(
    engine: Engine,
    *,
    unit_id: str,
    grid_id: str,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    shift_id: int | None = None,
    replace: bool = False,
    actor: str,
    now: datetime,
) -> Made:
    """Unit `unit_id` holds `grid_id` over the interval given or the shift's; `AssignmentConflict` names
    every clash, unless `replace`, which ends the clashing assignments at the new start."""
    with engine.begin() as conn:
        lock(conn)
        start, end = resolve_times(conn, shift_id=shift_id, starts_at=starts_at, ends_at=ends_at)
        check_fit(conn, unit_id, grid_id)
        clashes: list[records.Clash] = records.clashes_of(
            conn, unit_id=unit_id, grid_id=grid_id, start=start, end=end
        )
        if clashes and not replace:
            raise records.AssignmentConflict(clashes)
        made = insert_assignment(
            conn,
            unit_id=unit_id,
            grid_id=grid_id,
            shift_id=shift_id,
            start=start,
            end=end,
            actor=actor,
            now=now,
        )
        replaced = tuple(_end(conn, c.holder, start, actor=actor, by=made.id) for c in clashes)
        return Made(made, replaced)


def end_assignment(engine: Engine, assignment_id: int, *, actor: str, now: datetime) -> records.Assignment:
    """End an assignment at `now` (one that has not begun never will); `DutyConflict` once it is over."""
    with engine.begin() as conn:
        lock(conn)
        held = records.get_assignment(conn, assignment_id)
        if held is None:
            raise records.DutyNotFound("id", f"no assignment {assignment_id}")
        if held.until <= utc(now) or held.until == held.starts_at:
            raise DutyConflict("id", f"assignment {assignment_id} ended at {held.until.isoformat()}")
        return _end(conn, held, now, actor=actor, by=None)
