"""Migration step 8: the status history, check-ins and roll calls, and `break` as a unit status.

A fresh database has all of it from step 1 (today's definitions); an older one gets the new tables
(`create_all` adds only what is missing) and the units' status CHECK widened in place (`store.checks`).
"""

from __future__ import annotations

from sqlalchemy import Connection

from schemas.tables import Flavour, build_metadata
from schemas.vocabulary import UNIT_STATUSES
from store.checks import set_allowed


def add_attendance_tables(conn: Connection, flavour: Flavour, _settings: object) -> None:
    """Step 7: `status_history`, `checkins`, `rollcalls`, `rollcall_units`; units may be on `break`."""
    build_metadata(flavour).create_all(conn, checkfirst=True)
    set_allowed(conn, flavour, "units", "status", UNIT_STATUSES)
