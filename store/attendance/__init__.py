"""Queries of attendance: check-ins with their verdicts, and roll calls with how each unit ended
(PostgreSQL and SQLite).

`records`: the tables and records; `checkins`: store a check-in once per device and check-in id, read them
back by unit, grid and time, a shift's attendance; `rollcalls`: a roll call and its units, answers,
results. Callers import everything from here, as `from store import attendance`.
"""

from __future__ import annotations

from store.attendance.checkins import (
    Attendance,
    find_checkin,
    list_checkins,
    record_checkin,
    shift_attendance,
)
from store.attendance.records import Checkin, CheckinDraft, RollCall, RollCallUnit
from store.attendance.rollcalls import (
    SILENT,
    Called,
    close_rollcall,
    get_rollcall,
    open_rollcalls,
    record_answered,
    record_reping,
    record_result,
    rollcall_units,
    start_rollcall,
)

__all__ = [
    "SILENT",
    "Attendance",
    "Called",
    "Checkin",
    "CheckinDraft",
    "RollCall",
    "RollCallUnit",
    "close_rollcall",
    "find_checkin",
    "get_rollcall",
    "list_checkins",
    "open_rollcalls",
    "record_answered",
    "record_checkin",
    "record_reping",
    "record_result",
    "rollcall_units",
    "shift_attendance",
    "start_rollcall",
]
