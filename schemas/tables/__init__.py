"""Table definitions: the one source of truth for the database schema, on PostgreSQL and on SQLite.

Each concern defines its tables in its own module. `build_metadata` assembles them for one dialect:
on PostgreSQL the fixes carry a PostGIS `geometry(Point,4326)` column, generated from lon/lat so the hot
COPY path writes plain numbers; on SQLite the same columns exist without it (spatial work is done by `geo`).
"""

from __future__ import annotations

from sqlalchemy import MetaData

from schemas.tables import (
    access,
    attendance,
    duty,
    fences,
    grids,
    incidents,
    presence,
    registry,
    status,
    telemetry,
)
from schemas.tables import reports as report_tables
from schemas.tables.flavour import Flavour

__all__ = ["Flavour", "build_metadata"]


def build_metadata(flavour: Flavour) -> MetaData:
    """All of Outpost's tables for one database flavour."""
    md = MetaData()
    registry.define(md)
    telemetry.define(md, flavour)
    access.define(md)
    incidents.define(md, flavour)
    grids.define(md, flavour)
    duty.define(md)
    fences.define(md, flavour)
    status.define(md)
    attendance.define(md)
    report_tables.define(md)
    presence.define(md)
    return md
