"""The fixes a month's report adds up (distance patrolled, time inside the assigned grid): every officer's
stored fixes over the month in one read, as arrays by unit.

A station month is millions of fixes. On PostgreSQL they come as one binary COPY whose rows all have the
same width (the unit as its position in the list asked for, the epoch computed by the database, the device
as a hash), read straight into a numpy record array: no Python object per fix. On SQLite they are
SQLAlchemy rows. Both give the same fixes in the same order (unit, time, device), and number each unit's
devices in the order they first appear, so the two agree exactly.
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
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class UnitFixes:
    """One unit's fixes in time order: epoch seconds, lon, lat, flags, accuracy (NaN: none given) and the
    device of each (0, 1, 2, … in the order the unit's devices first appear)."""

    ts_s: Floats
    lon: Floats
    lat: Floats
    flags: Ints
    accuracy_m: Floats
    devices: Ints

    def __len__(self) -> int:
        return len(self.ts_s)


_COPY = (
    "COPY (SELECT u.n::int4, extract(epoch FROM f.ts)::float8, f.lon::float8, f.lat::float8, f.flags::int4,"
    " coalesce(f.accuracy_m::float8, 'NaN'::float8), hashtext(f.device_id)"
    " FROM fixes f JOIN unnest(%s::text[]) WITH ORDINALITY AS u(id, n) ON f.unit_id = u.id"
    " WHERE f.ts >= %s AND f.ts < %s ORDER BY u.n, f.ts, f.device_id) TO STDOUT (FORMAT BINARY)"
)
# One row of that COPY: the field count, then each field's length and value (big-endian).
_FIELDS = (
    ("n", ">i4"),
    ("ts", ">f8"),
    ("lon", ">f8"),
    ("lat", ">f8"),
    ("flags", ">i4"),
    ("acc", ">f8"),
    ("dev", ">i4"),
)
_HEADER = 19  # PGCOPY signature (11), flags (4), header extension length (4)


def _row_dtype() -> np.dtype[Any]:
    parts: list[tuple[str, str]] = [("fields", ">i2")]
    for name, kind in _FIELDS:
        parts += [(f"{name}_len", ">i4"), (name, kind)]
    return np.dtype(parts)


ROW = _row_dtype()


def unit_fixes(engine: Engine, unit_ids: Sequence[str], start_s: float, end_s: float) -> dict[str, UnitFixes]:
    """The fixes of each of `unit_ids` with a time in [start_s, end_s) (a unit without any is absent)."""
    if not unit_ids:
        return {}
    start, end = datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(end_s, UTC)
    if engine.dialect.name == "postgresql":
        return _read_pg(engine, list(unit_ids), start, end)
    f = FIXES.c
    query = (
        select(f.unit_id, f.ts, f.lon, f.lat, f.flags, f.accuracy_m, f.device_id)
        .where(f.unit_id.in_(list(unit_ids)), f.ts >= start, f.ts < end)
        .order_by(f.unit_id, f.ts, f.device_id)
    )
    with engine.connect() as conn:
        rows = [(r[0], as_utc(r[1]).timestamp(), *r[2:]) for r in conn.execute(query)]
    return _by_unit(rows)


def _read_pg(engine: Engine, unit_ids: list[str], start: datetime, end: datetime) -> dict[str, UnitFixes]:
    pooled = engine.raw_connection()
    chunks: list[bytes] = []
    try:
        driver = cast(psycopg.Connection[Any], pooled.dbapi_connection)
        with driver.cursor() as cur, cur.copy(_COPY, (unit_ids, start, end)) as copy:
            chunks.extend(bytes(data) for data in copy)
        driver.commit()
    finally:
        pooled.close()
    data = b"".join(chunks)
    body = data[_HEADER : len(data) - 2]  # the trailer is a field count of -1
    rows = np.frombuffer(body, dtype=ROW)
    if len(rows) and int(rows["fields"].min()) != len(_FIELDS):
        raise RuntimeError("unexpected COPY row layout")
    found: dict[str, UnitFixes] = {}
    n = rows["n"].astype(np.int64)
    cuts = np.flatnonzero(np.diff(n)) + 1
    for part in np.split(np.arange(len(rows)), cuts) if len(rows) else []:
        r = rows[part[0] : part[-1] + 1]
        found[unit_ids[int(r["n"][0]) - 1]] = UnitFixes(
            r["ts"].astype(np.float64),
            r["lon"].astype(np.float64),
            r["lat"].astype(np.float64),
            r["flags"].astype(np.int64),
            r["acc"].astype(np.float64),
            _first_seen(r["dev"].astype(np.int64)),
        )
    return dict(sorted(found.items()))


def _first_seen(keys: Ints) -> Ints:
    """Each key replaced by the order in which it first appears (0, 1, …)."""
    unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.empty(len(unique), dtype=np.int64)
    order[np.argsort(first)] = np.arange(len(unique))
    return order[inverse]


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
    seen: dict[str, int] = {}
    return UnitFixes(
        np.array(ts, dtype=np.float64),
        np.array(lon, dtype=np.float64),
        np.array(lat, dtype=np.float64),
        np.array(flags, dtype=np.int64),
        np.array([np.nan if a is None else a for a in accuracy], dtype=np.float64),
        np.array([seen.setdefault(d, len(seen)) for d in devices], dtype=np.int64),
    )
