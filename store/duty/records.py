"""The duty tables, their records, the errors their queries raise, and the reads.

Times are timezone-aware UTC in and out. An assignment holds its grid over [starts_at, until), where `until`
is `ended_at` when it ended early and `ends_at` otherwise; an assignment ended before it began holds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import msgspec
from sqlalchemy import ColumnElement, Connection, Engine, MetaData, Row, Table, and_, func, select

from schemas.tables import duty as duty_tables
from schemas.tables import registry as registry_tables
from store.rows import record_of
from store.times import utc

_MD = MetaData()
registry_tables.define(_MD)  # the foreign keys' targets; their queries live in store.registry
duty_tables.define(_MD)
shifts: Table = _MD.tables["shifts"]
assignments: Table = _MD.tables["assignments"]

# Which grid level a unit of each kind may hold. The seed's rule names officers and auxiliaries only; a
# vehicle carries officers who hold grids themselves, so a vehicle holds none.
LEVEL_OF_KIND: dict[str, str] = {"police": "police", "auxiliary": "community"}
KIND_OF_LEVEL: dict[str, str] = {level: kind for kind, level in LEVEL_OF_KIND.items()}


class DutyError(ValueError):
    """A duty operation that cannot be done as asked; `field` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class DutyNotFound(DutyError):  # noqa: N818 (reads as a verdict)
    """No shift or assignment has this id."""


class Shift(msgspec.Struct, frozen=True):
    """A named period of duty, [starts_at, ends_at). (Structs: the API answers them as they are.)"""

    id: int
    name: str
    starts_at: datetime
    ends_at: datetime
    created_at: datetime


class Assignment(msgspec.Struct, frozen=True):
    """Unit `unit_id` holds grid `grid_id` over [starts_at, until)."""

    id: int
    unit_id: str
    grid_id: str
    shift_id: int | None
    starts_at: datetime
    ends_at: datetime
    created_by: str
    created_at: datetime
    ended_at: datetime | None
    ended_by: str | None
    replaced_by: int | None

    @property
    def until(self) -> datetime:
        """When the assignment stops holding its grid (its planned end, or when it was ended)."""
        return self.ended_at if self.ended_at is not None else self.ends_at


Rule = Literal["grid", "unit"]


@dataclass(frozen=True, slots=True)
class Clash:
    """A stored assignment that a new one would overlap: holding the same grid, or holding the same unit."""

    rule: Rule
    holder: Assignment

    def describe(self) -> str:
        """One sentence naming who holds what, when."""
        h = self.holder
        span = f"from {h.starts_at.isoformat()} to {h.until.isoformat()} (assignment {h.id})"
        if self.rule == "grid":
            return f"grid {h.grid_id} is held by unit {h.unit_id} {span}"
        return f"unit {h.unit_id} holds grid {h.grid_id} {span}"


class AssignmentConflict(DutyError):  # noqa: N818 (reads as a verdict)
    """The new assignment overlaps others (one holder per grid, one grid per unit, at a time)."""

    def __init__(self, clashes: list[Clash]) -> None:
        field = "body.grid_id" if clashes[0].rule == "grid" else "body.unit_id"
        super().__init__(field, "; ".join(c.describe() for c in clashes))
        self.clashes = clashes


def shift_of(row: Row[Any]) -> Shift:
    """A shift from its row."""
    return record_of(Shift, row)


def assignment_of(row: Row[Any]) -> Assignment:
    """An assignment from its row."""
    return record_of(Assignment, row)


def _until() -> ColumnElement[Any]:
    return func.coalesce(assignments.c.ended_at, assignments.c.ends_at)


def overlapping(start: datetime, end: datetime) -> ColumnElement[bool]:
    """Assignments holding their grid at some instant of [start, end)."""
    until = _until()
    return and_(assignments.c.starts_at < utc(end), until > utc(start), until > assignments.c.starts_at)


def clashes_of(
    conn: Connection, *, unit_id: str, grid_id: str, start: datetime, end: datetime
) -> list[Clash]:
    """The stored assignments a new one of `unit_id` on `grid_id` over [start, end) would overlap."""
    query = (
        select(assignments)
        .where(overlapping(start, end))
        .where((assignments.c.grid_id == grid_id) | (assignments.c.unit_id == unit_id))
        .order_by(assignments.c.starts_at, assignments.c.id)
    )
    found = [assignment_of(r) for r in conn.execute(query)]
    grid = [Clash("grid", a) for a in found if a.grid_id == grid_id]
    unit = [Clash("unit", a) for a in found if a.grid_id != grid_id]
    return grid + unit


def get_shift(engine: Engine | Connection, shift_id: int) -> Shift | None:
    """One shift, or None."""
    query = select(shifts).where(shifts.c.id == shift_id)
    if isinstance(engine, Connection):
        row = engine.execute(query).first()
    else:
        with engine.connect() as conn:
            row = conn.execute(query).first()
    return shift_of(row) if row is not None else None


def list_shifts(engine: Engine, *, start: datetime | None = None, end: datetime | None = None) -> list[Shift]:
    """The shifts overlapping [start, end) (either bound None: unbounded), by start."""
    query = select(shifts)
    if end is not None:
        query = query.where(shifts.c.starts_at < utc(end))
    if start is not None:
        query = query.where(shifts.c.ends_at > utc(start))
    with engine.connect() as conn:
        return [shift_of(r) for r in conn.execute(query.order_by(shifts.c.starts_at, shifts.c.id))]


def get_assignment(conn: Connection, assignment_id: int) -> Assignment | None:
    """One assignment inside an open connection, or None."""
    row = conn.execute(select(assignments).where(assignments.c.id == assignment_id)).first()
    return assignment_of(row) if row is not None else None


def assignments_at(
    engine: Engine, at: datetime, *, unit_id: str | None = None, grid_id: str | None = None
) -> list[Assignment]:
    """The assignments holding their grid at `at`, optionally of one unit or one grid, by grid."""
    at = utc(at)
    query = select(assignments).where(assignments.c.starts_at <= at, _until() > at)
    if unit_id is not None:
        query = query.where(assignments.c.unit_id == unit_id)
    if grid_id is not None:
        query = query.where(assignments.c.grid_id == grid_id)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(assignments.c.grid_id, assignments.c.id))
        return [assignment_of(r) for r in rows]
