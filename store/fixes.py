"""Storing fixes: the hot write path, dead letters, and the reads that rebuild the live index.

PostgreSQL: each batch is one transaction: binary COPY into a per-connection TEMP staging table (ON COMMIT
DELETE ROWS), then `INSERT INTO fixes … SELECT … ON CONFLICT (device_id, ts) DO NOTHING`. COPY is the fast
way in; the staging step is what makes it idempotent, since COPY itself has no ON CONFLICT.

SQLite: `INSERT OR IGNORE` executemany in one `BEGIN IMMEDIATE` transaction. Timestamps are stored as text
`YYYY-MM-DD HH:MM:SS.ffffff` in UTC: the format SQLAlchemy's SQLite DateTime reads and writes, so Core
queries elsewhere agree with it; fixed width, so text order is time order (range queries, max()); one
spelling per instant, so the (device_id, ts) primary key really is unique per instant. Callers of Core
queries on SQLite must bind UTC datetimes (`utc` does it). Reads here return timezone-aware UTC datetimes.

`StoreUnavailable` means "the database cannot take this right now" (refused, shut down, timed out, locked,
disk full, read-only after a failover; see store.errors): the caller keeps the batch (ingest
spools it) and retries. Anything else propagates: rows refused for their content (`is_content_error`) or a
bug.
The reads below raise SQLAlchemy's own errors unchanged.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Engine, MetaData, func, insert, not_, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.engine import Row
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.elements import ColumnElement

from schemas.fix import MAX_RAW_PAYLOAD_BYTES, NOT_FOR_DISPATCH, Fix, RejectedMessage
from schemas.tables import Flavour, telemetry
from schemas.tables.telemetry import FIX_COLUMNS, GEOM_EXPRESSION
from store.errors import StoreUnavailable as StoreUnavailable  # re-exported: callers import it here
from store.errors import is_unavailable, sqlite_error_name
from store.rows import record_of
from store.times import utc

log = logging.getLogger(__name__)

T = TypeVar("T")

# Column types for reading and for dead letters; the same on both dialects (geom is never read here).
_md = MetaData()
telemetry.define(_md, Flavour("sqlite"))
FIXES = _md.tables["fixes"]
REJECTED = _md.tables["rejected_messages"]

_COLS = ", ".join(FIX_COLUMNS)
_STAGING = "fix_staging"
_STAGING_DDL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} (device_id text NOT NULL, unit_id text,"
    " ts timestamptz NOT NULL, received_at timestamptz NOT NULL, lon float8 NOT NULL, lat float8 NOT NULL,"
    " accuracy_m float4, speed_mps float4, heading_deg float4, altitude_m float4, battery_pct float4,"
    " seq int8, flags int4 NOT NULL, restricted bool NOT NULL) ON COMMIT DELETE ROWS"
)
# Must match _STAGING_DDL column for column: binary COPY sends exactly these types.
_STAGING_TYPES = [
    "text",
    "text",
    "timestamptz",
    "timestamptz",
    "float8",
    "float8",
    "float4",
    "float4",
    "float4",
    "float4",
    "float4",
    "int8",
    "int4",
    "bool",
]
_COPY = f"COPY {_STAGING} ({_COLS}) FROM STDIN (FORMAT BINARY)"
_SQLITE_INSERT = f"INSERT OR IGNORE INTO fixes ({_COLS}) VALUES ({', '.join('?' * len(FIX_COLUMNS))})"


def sqlite_ts(dt: datetime) -> str:
    """How a timestamp is spelled in the SQLite store (see the module docstring)."""
    return utc(dt).strftime("%Y-%m-%d %H:%M:%S.%f")


def _row(f: Fix, ts: Any, received_at: Any) -> tuple[Any, ...]:
    """The fix as FIX_COLUMNS, in their order, with its two timestamps as the backend spells them."""
    return (
        f.device_id,
        f.unit_id,
        ts,
        received_at,
        f.lon,
        f.lat,
        f.accuracy_m,
        f.speed_mps,
        f.heading_deg,
        f.altitude_m,
        f.battery_pct,
        f.seq,
        int(f.flags),
        f.restricted,
    )


class FixWriter:
    """Writes batches of fixes idempotently on (device_id, ts). Blocking: call it from a worker thread."""

    def __init__(self, engine: Engine, *, statement_timeout_s: float = 30.0, sqlite_busy_retries: int = 2):
        self._engine = engine
        self._dialect = engine.dialect.name
        # A hung server (stalled disk, lock queue) must surface as StoreUnavailable, not block ingest forever.
        self._timeout_ms = int(statement_timeout_s * 1000)
        # busy_timeout already waits per attempt (engine.py); retries cover a writer that holds on longer.
        self._busy_retries = sqlite_busy_retries
        # Physical connections that already have the TEMP staging table (it lives as long as the session).
        self._staged: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
        self._insert_sql: str | None = None

    def write(self, fixes: Sequence[Fix]) -> int:
        """Store `fixes` in one transaction; returns how many were new. Raises StoreUnavailable."""
        if not fixes:
            return 0
        if self._dialect == "postgresql":
            return _guarded(self._engine, lambda raw: self._write_pg(raw, fixes))
        rows = [_row(f, sqlite_ts(f.ts), sqlite_ts(f.received_at)) for f in fixes]
        return _with_busy_retries(
            self._busy_retries, lambda: _guarded(self._engine, lambda raw: _write_sqlite(raw, rows))
        )

    def write_rejected(self, rows: Sequence[RejectedMessage]) -> None:
        """Store dead letters (raw payload bounded to MAX_RAW_PAYLOAD_BYTES). Raises StoreUnavailable."""
        if not rows:
            return
        values = [
            {
                "received_at": utc(r.received_at),
                "source": r.source,
                "device_id": r.device_id,
                "reasons": list(r.reasons),
                "raw": bytes(r.raw[:MAX_RAW_PAYLOAD_BYTES]),
            }
            for r in rows
        ]
        try:
            with self._engine.begin() as conn:
                conn.execute(insert(REJECTED), values)
        except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
            if is_unavailable(exc):
                raise StoreUnavailable(str(exc)) from exc
            raise

    def _write_pg(self, raw: PoolProxiedConnection, fixes: Sequence[Fix]) -> int:
        conn: psycopg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
        fresh = conn not in self._staged
        with conn.cursor() as cur:
            # SET LOCAL: the timeout ends with the transaction; API queries on this connection keep theirs.
            prelude = f"SET LOCAL statement_timeout = {self._timeout_ms}"
            cur.execute(f"{prelude}; {_STAGING_DDL}" if fresh else prelude)
            if self._insert_sql is None:
                self._insert_sql = _insert_statement(cur)
            with cur.copy(_COPY) as copy:
                copy.set_types(_STAGING_TYPES)
                for f in fixes:
                    copy.write_row(_row(f, f.ts, f.received_at))
            cur.execute(self._insert_sql)
            stored = cur.rowcount
        conn.commit()
        if fresh:
            # Only once committed: a rolled-back transaction takes the new TEMP table with it.
            self._staged.add(conn)
        return stored


def _insert_statement(cur: psycopg.Cursor[Any]) -> str:
    """The staging → fixes INSERT; supplies geom when it is a plain column (the TimescaleDB path)."""
    cur.execute(
        "SELECT attgenerated FROM pg_attribute WHERE attrelid = 'fixes'::regclass"
        " AND attname = 'geom' AND NOT attisdropped"
    )
    found = cur.fetchone()
    plain_geom = found is not None and found[0] == ""
    target = f"{_COLS}, geom" if plain_geom else _COLS
    source = f"{_COLS}, {GEOM_EXPRESSION}" if plain_geom else _COLS
    return (
        f"INSERT INTO fixes ({target}) SELECT {source} FROM {_STAGING} ON CONFLICT (device_id, ts) DO NOTHING"
    )


def _write_sqlite(raw: PoolProxiedConnection, rows: list[tuple[Any, ...]]) -> int:
    conn: sqlite3.Connection = raw.driver_connection  # type: ignore[assignment]
    before = conn.total_changes
    # IMMEDIATE takes the write lock up front (waiting busy_timeout), so the batch never fails half-way on it.
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(_SQLITE_INSERT, rows)
    conn.commit()
    return conn.total_changes - before


def _with_busy_retries(retries: int, attempt: Callable[[], T]) -> T:
    for n in range(retries + 1):
        try:
            return attempt()
        except StoreUnavailable as exc:
            cause = exc.__cause__
            busy = isinstance(cause, sqlite3.OperationalError) and sqlite_error_name(cause).startswith(
                ("SQLITE_BUSY", "SQLITE_LOCKED")
            )
            if not busy or n == retries:
                raise
            log.warning("sqlite store is locked, retrying", extra={"attempt": n + 1})
            time.sleep(0.05 * (n + 1))
    raise AssertionError("unreachable")


def _guarded(engine: Engine, work: Callable[[PoolProxiedConnection], T]) -> T:
    with _checkout(engine) as raw:
        return work(raw)


@contextmanager
def _checkout(engine: Engine) -> Iterator[PoolProxiedConnection]:
    """A pooled DBAPI connection; connection failures become StoreUnavailable, broken ones are dropped."""
    try:
        raw = engine.raw_connection()
    except Exception as exc:  # the pool raises the driver's own errors on connect, unwrapped
        if is_unavailable(exc):
            raise StoreUnavailable(str(exc)) from exc
        raise
    try:
        yield raw
    except Exception as exc:
        _release_after(raw, exc)
        if is_unavailable(exc):
            raise StoreUnavailable(str(exc)) from exc
        raise
    finally:
        raw.close()  # back to the pool (a no-op after invalidate)


def _release_after(raw: PoolProxiedConnection, exc: Exception) -> None:
    driver = raw.driver_connection
    broken = isinstance(driver, psycopg.Connection) and (driver.broken or driver.closed)
    if broken:
        # The pool must not hand this connection out again.
        raw.invalidate(exc)
        return
    try:
        raw.rollback()
    except Exception as rollback_exc:  # the connection died while failing: same outcome as broken
        raw.invalidate(rollback_exc)


# ---------------------------------------------------------------- reads


def _fix(row: Row[Any]) -> Fix:
    return record_of(Fix, row)


def latest_fixes(engine: Engine, since: datetime, *, usable_only: bool = False) -> list[Fix]:
    """The newest fix of each device with ts >= `since` (to rebuild the live index on start).

    `usable_only`: the newest fix without any NOT_FOR_DISPATCH flag, which is exactly the fix the live
    fleet moved the unit with (it takes no flagged fix and never an older one), so a restart rebuilds the
    picture it had. Restricted fixes (taken off duty) are never read here: they never move a unit.
    """
    conditions: list[ColumnElement[bool]] = [FIXES.c.ts >= utc(since), not_(FIXES.c.restricted)]
    if usable_only:
        conditions.append(FIXES.c.flags.op("&")(NOT_FOR_DISPATCH) == 0)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            query = (
                select(*FIXES.c[FIX_COLUMNS])
                .where(*conditions)
                .ext(distinct_on(FIXES.c.device_id))
                .order_by(FIXES.c.device_id, FIXES.c.ts.desc())
            )
        else:
            # No DISTINCT ON in SQLite: join each device's max(ts); text order is time order here.
            newest = (
                select(FIXES.c.device_id, func.max(FIXES.c.ts).label("ts"))
                .where(*conditions)
                .group_by(FIXES.c.device_id)
                .subquery()
            )
            query = (
                select(*FIXES.c[FIX_COLUMNS])
                .join(newest, (FIXES.c.device_id == newest.c.device_id) & (FIXES.c.ts == newest.c.ts))
                .order_by(FIXES.c.device_id)
            )
        return [_fix(r) for r in conn.execute(query)]


def fetch_fixes(
    engine: Engine,
    *,
    device_id: str | None = None,
    unit_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int | None = None,
) -> list[Fix]:
    """Stored fixes in time order, filtered; `start` inclusive, `end` exclusive.

    On PostgreSQL the float4 columns (accuracy, speed, heading, altitude, battery) return single precision.
    """
    query = select(*FIXES.c[FIX_COLUMNS]).order_by(FIXES.c.ts, FIXES.c.device_id)
    if device_id is not None:
        query = query.where(FIXES.c.device_id == device_id)
    if unit_id is not None:
        query = query.where(FIXES.c.unit_id == unit_id)
    if start is not None:
        query = query.where(FIXES.c.ts >= utc(start))
    if end is not None:
        query = query.where(FIXES.c.ts < utc(end))
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [_fix(r) for r in conn.execute(query)]


def count_fixes(engine: Engine) -> int:
    """How many fixes are stored."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(FIXES)).scalar_one())


def count_rejected(engine: Engine, reason: str | None = None) -> int:
    """How many dead letters are stored, optionally only those with `reason` among their reasons."""
    query = select(func.count()).select_from(REJECTED)
    if reason is not None:
        if engine.dialect.name == "postgresql":
            has = text("rejected_messages.reasons::jsonb @> jsonb_build_array(CAST(:reason AS text))")
        else:
            has = text("EXISTS (SELECT 1 FROM json_each(rejected_messages.reasons) WHERE value = :reason)")
        query = query.where(has.bindparams(reason=reason))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
