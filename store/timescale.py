"""The TimescaleDB path: `fixes` as a hypertable with daily chunks, a columnstore (compression) policy and a
retention policy.

Chosen by asking the database (`enable`, as OUTPOST_TIMESCALEDB says: auto, required or off): the
extension must be offered by the server (it has to be in `shared_preload_libraries`, as in the
timescale/timescaledb-ha image) and be at least MIN_VERSION; otherwise the native partitioning path runs
(store.partitions). TimescaleDB is not installable on our development machines, so this module is written
from the TimescaleDB documentation and issue tracker, and its statements are checked by
tests/store/test_timescale.py (captured, and executed where the extension exists). What was decided, and why:

- `create_hypertable('fixes', by_range('ts', INTERVAL '1 day'), …)`: the generalized API of 2.13+ (the
  `create_hypertable(table, time_column, chunk_time_interval => …)` form is deprecated since 2.13). Called on
  the empty table `create_all` made, so the schema stays defined in one place (schemas.tables). The primary
  key (device_id, ts) includes the partitioning column, as hypertables require. `create_default_indexes` is
  off: `ix_fixes_ts` already exists.
- Columnstore (compression) with `timescaledb.segmentby = 'device_id'`, `timescaledb.orderby = 'ts DESC'`:
  the 2.18+ names (`timescaledb.compress`, `compress_segmentby`, `compress_orderby` and
  `add_compression_policy` are their deprecated aliases). A unique constraint on a compressed hypertable must
  use segmentby/orderby columns only: (device_id, ts) does.
- `INSERT … ON CONFLICT DO NOTHING` into compressed chunks is supported since 2.11, but until the fix for
  timescaledb#7672 (PR #7673, February 2025, after 2.18.0) an INSERT … SELECT stopped at the first conflict
  and silently skipped the rest of the batch: exactly our staging-table insert replaying an offline buffer.
  Hence MIN_VERSION 2.19.0, the first minor release certain to contain the fix; 2.28 (PG15) and newer are
  the targets.
- `geom` is a plain column on this path, filled by the writer: a STORED generated column is allowed on a
  hypertable, but 2.22–2.25 left it NULL for rows inserted into compressed chunks (timescaledb#8926, #9314,
  fixed by #9155 and #9316 in 2026). See schemas.tables.telemetry.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from store.engine import CannotStart
from store.settings import StoreSettings

log = logging.getLogger(__name__)

MIN_VERSION = (2, 19, 0)


def parse_version(version: str) -> tuple[int, ...]:
    """'2.28.1' → (2, 28, 1); pre-release suffixes ('2.29.0-dev') are ignored."""
    numbers = []
    for part in version.split("-")[0].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def enable(engine: Engine, mode: str = "auto") -> bool:
    """Create the extension if the server offers a usable version (`mode`: OUTPOST_TIMESCALEDB).

    False when it cannot (with one warning line when it is installed but not loadable); CannotStart when
    `mode` is "required". The attempt runs on a connection of its own, outside the migration's transaction:
    TimescaleDB's loader answers a CREATE EXTENSION without `shared_preload_libraries` with FATAL, which
    ends the session, so no savepoint could have kept the migration's transaction alive.
    """
    if mode == "off":
        return False
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT installed_version FROM pg_available_extensions WHERE name = 'timescaledb'")
        ).first()
        major = server_major(conn)
    if row is None:
        return _without(
            mode,
            "the server does not offer the timescaledb extension "
            f"(install timescaledb-2-postgresql-{major} and add timescaledb to shared_preload_libraries)",
            warn=False,
        )
    if row[0] is None:
        refused = _create_extension(engine)
        if refused is not None:
            return _without(
                mode,
                f"timescaledb is installed but cannot be enabled ({refused}): add timescaledb to "
                "shared_preload_libraries in postgresql.conf and restart PostgreSQL",
            )
    with engine.connect() as conn:
        version = str(
            conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")).scalar()
        )
    if parse_version(version) < MIN_VERSION:
        return _without(
            mode,
            f"timescaledb {version} is older than {'.'.join(map(str, MIN_VERSION))} (INSERT ... ON CONFLICT"
            " DO NOTHING into compressed chunks loses rows, timescaledb#7672): ALTER EXTENSION timescaledb"
            " UPDATE after upgrading the package",
        )
    return True


def server_major(conn: Connection) -> int:
    """The server's major version (15 for 15.8): Debian's package names carry it."""
    return int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000


def _create_extension(engine: Engine) -> str | None:
    """CREATE EXTENSION on a connection of its own; the server's first line when it refuses."""
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
    except DBAPIError as exc:
        words = str(exc.orig or exc).strip().splitlines()
        return words[0] if words else type(exc).__name__
    return None


def _without(mode: str, why: str, *, warn: bool = True) -> bool:
    """Native partitions instead, or CannotStart when TimescaleDB is required."""
    if mode == "required":
        raise CannotStart(f"OUTPOST_TIMESCALEDB=required, but {why}")
    if warn:
        log.warning("%s; using native partitions (OUTPOST_TIMESCALEDB=off skips TimescaleDB)", why)
    else:
        log.info("%s; using native partitions", why)
    return False


def policy_statements(settings: StoreSettings) -> list[str]:
    """The statements that make `fixes` a hypertable with its policies, in order (each one idempotent)."""
    compress_after = int(settings.compress_after_days)
    keep = int(settings.retention_days)
    if not 0 < compress_after < keep:
        raise ValueError(
            f"compress_after_days ({compress_after}) must be positive and below retention_days ({keep})"
        )
    return [
        "SELECT create_hypertable('fixes', by_range('ts', INTERVAL '1 day'),"
        " create_default_indexes => FALSE, if_not_exists => TRUE, migrate_data => TRUE)",
        "ALTER TABLE fixes SET (timescaledb.enable_columnstore = true,"
        " timescaledb.segmentby = 'device_id', timescaledb.orderby = 'ts DESC')",
        f"CALL add_columnstore_policy('fixes', after => INTERVAL '{compress_after} days',"
        " if_not_exists => TRUE)",
        f"SELECT add_retention_policy('fixes', drop_after => INTERVAL '{keep} days', if_not_exists => TRUE)",
    ]


def apply_policies(conn: Connection, settings: StoreSettings) -> None:
    """Turn `fixes` into a hypertable with daily chunks, columnstore and retention policies (idempotent)."""
    for statement in policy_statements(settings):
        conn.execute(text(statement))
    log.info(
        "fixes is a TimescaleDB hypertable",
        extra={
            "compress_after_days": settings.compress_after_days,
            "retention_days": settings.retention_days,
        },
    )
