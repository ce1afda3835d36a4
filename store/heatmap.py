"""Heat maps of incidents: counts per H3 hexagon, aggregated in the database, the same SQL on both stores.

Each incident stores its res-15 cell (`incidents.h3_cell`); its hexagon at resolution r is
`(h3_cell & clear) | set` (`geo.hexes.parent_masks`), so one `GROUP BY` answers any resolution without a
row leaving the database. The masks are integers of our own making, written into the SQL as literals so the
select list and the GROUP BY are the very same expression on PostgreSQL.

Hour and weekday filters are in the station's local time, computed at query time: PostgreSQL converts with
`AT TIME ZONE` (its own tz database); SQLite has no time zones, so the query registers two deterministic
functions on its connection that convert with `zoneinfo`. Nothing time-zone dependent is stored, so changing
or correcting the station's zone needs no rewrite of the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, ColumnElement, Connection, Engine, func, literal_column, select

from geo.hexes import parent_masks
from store.incidents.rows import INCIDENTS

_C = INCIDENTS.c


@dataclass(frozen=True)
class HeatmapQuery:
    """What to count: `start` ≤ reported_at < `end`, optionally narrowed; empty tuples mean "all"."""

    res: int
    start: datetime
    end: datetime
    categories: tuple[str, ...] = ()  # matched case-insensitively
    priorities: tuple[str, ...] = ()
    hours: tuple[int, ...] = ()  # 0 … 23, station time
    weekdays: tuple[int, ...] = ()  # ISO 8601: 1 Monday … 7 Sunday, station time
    timezone: str = "UTC"  # the station's IANA zone


def hex_counts(engine: Engine, query: HeatmapQuery) -> list[tuple[int, int]]:
    """(cell at `query.res`, incidents) for every hexagon with at least one, by cell."""
    with engine.connect() as conn:
        return _hex_counts(conn, query)


def _hex_counts(conn: Connection, query: HeatmapQuery) -> list[tuple[int, int]]:
    cell = parent_cell("h3_cell", query.res)
    conditions: list[ColumnElement[bool]] = [
        _C.h3_cell.is_not(None),
        _C.reported_at >= query.start,
        _C.reported_at < query.end,
    ]
    if query.categories:
        conditions.append(func.lower(_C.category).in_([c.lower() for c in query.categories]))
    if query.priorities:
        conditions.append(_C.priority.in_(list(query.priorities)))
    if query.hours or query.weekdays:
        hour, weekday = _local_parts(conn, query.timezone)
        if query.hours:
            conditions.append(hour.in_(list(query.hours)))
        if query.weekdays:
            conditions.append(weekday.in_(list(query.weekdays)))
    stmt = select(cell.label("cell"), func.count().label("n")).where(*conditions)
    stmt = stmt.group_by(cell).order_by(cell)
    return [(int(r.cell), int(r.n)) for r in conn.execute(stmt)]


def incident_categories(engine: Engine) -> list[str]:
    """Every category stored, lower-cased, sorted (what a heat map's `category` may name)."""
    with engine.connect() as conn:
        rows = conn.execute(select(func.lower(_C.category)).distinct().order_by(func.lower(_C.category)))
        return [r[0] for r in rows]


def parent_cell(column: str, res: int) -> ColumnElement[Any]:
    """SQL for the parent at `res` of the H3 cells (int64, any finer resolution) in `column`."""
    clear, set_ = parent_masks(res)
    return _int64(f"({column} & {_int64_sql(clear)}) | {_int64_sql(set_)}")


def _int64(sql: str) -> ColumnElement[Any]:
    return literal_column(sql, BigInteger)


def _int64_sql(value: int) -> str:
    return f"CAST({int(value)} AS BIGINT)"


def _local_parts(conn: Connection, zone_name: str) -> tuple[ColumnElement[int], ColumnElement[int]]:
    """SQL for the local hour (0–23) and ISO weekday (1–7) of `reported_at` in `zone_name`."""
    if conn.dialect.name == "postgresql":
        local = func.timezone(zone_name, _C.reported_at)
        hour = func.date_part("hour", local).cast(BigInteger)
        return hour, func.date_part("isodow", local).cast(BigInteger)
    zone = ZoneInfo(zone_name)
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.create_function("outpost_local_hour", 1, partial(_sqlite_local, zone, "hour"), deterministic=True)
    raw.create_function("outpost_local_isodow", 1, partial(_sqlite_local, zone, "isodow"), deterministic=True)
    return func.outpost_local_hour(_C.reported_at), func.outpost_local_isodow(_C.reported_at)


def _sqlite_local(zone: ZoneInfo, part: str, stored: str | None) -> int | None:
    # SQLite holds the column as naive UTC text ("2008-05-30 07:01:00.000000").
    if stored is None:
        return None
    local = datetime.fromisoformat(stored).replace(tzinfo=UTC).astimezone(zone)
    return local.hour if part == "hour" else local.isoweekday()
