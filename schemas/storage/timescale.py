"""The TimescaleDB path: a hypertable on `ts` with compression and retention policies.

Used only when the extension can be created in the database (it must be in shared_preload_libraries).
Checked on a real TimescaleDB in production images; on machines without it, `enable` returns False and the
native partitioning path runs instead.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from schemas.storage.settings import StoreSettings

log = logging.getLogger(__name__)


def enable(conn: Connection) -> bool:
    """Create the extension if the server offers it; False (and no error) when it cannot."""
    available = conn.execute(
        text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    ).scalar()
    if not available:
        return False
    savepoint = conn.begin_nested()
    try:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
    except DBAPIError as exc:
        # Typically: the library is installed but not preloaded.
        savepoint.rollback()
        log.warning("timescaledb is installed but cannot be enabled: %s", exc.orig)
        return False
    savepoint.commit()
    return True


def apply_policies(conn: Connection, settings: StoreSettings) -> None:
    """Turn `fixes` into a hypertable with daily chunks, compression and retention (idempotent)."""
    conn.execute(
        text(
            "SELECT create_hypertable('fixes', 'ts', chunk_time_interval => INTERVAL '1 day',"
            " if_not_exists => TRUE, migrate_data => TRUE)"
        )
    )
    conn.execute(
        text(
            "ALTER TABLE fixes SET (timescaledb.compress,"
            " timescaledb.compress_segmentby = 'device_id', timescaledb.compress_orderby = 'ts DESC')"
        )
    )
    conn.execute(
        text("SELECT add_compression_policy('fixes', make_interval(days => :d), if_not_exists => TRUE)"),
        {"d": settings.compress_after_days},
    )
    conn.execute(
        text("SELECT add_retention_policy('fixes', make_interval(days => :d), if_not_exists => TRUE)"),
        {"d": settings.retention_days},
    )
