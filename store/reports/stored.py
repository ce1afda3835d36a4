"""Reports as generated: one row a month (regenerating replaces it in one transaction), and the schedule of
the automatic monthly run (one row; none stored: the defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Engine, delete, select

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


def save_report(engine: Engine, report: StoredReport) -> None:
    """Store `report`, replacing the month's previous one."""
    with engine.begin() as conn:
        conn.execute(delete(monthly_reports).where(monthly_reports.c.month == report.month))
        conn.execute(
            monthly_reports.insert().values(
                month=report.month,
                generated_at=utc(report.generated_at),
                trigger=report.trigger,
                body=report.body,
            )
        )


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
    t = report_schedule
    with engine.begin() as conn:
        conn.execute(delete(t).where(t.c.name == SCHEDULE_NAME))
        conn.execute(
            t.insert().values(
                name=SCHEDULE_NAME, enabled=enabled, hour=hour, updated_at=utc(now), updated_by=by
            )
        )
    return get_schedule(engine)
