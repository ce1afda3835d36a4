"""The fixes a month's report adds up (distance patrolled, time inside the assigned grid): every officer's
stored fixes over the month in one read, as arrays by unit.

A station month is millions of fixes: on PostgreSQL they come through psycopg's binary protocol with the
epoch computed by the database (as `store.tracks.track_points` reads a track), on SQLite as SQLAlchemy rows;
both give the same fixes in the same order (unit, time, device).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import psycopg
from sqlalchemy import Engine, select

from store.fixes import FIXES
from store.times import as_utc

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class UnitFixes:
    """One unit's fixes in time order: epoch seconds, lon, lat, flags, accuracy and the device of each."""

    ts_s: Floats
    lon: Floats
    lat: Floats
    flags: npt.NDArray[np.int64]
    accuracy_m: Floats  # NaN where the fix gave none
    devices: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ts_s)


_FAST_READ = (
    "SELECT unit_id, extract(epoch FROM ts)::float8, lon, lat, flags, accuracy_m::float8, device_id"
    " FROM fixes WHERE unit_id = ANY(%s) AND ts >= %s AND ts < %s ORDER BY unit_id, ts, device_id"
)


def unit_fixes(engine: Engine, unit_ids: Sequence[str], start_s: float, end_s: float) -> dict[str, UnitFixes]:
    """The fixes of each of `unit_ids` with a time in [start_s, end_s) (a unit without any is absent)."""
    if not unit_ids:
        return {}
    start, end = datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(end_s, UTC)
    if engine.dialect.name == "postgresql":
        rows = _read_pg(engine, list(unit_ids), start, end)
    else:
        f = FIXES.c
        query = (
            select(f.unit_id, f.ts, f.lon, f.lat, f.flags, f.accuracy_m, f.device_id)
            .where(f.unit_id.in_(list(unit_ids)), f.ts >= start, f.ts < end)
            .order_by(f.unit_id, f.ts, f.device_id)
        )
        with engine.connect() as conn:
            rows = [(r[0], as_utc(r[1]).timestamp(), *r[2:]) for r in conn.execute(query)]
    return _by_unit(rows)


def _read_pg(engine: Engine, unit_ids: list[str], start: datetime, end: datetime) -> list[tuple[Any, ...]]:
    pooled = engine.raw_connection()
    try:
        driver = cast(psycopg.Connection[Any], pooled.dbapi_connection)
        with driver.cursor(binary=True) as cur:
            cur.execute(_FAST_READ, (unit_ids, start, end))
            rows = cur.fetchall()
        driver.commit()
    finally:
        pooled.close()
    return rows


def _by_unit(rows: Iterable[tuple[Any, ...]]) -> dict[str, UnitFixes]:
    """Rows sorted by unit, cut into one `UnitFixes` a unit."""
    found: dict[str, UnitFixes] = {}
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        if batch and row[0] != batch[0][0]:
            found[batch[0][0]] = _arrays(batch)
            batch = []
        batch.append(row)
    if batch:
        found[batch[0][0]] = _arrays(batch)
    return found


def _arrays(rows: list[tuple[Any, ...]]) -> UnitFixes:
    _, ts, lon, lat, flags, accuracy, devices = zip(*rows, strict=True)
    return UnitFixes(
        np.array(ts, dtype=np.float64),
        np.array(lon, dtype=np.float64),
        np.array(lat, dtype=np.float64),
        np.array(flags, dtype=np.int64),
        np.array([np.nan if a is None else a for a in accuracy], dtype=np.float64),
        tuple(devices),
    )
