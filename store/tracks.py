"""Reading tracks back: a unit's or a device's stored fixes over a time range, in time order, page by page.

A day at 1 Hz is 86,400 rows, a month of a busy device millions: callers read a page at a time (keyset
paging on (ts, device_id), which `pk_fixes` and `ix_fixes_unit_ts` serve), so an answer can stream
without holding the range in memory. Both backends give the same rows in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.engine import Row

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
    owner = (
        FIXES.c.unit_id == query.unit_id
        if query.unit_id is not None
        else FIXES.c.device_id == query.device_id
    )
    conditions = [owner, FIXES.c.ts >= utc(query.start), FIXES.c.ts < utc(query.end)]
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
