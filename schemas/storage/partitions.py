"""The native-partitioning path: `fixes` partitioned by day, partitions made ahead and expired ones dropped.

A DEFAULT partition catches a fix for a day with no partition, so nothing valid is ever refused; `maintain`
moves such rows into the day's partition when it creates it.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Connection, text

from schemas.storage.settings import StoreSettings
from schemas.tables.telemetry import FIX_COLUMNS

log = logging.getLogger(__name__)

DEFAULT_PARTITION = "fixes_default"
_COLUMNS = ", ".join(FIX_COLUMNS)


def partition_name(day: date) -> str:
    """The partition holding fixes of UTC day `day`."""
    return f"fixes_p{day:%Y%m%d}"


def maintain(conn: Connection, settings: StoreSettings, *, now: datetime) -> tuple[list[str], list[str]]:
    """Create the partitions from the retention horizon to `partition_ahead_days` ahead; drop older ones.

    Returns (created, dropped) partition names. Idempotent.
    """
    conn.execute(text(f"CREATE TABLE IF NOT EXISTS {DEFAULT_PARTITION} PARTITION OF fixes DEFAULT"))
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=settings.retention_days)
    existing = set(_existing_partitions(conn))
    created = []
    for offset in range((today - first).days + settings.partition_ahead_days + 1):
        day = first + timedelta(days=offset)
        name = partition_name(day)
        if name not in existing:
            _create_day(conn, day)
            created.append(name)
    dropped = []
    for name in sorted(existing):
        if name < partition_name(first):
            conn.execute(text(f"DROP TABLE {name}"))
            dropped.append(name)
    if created or dropped:
        log.info("partitions maintained", extra={"created": len(created), "dropped": dropped})
    return created, dropped


def _existing_partitions(conn: Connection) -> list[str]:
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'fixes'"
        )
    )
    return [r[0] for r in rows if r[0] != DEFAULT_PARTITION]


def _create_day(conn: Connection, day: date) -> None:
    start = datetime.combine(day, time(0), tzinfo=UTC)
    end = start + timedelta(days=1)
    name = partition_name(day)
    bounds = {"start": start, "end": end}
    stray = conn.execute(
        text(f"SELECT count(*) FROM {DEFAULT_PARTITION} WHERE ts >= :start AND ts < :end"), bounds
    ).scalar()
    if stray:
        # Rows for this day that landed in the default partition move into the new one, in this transaction.
        conn.execute(
            text(f"CREATE TEMP TABLE fixes_stray ON COMMIT DROP AS SELECT {_COLUMNS} FROM {DEFAULT_PARTITION}"
                 " WHERE ts >= :start AND ts < :end"),
            bounds,
        )
        conn.execute(text(f"DELETE FROM {DEFAULT_PARTITION} WHERE ts >= :start AND ts < :end"), bounds)
    conn.execute(
        text(
            f"CREATE TABLE {name} PARTITION OF fixes"
            f" FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
    )
    if stray:
        conn.execute(text(f"INSERT INTO {name} ({_COLUMNS}) SELECT {_COLUMNS} FROM fixes_stray"))
        conn.execute(text("DROP TABLE fixes_stray"))
        log.warning("moved fixes out of the default partition", extra={"partition": name, "rows": stray})
