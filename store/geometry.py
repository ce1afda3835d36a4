"""Areas across the storage boundary: PostGIS geometry through GeoAlchemy2 on PostgreSQL, WKB on SQLite."""

from __future__ import annotations

from typing import Any

import shapely
from geoalchemy2.elements import WKBElement
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection


def encode_geometry(conn: Connection, geometry: BaseGeometry) -> Any:
    """The column value of an area on this connection's dialect."""
    if conn.dialect.name == "postgresql":
        return from_shape(geometry, srid=4326)
    return shapely.to_wkb(geometry)


def decode_geometry(value: Any) -> BaseGeometry:
    """The shapely geometry of a column value (PostGIS or WKB)."""
    return to_shape(value) if isinstance(value, WKBElement) else shapely.from_wkb(bytes(value))
