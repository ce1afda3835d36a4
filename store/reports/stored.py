"""Reports as generated: one row a month (regenerating replaces it in one transaction), and the schedule of
the automatic monthly run (one row; none stored: the defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Engine, Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from store.reports.records import monthly_reports, report_schedule
from store.rows import record_of
from store.times import utc

SCHEDULE_NAME = "monthly"


class StoredReport(msgspec.Struct, frozen=True):
    """A month's report as stored: its figures (`body`), when and by what it was generated."""

    month: str
    generated_at: datetime
    trigger: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Schedule:
    """Whether the monthly report runs by itself, and at which hour (station time) of the 1st."""

    enabled: bool = True
    hour: int = 2
    updated_at: datetime | None = None
    updated_by: str = "default"


def get_report(engine: Engine, month: str) -> StoredReport | None:
    """The stored report of `month` (YYYY-MM), or None."""
    with engine.connect() as conn:
        row = conn.execute(select(monthly_reports).where(monthly_reports.c.month == month)).first()
    return record_of(StoredReport, row) if row is not None else None


def save_report(engine: Engine, report: StoredReport, *, replace: bool = True) -> StoredReport:
    """Store `report`, replacing the month's previous one (`replace`) or leaving a stored one alone (two
    first requests at once: the first stored wins); the report stored afterwards."""
    values = {
        "month": report.month,
        "generated_at": utc(report.generated_at),
        "trigger": report.trigger,
        "body": report.body,
    }
    with engine.begin() as conn:
        conn.execute(_upsert(engine, monthly_reports, values, "month", replace=replace))
    stored = get_report(engine, report.month)
    assert stored is not None
    return stored


def stored_months(engine: Engine) -> list[str]:
    """The months with a stored report, oldest first."""
    with engine.connect() as conn:
        return list(conn.scalars(select(monthly_reports.c.month).order_by(monthly_reports.c.month)))


def get_schedule(engine: Engine) -> Schedule:
    """The automatic run's schedule (the defaults until one is stored)."""
    t = report_schedule
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.name == SCHEDULE_NAME)).first()
    if row is None:
        return Schedule()
    return record_of(Schedule, row, enabled=bool(row._mapping["enabled"]))


def set_schedule(engine: Engine, *, enabled: bool, hour: int, by: str, now: datetime) -> Schedule:
    """Store the schedule (replacing the previous one)."""
    if not 0 <= hour <= 23:
        raise ValueError(f"hour must be 0 to 23, got {hour}")
    values = {"enabled": enabled, "hour": hour, "updated_at": utc(now), "updated_by": by}
    with engine.begin() as conn:
        conn.execute(_upsert(engine, report_schedule, {"name": SCHEDULE_NAME, **values}, "name"))
    return get_schedule(engine)


def _upsert(engine: Engine, table: Table, values: dict[str, Any], key: str, *, replace: bool = True) -> Any:
    """INSERT … ON CONFLICT (key) DO UPDATE (or DO NOTHING), on PostgreSQL and SQLite alike."""
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(table).values(**values)
    if not replace:
        return statement.on_conflict_do_nothing(index_elements=[key])
    changed = {k: statement.excluded[k] for k in values if k != key}
    return statement.on_conflict_do_update(index_elements=[key], set_=changed)
