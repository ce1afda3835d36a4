"""The fixes a month's report adds up (distance patrolled, time inside the assigned grid): every officer's
stored fixes over the month in one read, as arrays by unit.

A station month is millions of fixes. On PostgreSQL each unit's come packed by the database into byte
strings of float8 (the epoch computed by the database), read straight into numpy; on SQLite they are
SQLAlchemy rows. Both give the same fixes in the same order (unit, time, device) and number each unit's
devices in the order they first appear; accuracy is read where the one line needs it (several devices).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import psycopg
from sqlalchemy import Engine, not_, select

from store.fixes import FIXES
from store.times import as_utc

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class UnitFixes:
    """One unit's fixes in time order: epoch seconds, lon, lat, accuracy (NaN: none given or not read) and the
    device of each (0, 1, 2, … in the order the unit's devices first appear)."""

    ts_s: Floats
    lon: Floats
    lat: Floats
    accuracy_m: Floats
    devices: Ints

    def __len__(self) -> int:
        return len(self.ts_s)


# Each unit's usable fixes as three bytea columns of big-endian float8 (time, lon, lat), packed by the
# database without sorting (a device has one fix an instant, so a one-device unit is sorted in numpy): one
# row a unit however many fixes, and no Python object per fix. Units with several devices are read again
# row by row (their one line needs the order of ties, each fix's device and accuracy).
_PACKED = (
    "SELECT unit_id, min(device_id), max(device_id),"
    " string_agg(float8send(date_part('epoch', ts)), ''::bytea),"
    " string_agg(float8send(lon), ''::bytea), string_agg(float8send(lat), ''::bytea)"
    " FROM fixes WHERE unit_id IS NOT NULL AND ts >= %s AND ts < %s AND flags & %s = 0"
    " AND NOT restricted GROUP BY unit_id"  # off-duty fixes are no part of the work a report adds up
)


def unit_fixes(
    engine: Engine, unit_ids: Sequence[str], start_s: float, end_s: float, *, skip_flags: int = 0
) -> dict[str, UnitFixes]:
    """The fixes of each of `unit_ids` with a time in [start_s, end_s) and no flag of `skip_flags`, by unit
    id in order (a unit without any is absent)."""
    if not unit_ids:
        return {}
    start, end = datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(end_s, UTC)
    if engine.dialect.name != "postgresql":
        return _rows(engine, unit_ids, start, end, skip_flags)
    wanted = set(unit_ids)
    parts: dict[str, list[tuple[bytes, bytes, bytes]]] = {}
    devices: dict[str, set[str]] = {}
    for unit_id, lowest, highest, ts, lon, lat in _packed(engine, start, end, skip_flags):
        if unit_id in wanted:
            parts.setdefault(unit_id, []).append((ts, lon, lat))
            devices.setdefault(unit_id, set()).update((lowest, highest))
    several = {u for u, ids in devices.items() if len(ids) > 1}
    found = {u: _joined(p) for u, p in parts.items() if u not in several}
    if several:
        found.update(_rows(engine, sorted(several), start, end, skip_flags))
    return dict(sorted(found.items()))


def _joined(parts: list[tuple[bytes, bytes, bytes]]) -> UnitFixes:
    """One unit's packed slices as arrays in time order."""
    t, x, y = (np.frombuffer(b"".join(p[i] for p in parts), dtype=">f8").astype(np.float64) for i in range(3))
    order = np.argsort(t, kind="stable")
    return UnitFixes(t[order], x[order], y[order], np.full(len(t), np.nan), np.zeros(len(t), dtype=np.int64))


# The month is read as this many slices of time at once, each on its own connection (and partitions): the
# database packs them in parallel while the driver waits without the GIL.
_SLICES = 2


def _packed(engine: Engine, start: datetime, end: datetime, skip_flags: int) -> list[tuple[Any, ...]]:
    step = (end - start) / _SLICES
    bounds = [(start + i * step, start + (i + 1) * step if i < _SLICES - 1 else end) for i in range(_SLICES)]
    with ThreadPoolExecutor(_SLICES) as pool:
        slices = list(pool.map(lambda b: _packed_slice(engine, b[0], b[1], skip_flags), bounds))
    return [row for rows in slices for row in rows]


def _packed_slice(engine: Engine, start: datetime, end: datetime, skip_flags: int) -> list[tuple[Any, ...]]:
    pooled = engine.raw_connection()
    try:
        driver = cast(psycopg.Connection[Any], pooled.dbapi_connection)
        with driver.cursor(binary=True) as cur:
            cur.execute(_PACKED, (start, end, skip_flags))
            rows = cur.fetchall()
        driver.commit()
    finally:
        pooled.close()
    return rows


def _rows(
    engine: Engine, unit_ids: Sequence[str], start: datetime, end: datetime, skip_flags: int
) -> dict[str, UnitFixes]:
    f = FIXES.c
    query = (
        select(f.unit_id, f.ts, f.lon, f.lat, f.accuracy_m, f.device_id)
        .where(f.unit_id.in_(list(unit_ids)), f.ts >= start, f.ts < end, f.flags.op("&")(skip_flags) == 0)
        .where(not_(f.restricted))
        .order_by(f.unit_id, f.ts, f.device_id)
    )
    with engine.connect() as conn:
        rows = [(r[0], as_utc(r[1]).timestamp(), *r[2:]) for r in conn.execute(query)]
    return _by_unit(rows)


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
    _, ts, lon, lat, accuracy, devices = zip(*rows, strict=True)
    seen: dict[str, int] = {}
    return UnitFixes(
        np.array(ts, dtype=np.float64),
        np.array(lon, dtype=np.float64),
        np.array(lat, dtype=np.float64),
        np.array([np.nan if a is None else a for a in accuracy], dtype=np.float64),
        np.array([seen.setdefault(d, len(seen)) for d in devices], dtype=np.int64),
    )
