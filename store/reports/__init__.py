"""Queries of the monthly workload and performance report (PostgreSQL and SQLite, the same answers).

`month`: every row a month's report reads, one query per kind for all officers at once; `movement`: the
officers' fixes of the month as arrays by unit; `stored`: reports as generated and the automatic run's
schedule; `records`: the records these return. Callers import everything from here, as `from store import
reports`. The figures themselves are computed in `dispatch.reports`.
"""

from __future__ import annotations

from store.reports.month import OFFICER_KINDS, read_month
from store.reports.movement import UnitFixes, unit_fixes
from store.reports.records import (
    Engagement,
    GridShape,
    Held,
    IncidentPlace,
    MonthData,
    Officer,
    RollCallResult,
    StatusChange,
)
from store.reports.stored import (
    Schedule,
    StoredReport,
    get_report,
    get_schedule,
    save_report,
    set_schedule,
    stored_months,
)

__all__ = [
    "OFFICER_KINDS",
    "Engagement",
    "GridShape",
    "Held",
    "IncidentPlace",
    "MonthData",
    "Officer",
    "RollCallResult",
    "Schedule",
    "StatusChange",
    "StoredReport",
    "UnitFixes",
    "get_report",
    "get_schedule",
    "read_month",
    "save_report",
    "set_schedule",
    "stored_months",
    "unit_fixes",
]
