"""The grids table on both dialects, its records, the errors its queries raise, and the reads.

The boundary crosses the storage boundary as a shapely MultiPolygon: PostGIS geometry through GeoAlchemy2
on PostgreSQL, WKB bytes on SQLite. Times are timezone-aware UTC in and out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import shapely
from geoalchemy2.elements import WKBElement
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import MultiPolygon
from sqlalchemy import Connection, Engine, MetaData, Row, Select, Table, and_, or_, select

from geo.grids import Grid, GridIndex, Level, as_geometry
from schemas.tables import grids as grid_tables
from schemas.tables.flavour import Flavour
from store.rows import record_of
from store.times import utc

_TABLES: dict[str, Table] = {
    dialect: grid_tables.define(MetaData(), Flavour(dialect)) for dialect in ("postgresql", "sqlite")
}


class GridError(ValueError):
    """A grid operation that cannot be done as asked (the message says why)."""


class GridNotFound(GridError):  # noqa: N818 (reads as a verdict)
    """No current grid has this id."""


class GridConflict(GridError):  # noqa: N818 (reads as a verdict)
    """The change conflicts with the grids as they are (an id in use, a police grid with children)."""


@dataclass(frozen=True, slots=True)
class GridRecord:
    """One version of a grid."""

    id: str
    version: int
    level: Level
    name: str
    parent_id: str | None
    geometry: MultiPolygon
    valid_from: datetime
    valid_to: datetime | None

    def as_grid(self) -> Grid:
        """The version as geo's `Grid` (what the in-memory index holds)."""
        return Grid(self.id, self.level, self.name, self.parent_id, self.geometry)


def table(conn: Connection | Engine) -> Table:
    """The grids table as this connection's dialect defines it."""
    return _TABLES[conn.dialect.name]


def encode_geometry(conn: Connection, geometry: MultiPolygon) -> Any:
    """The column value of a boundary on this connection's dialect."""
    if conn.dialect.name == "postgresql":
        return from_shape(geometry, srid=4326)
    return shapely.to_wkb(geometry)


def _decode_geometry(value: Any) -> MultiPolygon:
    shape = to_shape(value) if isinstance(value, WKBElement) else shapely.from_wkb(bytes(value))
    return as_geometry(shape)


def record(row: Row[Any]) -> GridRecord:
    """A record from a row of the grids table."""
    return record_of(GridRecord, row, geometry=_decode_geometry(row._mapping["geom"]))


def _valid(t: Table, at: datetime | None) -> Any:
    if at is None:
        return t.c.valid_to.is_(None)
    at = utc(at)
    return and_(t.c.valid_from <= at, or_(t.c.valid_to.is_(None), t.c.valid_to > at))


def _query(
    t: Table, *, at: datetime | None, level: str | None = None, parent: str | None = None
) -> Select[Any]:
    query = select(t).where(_valid(t, at))
    if level is not None:
        query = query.where(t.c.level == level)
    if parent is not None:
        query = query.where(t.c.parent_id == parent)
    return query.order_by(t.c.id)


def list_grids(
    engine: Engine, *, level: str | None = None, parent: str | None = None, at: datetime | None = None
) -> list[GridRecord]:
    """The grids valid at `at` (None: the current ones), optionally of one level or one parent, by id."""
    with engine.connect() as conn:
        rows = conn.execute(_query(table(conn), at=at, level=level, parent=parent))
        return [record(r) for r in rows]


def get_grid(engine: Engine, grid_id: str, *, at: datetime | None = None) -> GridRecord | None:
    """The version of one grid valid at `at` (None: the current one), or None."""
    with engine.connect() as conn:
        return current_of(conn, grid_id, at=at)


def current_of(conn: Connection, grid_id: str, *, at: datetime | None = None) -> GridRecord | None:
    """The version of `grid_id` valid at `at` (None: now) inside an open connection, or None."""
    t = table(conn)
    row = conn.execute(_query(t, at=at).where(t.c.id == grid_id)).first()
    return record(row) if row is not None else None


def current_by_id(conn: Connection, level: str | None = None) -> dict[str, GridRecord]:
    """Every current grid (of one level), by id, inside an open connection."""
    return {r.id: r for r in (record(row) for row in conn.execute(_query(table(conn), at=None, level=level)))}


def history(engine: Engine, grid_id: str) -> list[GridRecord]:
    """Every version of one grid, oldest first."""
    with engine.connect() as conn:
        t = table(conn)
        rows = conn.execute(select(t).where(t.c.id == grid_id).order_by(t.c.version))
        return [record(r) for r in rows]


def load_index(engine: Engine, *, at: datetime | None = None) -> GridIndex:
    """The in-memory index of the grids valid at `at` (None: now)."""
    return GridIndex(r.as_grid() for r in list_grids(engine, at=at))


def same_boundary(a: MultiPolygon, b: MultiPolygon) -> bool:
    """Whether two boundaries are the same shape (vertex order and ring start aside)."""
    return bool(shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance=1e-9))


def next_version(conn: Connection, grid_id: str) -> int:
    """The version number a new version of `grid_id` gets (1 for a new grid)."""
    t = table(conn)
    versions: Sequence[int] = conn.execute(select(t.c.version).where(t.c.id == grid_id)).scalars().all()
    return max(versions, default=0) + 1
