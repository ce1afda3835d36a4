"""Reading tracks back: a unit's or a device's stored fixes over a time range, in time order, page by page.

A day at 1 Hz is 86,400 rows, a month of a busy device millions: callers read a page at a time (keyset
paging on (ts, device_id), which `pk_fixes` and `ix_fixes_unit_ts` serve), so an answer can stream
without holding the range in memory. Both backends give the same rows in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import psycopg
from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement

from geo.track import TrackPoint
from store.fixes import FIXES
from store.times import as_utc, utc

_COLUMNS = ("ts", "device_id", "lon", "lat", "accuracy_m", "speed_mps", "heading_deg", "flags")


@dataclass(frozen=True)
class TrackQuery:
    """Whose fixes (`unit_id` or `device_id`, exactly one), from `start` (inclusive) to `end` (exclusive)."""

    start: datetime
    end: datetime
    unit_id: str | None = None
    device_id: str | None = None

    def __post_init__(self) -> None:
        if (self.unit_id is None) == (self.device_id is None):
            raise ValueError("a track is of one unit or of one device")


@dataclass(frozen=True)
class Cursor:
    """Where the previous page ended: its last row's time and device."""

    ts: datetime
    device_id: str


def track_page(
    engine: Engine, query: TrackQuery, after: Cursor | None, limit: int
) -> tuple[list[TrackPoint], Cursor | None]:
    """Up to `limit` points after `after` (None: from the start), and the cursor of the next page (None when
    this page is the last)."""
    conditions = [_owner(query), FIXES.c.ts >= utc(query.start), FIXES.c.ts < utc(query.end)]
    if after is not None:
        ts = utc(after.ts)
        conditions.append(or_(FIXES.c.ts > ts, and_(FIXES.c.ts == ts, FIXES.c.device_id > after.device_id)))
    statement = (
        select(*FIXES.c[_COLUMNS]).where(*conditions).order_by(FIXES.c.ts, FIXES.c.device_id).limit(limit)
    )
    with engine.connect() as conn:
        rows = list(conn.execute(statement))
    points = [_point(r) for r in rows]
    if len(rows) < limit:
        return points, None
    last = rows[-1]._mapping
    return points, Cursor(as_utc(last["ts"]), last["device_id"])


def track_points(engine: Engine, query: TrackQuery, limit: int) -> list[TrackPoint]:
    """Every point of the range in one read, at most `limit` + 1 (so the caller can tell "over the limit").

    The fast read for answers that need the whole range at once (a simplified track, a summary): times come
    back as epoch seconds computed by the database (PostgreSQL) rather than as datetimes made in Python, which
    is most of the cost of a row. SQLite spells times as text; they are read the same way as everywhere else.
    """
    if engine.dialect.name != "postgresql":
        points: list[TrackPoint] = []
        after: Cursor | None = None
        while len(points) <= limit:
            page, after = track_page(engine, query, after, min(limit + 1 - len(points), 50_000))
            points.extend(page)
            if after is None:
                break
        return points
    owner, value = ("unit_id", query.unit_id) if query.unit_id is not None else ("device_id", query.device_id)
    pooled = engine.raw_connection()
    try:
        driver = cast(psycopg.Connection[Any], pooled.dbapi_connection)
        # psycopg's binary protocol, straight into tuples: twice the rate of SQLAlchemy rows here.
        with driver.cursor(binary=True) as cur:
            cur.execute(_FAST_READ.format(owner=owner), (value, utc(query.start), utc(query.end), limit + 1))
            rows = cur.fetchall()
        driver.commit()
    finally:
        pooled.close()
    return [TrackPoint._make(row) for row in rows]


# In TrackPoint's order, so a row is a point as it comes; the epoch computed by PostgreSQL (exact to the µs).
_FAST_READ = (
    "SELECT extract(epoch FROM ts)::float8, lon, lat, device_id, accuracy_m::float8, speed_mps::float8,"
    " heading_deg::float8, flags FROM fixes WHERE {owner} = %s AND ts >= %s AND ts < %s"
    " ORDER BY ts, device_id LIMIT %s"
)


def _owner(query: TrackQuery) -> ColumnElement[bool]:
    if query.unit_id is not None:
        return FIXES.c.unit_id == query.unit_id
    return FIXES.c.device_id == query.device_id


def _point(row: Row[Any]) -> TrackPoint:
    m = row._mapping
    return TrackPoint(
        ts_s=as_utc(m["ts"]).timestamp(),
        lon=m["lon"],
        lat=m["lat"],
        device_id=m["device_id"],
        accuracy_m=m["accuracy_m"],
        speed_mps=m["speed_mps"],
        heading_deg=m["heading_deg"],
        flags=m["flags"],
    )
