"""Queries of duty: shifts, and which unit holds which patrol grid when (PostgreSQL and SQLite).

`records`: the tables, the records, the errors and the reads (shifts, assignments at an instant, clashes);
`edits`: create a shift, create an assignment under the seed's rules (optionally replacing the holder),
end one; `roster`: a month's roster from CSV, checked whole, then written in one transaction. Callers
import everything from here, as `from store import duty`.
"""

from __future__ import annotations

from store.duty.edits import DutyConflict, Made, create_assignment, create_shift, end_assignment
from store.duty.records import (
    LEVEL_OF_KIND,
    Assignment,
    AssignmentConflict,
    Clash,
    DutyError,
    DutyNotFound,
    Shift,
    assignments_at,
    get_shift,
    list_shifts,
)
from store.duty.roster import (
    COLUMNS,
    LineProblem,
    RosterLine,
    RosterRejected,
    RosterReport,
    import_roster,
    parse_roster,
)

__all__ = [
    "COLUMNS",
    "LEVEL_OF_KIND",
    "Assignment",
    "AssignmentConflict",
    "Clash",
    "DutyConflict",
    "DutyError",
    "DutyNotFound",
    "LineProblem",
    "Made",
    "RosterLine",
    "RosterRejected",
    "RosterReport",
    "Shift",
    "assignments_at",
    "create_assignment",
    "create_shift",
    "end_assignment",
    "get_shift",
    "import_roster",
    "list_shifts",
    "parse_roster",
]
