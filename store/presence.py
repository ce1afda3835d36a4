"""Patrol presence per H3 cell: on-duty unit-seconds from the tracks, time-weighted (`presence_weights`),
aggregated in SQL from an hourly rollup, the same queries on PostgreSQL and SQLite.

Where a fix's cell comes from: it is computed from lon/lat (h3, at `patrol_res`) when an hour is
materialized into `patrol_presence`, not stored on `fixes`: the ingest hot path (one COPY per batch) stays
exactly as it is, and each fix is looked at once, after its hour. Weighting needs each fix's successor
(a window over the unit's fixes) and the status history, which neither a GROUP BY nor a TimescaleDB
continuous aggregate can express, so the rollup is made here, by hour, unit and cell.

An answer is the SQL sum of the materialized whole hours in the range plus the same arithmetic run on the
raw fixes for the rest (the partial hours at its edges, and the hours not settled yet, that is ending less
than `settle_s` ago: late fixes from devices' offline buffers still arrive then). Whole settled hours not
materialized yet are materialized first (TimescaleDB's real-time aggregation, by hand). `keep_presence`
(run by the role that keeps the store) computes the last settled hours again every hour, so a fix arriving
up to `REFRESH_WINDOW` after its hour counts; one later counts once `refresh` runs on its hour again.

Where TimescaleDB is present (`store.presence_tables`), `patrol_presence` is a hypertable and
`patrol_presence_cells` a continuous aggregate of it per cell per hour (all units): answers without a unit
filter read that instead, a hundredth of the rows for a hundred units.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, column, delete, func, not_, select, table, text
from sqlalchemy.exc import IntegrityError

from geo.hexes import cell_of, parent_of
from schemas.fix import NOT_FOR_DISPATCH, FixFlag
from schemas.tables import Flavour, build_metadata
from store.fixes import FIXES
from store.heatmap import parent_cell
from store.presence_weights import HOUR_S, StatusSpan, duty_spans, presence
from store.registry.records import units
from store.registry.statuses import history
from store.snapshot import status_at
from store.times import as_utc, earlier, utc

log = logging.getLogger(__name__)
_md = build_metadata(Flavour("sqlite"))
PRESENCE: Table = _md.tables["patrol_presence"]
HOURS: Table = _md.tables["patrol_presence_hours"]
CAGG = "patrol_presence_cells"  # the continuous aggregate, where TimescaleDB is present
_CELLS = table(CAGG, column("hour"), column("cell"), column("seconds"))
# Fixes that are not where the unit was (as for distance patrolled): their time goes to the fix before.
NOT_PRESENCE = NOT_FOR_DISPATCH | int(FixFlag.MOCK)
_CHUNK = timedelta(days=1)  # hours materialized per transaction


@dataclass(frozen=True)
class PresenceSettings:
    """How presence is computed: the cells' resolution, the longest a fix stands for, when an hour is done."""

    patrol_res: int = 9
    max_gap_s: float = 120.0
    settle_s: float = 3600.0


@dataclass(frozen=True)
class PresenceQuery:
    """Presence in [start, end) per cell at `res` (≤ the patrol resolution), of `unit_ids` (empty: all)."""

    res: int
    start: datetime
    end: datetime
    unit_ids: tuple[str, ...] = ()


_LAST = datetime.max.replace(tzinfo=UTC)


def presence_cells(
    engine: Engine, query: PresenceQuery, settings: PresenceSettings, now: datetime
) -> list[tuple[int, float]]:
    """(cell at `query.res`, on-duty unit-seconds) for every cell with some, by cell."""
    if query.res > settings.patrol_res:
        raise ValueError(f"res {query.res} is finer than the patrol resolution {settings.patrol_res}")
    start, end = utc(query.start), utc(query.end)
    first = _hour_ceil(start)
    last = min(_hour_floor(end), _hour_floor(utc(now) - timedelta(seconds=settings.settle_s)))
    totals: dict[int, float] = defaultdict(float)
    raw = [(start, end)]
    if first < last:
        # No hour before the first stored fix holds presence: a range reaching back to year 1 is not
        # computed (nor marked done) hour by hour.
        since = _first_fix_hour(engine)
        if since is not None and max(first, since) < last:
            materialize(engine, max(first, since), last, settings, now)
        with engine.connect() as conn:
            for cell, seconds in _summed(conn, query, first, last):
                totals[int(cell)] += float(seconds)
        raw = [(start, first), (last, end)]
    with engine.connect() as conn:
        for lo, hi in raw:
            if lo < hi:
                for (_, _, cell), seconds in computed(conn, lo, hi, settings, query.unit_ids).items():
                    totals[parent_of(cell, query.res)] += seconds
    return sorted((cell, seconds) for cell, seconds in totals.items() if seconds > 0)


def _summed(conn: Connection, query: PresenceQuery, first: datetime, last: datetime) -> Any:
    if not query.unit_ids and _has_cagg(conn):
        source: Any = _CELLS
        conditions = [_CELLS.c.hour >= first, _CELLS.c.hour < last]
    else:
        source = PRESENCE
        conditions = [PRESENCE.c.hour >= first, PRESENCE.c.hour < last]
        if query.unit_ids:
            conditions.append(PRESENCE.c.unit_id.in_(query.unit_ids))
    cell = parent_cell("cell", query.res)
    stmt = select(cell.label("c"), func.sum(source.c.seconds)).where(*conditions).group_by(cell)
    return conn.execute(stmt)


def _has_cagg(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return conn.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": CAGG}).scalar() is True


def materialize(
    engine: Engine, first: datetime, last: datetime, settings: PresenceSettings, now: datetime
) -> int:
    """Compute and store every hour in [first, last) not materialized yet at the patrol resolution; how
    many hours were computed."""
    with engine.connect() as conn:
        done = {
            as_utc(h)
            for (h,) in conn.execute(
                select(HOURS.c.hour).where(
                    HOURS.c.hour >= first, HOURS.c.hour < last, HOURS.c.res == settings.patrol_res
                )
            )
        }
    missing = [h for h in _hours(first, last) if h not in done]
    for lo, hi in _runs(missing):
        refresh(engine, lo, hi, settings, now)
    return len(missing)


def refresh(
    engine: Engine, first: datetime, last: datetime, settings: PresenceSettings, now: datetime
) -> None:
    """Compute the whole hours in [first, last) again from the fixes and replace what is stored for them
    (after late fixes; idempotent)."""
    for lo in _steps(_hour_floor(utc(first)), _hour_ceil(utc(last)), _CHUNK):
        hi = min(lo + _CHUNK, _hour_ceil(utc(last)))
        try:
            with engine.begin() as conn:
                rows = computed(conn, lo, hi, settings, ())
                conn.execute(delete(PRESENCE).where(PRESENCE.c.hour >= lo, PRESENCE.c.hour < hi))
                conn.execute(delete(HOURS).where(HOURS.c.hour >= lo, HOURS.c.hour < hi))
                if rows:
                    conn.execute(
                        PRESENCE.insert(),
                        [
                            {"hour": _instant(h), "unit_id": u, "cell": c, "seconds": s}
                            for (h, u, c), s in rows.items()
                        ],
                    )
                marks = [
                    {"hour": h, "res": settings.patrol_res, "refreshed_at": utc(now)} for h in _hours(lo, hi)
                ]
                conn.execute(HOURS.insert(), marks)
        except IntegrityError:
            continue  # another request materialized these hours at the same moment: theirs stand
        _refresh_cagg(engine, lo, hi)


def _refresh_cagg(engine: Engine, lo: datetime, hi: datetime) -> None:
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as probe:
        if not _has_cagg(probe):
            return
    # A continuous aggregate refreshes outside any transaction block.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CALL refresh_continuous_aggregate('{CAGG}', :lo, :hi)"), {"lo": lo, "hi": hi})


def computed(
    conn: Connection, start: datetime, end: datetime, settings: PresenceSettings, unit_ids: Sequence[str]
) -> dict[tuple[float, str, int], float]:
    """{(hour start as epoch seconds, unit, cell at the patrol resolution): on-duty seconds} in
    [start, end), from the raw fixes and the status history."""
    lo_s, hi_s = start.timestamp(), end.timestamp()
    statuses = dict(conn.execute(_narrow(select(units.c.id, status_at(start)), units.c.id, unit_ids)).all())
    changes: dict[str, list[StatusSpan]] = defaultdict(list)
    found = conn.execute(
        _narrow(
            select(history.c.unit_id, history.c.at, history.c.to_status).where(
                history.c.at > start, history.c.at < end
            ),
            history.c.unit_id,
            unit_ids,
        ).order_by(history.c.unit_id, history.c.at, history.c.id)
    )
    for unit_id, at, to_status in found:
        changes[unit_id].append(StatusSpan(as_utc(at).timestamp(), to_status))
    out: dict[tuple[float, str, int], float] = {}
    for unit_id, rows in itertools.groupby(_fixes(conn, start, end, settings, unit_ids), key=lambda r: r[0]):
        duty = duty_spans(statuses.get(unit_id, "off_duty"), changes.get(unit_id, []), lo_s, hi_s)
        if not duty:
            continue
        fixes = ((as_utc(ts).timestamp(), cell_of(lon, lat, settings.patrol_res)) for _, ts, lon, lat in rows)
        for (hour, cell), seconds in presence(fixes, duty, lo_s, hi_s, settings.max_gap_s).items():
            out[(hour, unit_id, cell)] = seconds
    return out


def _fixes(
    conn: Connection, start: datetime, end: datetime, settings: PresenceSettings, unit_ids: Sequence[str]
) -> Iterator[Any]:
    f = FIXES.c
    stmt = select(f.unit_id, f.ts, f.lon, f.lat).where(
        f.unit_id.is_not(None),
        f.ts >= earlier(start, timedelta(seconds=settings.max_gap_s)),
        f.ts < end,
        f.flags.op("&")(NOT_PRESENCE) == 0,
        not_(f.restricted),  # taken off duty: no patrol, and no one's business
    )
    return iter(conn.execute(_narrow(stmt, f.unit_id, unit_ids).order_by(f.unit_id, f.ts)))


def _narrow(stmt: Any, col: Any, unit_ids: Sequence[str]) -> Any:
    return stmt.where(col.in_(list(unit_ids))) if unit_ids else stmt


def materialized_hours(engine: Engine, res: int) -> int:
    """How many hours are materialized at `res` (the benchmark's and the tests' view)."""
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(HOURS).where(HOURS.c.res == res)).scalar_one()
        )


def _first_fix_hour(engine: Engine) -> datetime | None:
    """The hour of the oldest stored fix (an index lookup on `ix_fixes_ts`); None without fixes."""
    with engine.connect() as conn:
        oldest = conn.execute(select(func.min(FIXES.c.ts))).scalar()
    return None if oldest is None else _hour_floor(as_utc(oldest))


def _hour_floor(t: datetime) -> datetime:
    return datetime.fromtimestamp(math.floor(t.timestamp() / HOUR_S) * HOUR_S, UTC)


def _hour_ceil(t: datetime) -> datetime:
    """The next whole hour (`t` itself when whole); the calendar's last instant in its last hour."""
    try:
        return datetime.fromtimestamp(math.ceil(t.timestamp() / HOUR_S) * HOUR_S, UTC)
    except (OverflowError, ValueError):  # year 10000
        return _LAST


def _instant(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _hours(first: datetime, last: datetime) -> list[datetime]:
    return list(_steps(first, last, timedelta(hours=1)))


def _steps(first: datetime, last: datetime, step: timedelta) -> Iterator[datetime]:
    t = first
    while t < last:
        yield t
        t += step


def _runs(hours: list[datetime]) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive hours as [first, last) runs."""
    for _, group in itertools.groupby(enumerate(hours), key=lambda p: p[1] - timedelta(hours=p[0])):
        run = [h for _, h in group]
        yield run[0], run[-1] + timedelta(hours=1)


# Each hour the last few settled hours are computed again: fixes from devices' offline buffers that came in
# after an hour was first materialized are counted then. Longer: later arrivals caught, more work an hour.
REFRESH_WINDOW = timedelta(hours=6)
REFRESH_EVERY_S = 3600.0


async def keep_presence(engine: Engine, settings: PresenceSettings) -> None:
    """Refresh the last `REFRESH_WINDOW` of settled hours now and every `REFRESH_EVERY_S`, forever (the role
    that keeps the store runs it); a failure waits for the next round."""
    while True:
        now = datetime.now(UTC)
        last = _hour_floor(now - timedelta(seconds=settings.settle_s))
        try:
            await asyncio.to_thread(refresh, engine, last - REFRESH_WINDOW, last, settings, now)
        except Exception:
            log.exception("patrol presence refresh failed; retrying in an hour")
        await asyncio.sleep(REFRESH_EVERY_S)
