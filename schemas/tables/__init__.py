"""Table definitions: the one source of truth for the database schema, on PostgreSQL and on SQLite.

Each concern defines its tables in its own module. `build_metadata` assembles them for one dialect:
on PostgreSQL the fixes carry a PostGIS `geometry(Point,4326)` column, generated from lon/lat so the hot
COPY path writes plain numbers; on SQLite the same columns exist without it (spatial work is done by `geo`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import MetaData

from schemas.tables import access, registry, telemetry


@dataclass(frozen=True)
class Flavour:
    """What the target database can do, decided by asking it (see `store.migrate`)."""

    dialect: str  # "postgresql" | "sqlite"
    # Native declarative partitioning of `fixes` by day (PostgreSQL without TimescaleDB).
    partitioned: bool = False
    # `fixes` is a TimescaleDB hypertable (see store.timescale for what that changes).
    hypertable: bool = False

    @property
    def spatial(self) -> bool:
        return self.dialect == "postgresql"


def build_metadata(flavour: Flavour) -> MetaData:
    """All of Outpost's tables for one database flavour."""
    md = MetaData()
    registry.define(md)
    telemetry.define(md, flavour)
    access.define(md)
    _define_optional(md, flavour)
    return md


def _define_optional(md: MetaData, flavour: Flavour) -> None:
    # Later concerns (incidents, grids) register here without touching the core modules.
    from schemas.tables import incidents

    incidents.define(md, flavour)
