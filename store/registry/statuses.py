"""A unit's status and its history: every change is written with who, from, to, when and why, in the same
transaction as the change itself (PostgreSQL and SQLite)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, MetaData, Table, select, text, update

from schemas.tables import registry as registry_tables
from schemas.tables import status as status_tables
from store.notify import announce_unit
from store.registry.records import units
from store.rows import narrowed, record_of
from store.times import utc

_md = MetaData()
registry_tables.define(_md)
status_tables.define(_md)
history: Table = _md.tables["status_history"]


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One recorded change of a unit's status."""

    id: int
    unit_id: str
    from_status: str
    to_status: str
    at: datetime
    actor: str
    why: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a status write found: the unit (or not), its status before, and whether it was written."""

    found: bool
    before: str | None
    written: bool


def _current(conn: Connection, unit_id: str) -> str | None:
    """The unit's status, locked until the transaction ends (no writer can change it in between)."""
    if conn.dialect.name == "sqlite":
        # pysqlite runs reads before a transaction's first write outside it: write nothing first, which
        # opens the transaction and takes the database's write lock.
        conn.execute(text("UPDATE units SET id = id WHERE 0"))
        return conn.execute(select(units.c.status).where(units.c.id == unit_id)).scalar()
    return conn.execute(select(units.c.status).where(units.c.id == unit_id).with_for_update()).scalar()


def change_unit_status(
    engine: Engine,
    unit_id: str,
    new: str,
    *,
    expected: Collection[str] | None = None,
    actor: str,
    why: str = "",
    now: datetime,
) -> Outcome:
    """Set the status to `new` (only if it is one of `expected`, when given), atomically, and record the
    change in the status history (nothing is recorded when the status stays the same)."""
    now = utc(now)
    with engine.begin() as conn:
        before = _current(conn, unit_id)
        if before is None:
            return Outcome(False, None, False)
        if expected is not None and before not in expected:
            return Outcome(True, before, False)
        conn.execute(update(units).where(units.c.id == unit_id).values(status=new, status_changed_at=now))
        if before != new:
            conn.execute(
                history.insert().values(
                    unit_id=unit_id, from_status=before, to_status=new, at=now, actor=actor, why=why
                )
            )
            announce_unit(conn, unit_id)
    return Outcome(True, before, True)


def status_history(
    engine: Engine,
    unit_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 1000,
) -> list[StatusChange]:
    """The unit's status changes in [start, end) (either None: unbounded), oldest first, at most `limit`."""
    query = narrowed(select(history), [(history.c.unit_id, unit_id)], ts=history.c.at, start=start, end=end)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(history.c.at, history.c.id).limit(limit))
        return [record_of(StatusChange, r) for r in rows]
