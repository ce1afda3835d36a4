"""What the target database can do: the one fact every table module needs, kept in a leaf they all import."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import LargeBinary


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

    def area(self, geometry_type: str) -> Any:
        """The column type of an area: PostGIS `geometry(<type>,4326)` with a GiST index, or WKB bytes."""
        if self.spatial:
            return Geometry(geometry_type, srid=4326, spatial_index=True)
        return LargeBinary()
