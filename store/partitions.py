"""Retention, and native partitioning: `fixes` partitioned by UTC day, made ahead, dropped when expired.

A DEFAULT partition catches a fix for a day with no partition, so nothing valid is ever refused; `maintain`
moves such rows into the day's partition when it creates it, and deletes those older than the retention
horizon (dropping partitions alone would leave them there for ever).

`run_maintenance` is the hourly entry point for every flavour: partitions on native PostgreSQL, nothing on
TimescaleDB (its own background jobs apply the retention policy), a DELETE on SQLite; and on all of them,
dead letters past the horizon are deleted (they are attacker-controlled, so they must not grow without bound).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Connection, Engine, text

from schemas.tables.telemetry import FIX_COLUMNS
from store.settings import StoreSettings

log = logging.getLogger(__name__)

DEFAULT_PARTITION = "fixes_default"
_PREFIX = "fixes_p"
_COLUMNS = ", ".join(FIX_COLUMNS)  # geom is generated on this path, so it is recomputed on the move
# Creating or dropping a partition takes an ACCESS EXCLUSIVE lock on `fixes`. Waiting for it would queue every
# ingest INSERT behind us; giving up is harmless, since partitions exist days ahead and the next hour retries.
LOCK_TIMEOUT_MS = 5000


def partition_name(day: date) -> str:
    """The partition holding fixes of UTC day `day`."""
    return f"{_PREFIX}{day:%Y%m%d}"


def run_maintenance(engine: Engine, settings: StoreSettings, now: datetime) -> tuple[list[str], list[str]]:
    """Apply retention (and on native partitioning, make partitions ahead); returns (created, dropped).

    Idempotent. Raises SQLAlchemy's OperationalError when the database is down or the lock is not granted
    within LOCK_TIMEOUT_MS: log it and let the next run retry.
    """
    horizon = _horizon(settings, now)
    created: list[str] = []
    dropped: list[str] = []
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            _expire_sqlite(conn, horizon)
            return created, dropped
        kind = conn.execute(text("SELECT relkind FROM pg_class WHERE oid = to_regclass('fixes')")).scalar()
        if kind == "p":
            conn.execute(text(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}"))
            created, dropped = maintain(conn, settings, now=now)
        expired = conn.execute(text("DELETE FROM rejected_messages WHERE received_at < :h"), {"h": horizon})
        if expired.rowcount:
            log.info("expired dead letters", extra={"rows": expired.rowcount})
    return created, dropped


def maintain(conn: Connection, settings: StoreSettings, *, now: datetime) -> tuple[list[str], list[str]]:
    """Create the day partitions from the retention horizon to `partition_ahead_days` ahead; drop older ones.

    Runs inside the caller's transaction. Returns (created, dropped) partition names. Idempotent.
    """
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {DEFAULT_PARTITION} PARTITION OF fixes DEFAULT"))
    horizon = _horizon(settings, now)
    first = horizon.date()
    last = now.astimezone(UTC).date() + timedelta(days=settings.partition_ahead_days)
    existing = set(_existing_partitions(conn))
    created = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        if partition_name(day) not in existing:
            _create_day(conn, day)
            created.append(partition_name(day))
    dropped = sorted(name for name in existing if name < partition_name(first))
    for name in dropped:
        conn.execute(text(f"DROP TABLE {name}"))
    purged = conn.execute(text(f"DELETE FROM {DEFAULT_PARTITION} WHERE ts < :h"), {"h": horizon}).rowcount
    if created or dropped or purged:
        log.info(
            "partitions maintained",
            # "created" is a LogRecord attribute: logging raises KeyError on it (outpost migrate crashed).
            extra={"partitions_created": len(created), "dropped": dropped, "expired_default_rows": purged},
        )
    return created, dropped


def _horizon(settings: StoreSettings, now: datetime) -> datetime:
    """Midnight UTC of the oldest day kept: retention works in whole days, like the partitions."""
    first = now.astimezone(UTC).date() - timedelta(days=settings.retention_days)
    return datetime.combine(first, time(0), tzinfo=UTC)


def _existing_partitions(conn: Connection) -> list[str]:
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = to_regclass('fixes')"
        )
    )
    return [r[0] for r in rows if r[0].startswith(_PREFIX)]


def _create_day(conn: Connection, day: date) -> None:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    bounds = {"start": start, "end": start + timedelta(days=1)}
    name = partition_name(day)
    in_range = "ts >= :start AND ts < :end"
    stray = conn.execute(
        text(f"SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} WHERE {in_range})"), bounds
    ).scalar()
    if stray:
        # PostgreSQL refuses to create a partition while the default one holds rows of its range: park them
        # in a temporary table, create the partition, put them back; one transaction, so nothing is lost.
        conn.execute(
            text(f"CREATE TEMP TABLE fixes_stray ON COMMIT DROP AS SELECT {_COLUMNS} FROM fixes LIMIT 0")
        )
        conn.execute(
            text(
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE {in_range} RETURNING {_COLUMNS})"
                f" INSERT INTO fixes_stray ({_COLUMNS}) SELECT {_COLUMNS} FROM moved"
            ),
            bounds,
        )
    conn.execute(
        text(
            f"CREATE TABLE {name} PARTITION OF fixes"
            f" FOR VALUES FROM ('{start.isoformat()}') TO ('{bounds['end'].isoformat()}')"
        )
    )
    if stray:
        moved = conn.execute(
            text(f"INSERT INTO {name} ({_COLUMNS}) SELECT {_COLUMNS} FROM fixes_stray")
        ).rowcount
        conn.execute(text("DROP TABLE fixes_stray"))
        log.warning("moved fixes out of the default partition", extra={"partition": name, "rows": moved})


def _expire_sqlite(conn: Connection, horizon: datetime) -> None:
    # Same spelling as store.fixes.sqlite_ts: text order is time order.
    h = horizon.strftime("%Y-%m-%d %H:%M:%S.%f")
    fixes = conn.execute(text("DELETE FROM fixes WHERE ts < :h"), {"h": h}).rowcount
    letters = conn.execute(text("DELETE FROM rejected_messages WHERE received_at < :h"), {"h": h}).rowcount
    if fixes or letters:
        log.info("expired old rows", extra={"fixes": fixes, "dead_letters": letters})
