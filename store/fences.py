"""Queries of geofences (PostgreSQL and SQLite): create, change, delete, list, and the in-memory set.

A fence's area crosses the storage boundary as shapely geometry (`store.geometry`); a circle's polygon is
made by `geo.fences.circle` before it is stored, so reading never recomputes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shapely.geometry.base import BaseGeometry
from sqlalchemy import Engine, MetaData, Row, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from geo.fences import Fence
from geo.zones import ZoneSet
from schemas.tables import fences as fence_tables
from schemas.tables.flavour import Flavour
from store.geometry import decode_geometry, encode_geometry
from store.rows import record_of
from store.times import utc

_TABLES: dict[str, Table] = {
    dialect: fence_tables.define(MetaData(), Flavour(dialect)) for dialect in ("postgresql", "sqlite")
}


@dataclass(frozen=True, slots=True)
class FenceRecord:
    """One geofence as stored (a circle's `geometry` is its polygon, see `geo.fences.circle`)."""

    geometry: BaseGeometry
    id: str
    name: str
    kind: str
    center_lon: float | None
    center_lat: float | None
    radius_m: float | None
    dwell_s: float | None
    created_at: datetime
    updated_at: datetime

    def as_fence(self, default_dwell_s: float) -> Fence:
        """The fence as geo's `Fence` (what the live tracker holds)."""
        dwell_s = self.dwell_s if self.dwell_s is not None else default_dwell_s
        return Fence(self.id, self.name, self.geometry, dwell_s)


class FenceExists(ValueError):  # noqa: N818 (reads as a verdict)
    """A fence with this id exists already."""


def _table(engine: Engine) -> Table:
    return _TABLES[engine.dialect.name]


def _record(row: Row[Any]) -> FenceRecord:
    return record_of(FenceRecord, row, geometry=decode_geometry(row._mapping["geom"]))


def list_fences(engine: Engine) -> list[FenceRecord]:
    """Every geofence, by id."""
    t = _table(engine)
    with engine.connect() as conn:
        return [_record(r) for r in conn.execute(select(t).order_by(t.c.id))]


def get_fence(engine: Engine, fence_id: str) -> FenceRecord | None:
    """One geofence, or None."""
    t = _table(engine)
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.id == fence_id)).first()
        return _record(row) if row is not None else None


def _values(conn: Any, fields: dict[str, Any]) -> dict[str, Any]:
    values = dict(fields)
    if "geometry" in values:
        values["geom"] = encode_geometry(conn, values.pop("geometry"))
    return values


def create_fence(engine: Engine, *, fence_id: str, now: datetime, **fields: Any) -> FenceRecord:
    """Store a new fence (`fields`: name, kind, geometry, center_lon, center_lat, radius_m, dwell_s)."""
    t = _table(engine)
    try:
        with engine.begin() as conn:
            values = _values(conn, fields)
            conn.execute(insert(t).values(id=fence_id, created_at=utc(now), updated_at=utc(now), **values))
    except IntegrityError:
        raise FenceExists(f"a geofence {fence_id} exists already") from None
    found = get_fence(engine, fence_id)
    assert found is not None
    return found


def update_fence(engine: Engine, fence_id: str, *, now: datetime, **fields: Any) -> FenceRecord | None:
    """Change the given fields of a fence; None when there is no such fence."""
    t = _table(engine)
    with engine.begin() as conn:
        values = _values(conn, fields)
        done = conn.execute(update(t).where(t.c.id == fence_id).values(updated_at=utc(now), **values))
        if done.rowcount == 0:
            return None
    return get_fence(engine, fence_id)


def delete_fence(engine: Engine, fence_id: str) -> FenceRecord | None:
    """Delete a fence; what it was, or None when there was none."""
    found = get_fence(engine, fence_id)
    if found is not None:
        t = _table(engine)
        with engine.begin() as conn:
            conn.execute(delete(t).where(t.c.id == fence_id))
    return found


def load_fences(engine: Engine, default_dwell_s: float) -> ZoneSet[Fence]:
    """Every geofence in memory, for the live tracker."""
    return ZoneSet(r.as_fence(default_dwell_s) for r in list_fences(engine))
