"""Reading tracks back: a unit's or a device's stored fixes over a time range, in time order, page by page.

A day at 1 Hz is 86,400 rows, a month of a busy device millions: callers read a page at a time (keyset
paging on (ts, device_id), which `pk_fixes` and `ix_fixes_unit_ts` serve), so an answer can stream
without holding the range in memory. Both backends give the same rows in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import psycopg
from sqlalchemy import Engine, and_, not_, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement

from geo.track import TrackPoint
from store.fixes import FIXES
from store.times import as_utc, utc

_COLUMNS = ("ts", "device_id", "lon", "lat", "accuracy_m", "speed_mps", "heading_deg", "flags")


@dataclass(frozen=True)
class TrackQuery:
    """Whose fixes (`unit_id` or `device_id`, exactly one), from `start` (inclusive) to `end` (exclusive);
    `with_restricted`: the fixes taken off duty too (an admin's audited read), else they are left out."""

    start: datetime
    end: datetime
    unit_id: str | None = None
    device_id: str | None = None
    with_restricted: bool = False

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
    if not query.with_restricted:
        conditions.append(not_(FIXES.c.restricted))
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
    owner, value = _owner_value(query)
    # psycopg's binary protocol, straight into tuples: twice the rate of SQLAlchemy rows here.
    with _driver(engine) as driver, driver.cursor(binary=True) as cur:
        cur.execute(
            _FAST_READ.format(owner=owner, restricted=_restricted(query)),
            (value, utc(query.start), utc(query.end), limit + 1),
        )
        rows = cur.fetchall()
    return [TrackPoint._make(row) for row in rows]


# In TrackPoint's order, so a row is a point as it comes; the epoch computed by PostgreSQL (exact to the µs).
_FAST_READ = (
    "SELECT extract(epoch FROM ts)::float8, lon, lat, device_id, accuracy_m::float8, speed_mps::float8,"
    " heading_deg::float8, flags FROM fixes WHERE {owner} = %s AND ts >= %s AND ts < %s{restricted}"
    " ORDER BY ts, device_id LIMIT %s"
)


@dataclass(frozen=True)
class TrackColumns:
    """A one-device track as columns: the device, and each fix's time (µs since 2000-01-01, PostgreSQL's own
    count), longitude and latitude, in time order."""

    device_id: str
    ts_us: npt.NDArray[np.int64]
    lons: npt.NDArray[np.float64]
    lats: npt.NDArray[np.float64]


def track_columns(engine: Engine, query: TrackQuery, limit: int) -> TrackColumns | int | None:
    """The range as columns, when that is quick: on PostgreSQL, and when one device made every fix of the
    range (a unit with several devices needs `OneLine` over whole points). None otherwise, and the number of
    fixes when there are more than `limit`.

    Why it is quick (profiled: a day at 1 Hz, 86,400 fixes, 110 ms as rows, 27 ms so): the database packs
    each column into one bytea of binary values (`timestamptz_send`, `float8send`), which numpy reads as it
    comes, instead of 86,400 rows of Python objects, and no epoch is computed (`extract(epoch …)` is a
    numeric, the slowest part of the row read). Ordered by `ts` alone: with one device, times are unique.
    """
    if engine.dialect.name != "postgresql":
        return None
    owner, value = _owner_value(query)
    with _driver(engine) as driver, driver.cursor(binary=True) as cur:
        cur.execute(
            _COLUMNS_READ.format(owner=owner, restricted=_restricted(query)),
            (value, utc(query.start), utc(query.end), limit + 1),
        )
        found = cur.fetchone()
    assert found is not None
    count, first_device, last_device, ts, lons, lats = found
    if count > limit:
        return int(count)
    if count == 0 or first_device != last_device:
        return None
    ts_us = np.frombuffer(ts, dtype=">i8").astype(np.int64)
    lon, lat = (
        np.frombuffer(lons, dtype=">f8").astype(np.float64),
        np.frombuffer(lats, dtype=">f8").astype(np.float64),
    )
    if ts_us.size > 1 and bool((np.diff(ts_us) < 0).any()):
        # PostgreSQL aggregates in the subquery's order "usually" (its manual): sorted here if it did not.
        order = np.argsort(ts_us, kind="stable")
        ts_us, lon, lat = ts_us[order], lon[order], lat[order]
    return TrackColumns(first_device, ts_us, lon, lat)


def points_of(engine: Engine, columns: TrackColumns, indices: npt.NDArray[np.intp]) -> list[TrackPoint]:
    """The whole points at `indices` of `columns` (the ones a simplification kept), read by primary key."""
    instants = [_PG_EPOCH + timedelta(microseconds=int(us)) for us in columns.ts_us[indices]]
    if not instants:
        return []
    with _driver(engine) as driver, driver.cursor(binary=True) as cur:
        cur.execute(_POINTS_READ, (instants, columns.device_id))
        return [TrackPoint._make(row) for row in cur.fetchall()]


_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_COLUMNS_READ = (
    "SELECT count(*), min(device_id), max(device_id), string_agg(timestamptz_send(ts), ''),"
    " string_agg(float8send(lon), ''), string_agg(float8send(lat), '')"
    " FROM (SELECT ts, lon, lat, device_id FROM fixes WHERE {owner} = %s AND ts >= %s AND ts < %s{restricted}"
    " ORDER BY ts LIMIT %s) AS ordered"  # aggregated in the subquery's order, checked after
)
# A primary-key lookup per instant: LIMIT 1 keeps the lateral a nested loop, which PostgreSQL prunes to one
# partition per lookup; `ts = ANY(…)` probed every partition for every instant, a join hashed them all.
_POINTS_READ = (
    "SELECT f.* FROM unnest(%s::timestamptz[]) AS k(ts) CROSS JOIN LATERAL ("
    " SELECT extract(epoch FROM ts)::float8, lon, lat, device_id, accuracy_m::float8, speed_mps::float8,"
    " heading_deg::float8, flags FROM fixes WHERE ts = k.ts AND device_id = %s LIMIT 1) AS f ORDER BY 1"
)


@contextmanager
def _driver(engine: Engine) -> Iterator[psycopg.Connection[Any]]:
    """The pooled connection's psycopg connection, committed and handed back to the pool on exit."""
    pooled = engine.raw_connection()
    try:
        driver = cast(psycopg.Connection[Any], pooled.dbapi_connection)
        yield driver
        driver.commit()
    finally:
        pooled.close()


def _owner_value(query: TrackQuery) -> tuple[str, str | None]:
    if query.unit_id is not None:
        return "unit_id", query.unit_id
    return "device_id", query.device_id


def _restricted(query: TrackQuery) -> str:
    """The raw reads' condition on `restricted` (appended to their WHERE)."""
    return "" if query.with_restricted else " AND NOT restricted"


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
