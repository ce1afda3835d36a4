"""Applying the schema: decide the flavour by asking the database, create what is missing, record versions.

Safe to run twice: every step checks before it creates, and applied versions are recorded in
`schema_version`. On PostgreSQL, PostGIS must be installed on the server (CannotStart names the package
otherwise), and TimescaleDB is used when the extension can be created and OUTPOST_TIMESCALEDB allows it
(hypertable, compression, retention); otherwise `fixes` is natively partitioned by day and
`partitions.maintain` creates partitions ahead and drops expired ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text

from schemas.tables import Flavour, build_metadata
from store import partitions, timescale
from store.attendance_tables import add_attendance_tables
from store.audit_chain import add_chain_columns
from store.columns import add_column
from store.engine import CannotStart
from store.incident_cells import add_incident_cells
from store.incidents.upgrade import add_incident_grids
from store.presence_tables import add_presence_tables
from store.settings import StoreSettings

log = logging.getLogger(__name__)

Step = Callable[[Connection, Flavour, StoreSettings], None]


@dataclass(frozen=True)
class MigrationReport:
    """What `migrate` found and did."""

    flavour: Flavour
    timescaledb: bool
    applied: tuple[int, ...]  # versions applied by this run (empty when already up to date)


def _create_tables(conn: Connection, flavour: Flavour, settings: StoreSettings) -> None:
    build_metadata(flavour).create_all(conn, checkfirst=True)


def _storage_policy(conn: Connection, flavour: Flavour, settings: StoreSettings) -> None:
    if flavour.dialect != "postgresql":
        return
    if flavour.partitioned:
        partitions.maintain(conn, settings, now=datetime.now(UTC))
    else:
        timescale.apply_policies(conn, settings)


def add_restricted_column(conn: Connection, flavour: Flavour, settings: StoreSettings) -> None:
    """`fixes.restricted` on a database made before it (a new one has it from step 1). On PostgreSQL the
    column reaches every day partition, or every chunk of the hypertable, through its parent; a constant
    default is stored once in the catalogue, so no row is rewritten."""
    add_column(conn, flavour, "fixes", "restricted", "BOOLEAN NOT NULL DEFAULT " + _FALSE[flavour.dialect])


_FALSE = {"postgresql": "false", "sqlite": "0"}


# Append-only: a released step is never edited, a change is a new step.
STEPS: tuple[tuple[int, str, Step], ...] = (
    (1, "core tables", _create_tables),
    (2, "fixes storage policy", _storage_policy),
    # The incident tables arrived after step 1 had been released; create_all only adds what is missing.
    (3, "incident tables", _create_tables),
    (4, "grid tables", _create_tables),
    (5, "duty tables (shifts, assignments)", _create_tables),
    (6, "incident H3 cells and the import source", add_incident_cells),
    (7, "geofence table", _create_tables),
    (8, "status history, check-ins, roll calls; the break status", add_attendance_tables),
    (9, "incident grids and merges", add_incident_grids),
    (10, "monthly reports and their schedule", _create_tables),
    (11, "patrol presence rollup (a continuous aggregate on TimescaleDB)", add_presence_tables),
    (12, "the audit log's hash chain", add_chain_columns),
    (13, "fixes.restricted: fixes taken off duty", add_restricted_column),
)


def migrate(engine: Engine, settings: StoreSettings) -> MigrationReport:
    """Bring the database at `engine` up to the current schema."""
    timescaledb = prepare_extensions(engine, settings) if engine.dialect.name == "postgresql" else False
    with engine.begin() as conn:
        flavour, has_timescale = detect_flavour(conn, timescaledb)
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
        )
        done = {row[0] for row in conn.execute(text("SELECT version FROM schema_version"))}
        applied = []
        for version, name, step in STEPS:
            if version in done:
                continue
            step(conn, flavour, settings)
            conn.execute(
                text("INSERT INTO schema_version (version, name, applied_at) VALUES (:v, :n, :t)"),
                {"v": version, "n": name, "t": datetime.now(UTC).isoformat()},
            )
            applied.append(version)
        if flavour.partitioned:
            # Every run (idempotent): a server down for days needs its partitions ahead before ingest starts.
            partitions.maintain(conn, settings, now=datetime.now(UTC))
    log.info(
        "schema ready: %s, fixes storage: %s",
        flavour.dialect,
        storage_path(flavour),
        extra={
            "dialect": flavour.dialect,
            "timescaledb": has_timescale,
            "partitioned": flavour.partitioned,
            "applied": applied,
        },
    )
    return MigrationReport(flavour=flavour, timescaledb=has_timescale, applied=tuple(applied))


def storage_path(flavour: Flavour) -> str:
    """Which path stores `fixes`: "timescaledb", "partitions" or "plain" (SQLite)."""
    if flavour.hypertable:
        return "timescaledb"
    return "partitions" if flavour.partitioned else "plain"


def prepare_extensions(engine: Engine, settings: StoreSettings) -> bool:
    """Check PostGIS is installable (CannotStart naming the package when not) and enable TimescaleDB as
    OUTPOST_TIMESCALEDB says, each before the migration's transaction; whether TimescaleDB is on."""
    with engine.connect() as conn:
        offered = conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")).scalar()
        major = timescale.server_major(conn)
    if not offered:
        raise CannotStart(
            "PostGIS is not installed on the database server: install the package "
            f"postgresql-{major}-postgis-3 there (Debian/Ubuntu; `postgis` on other systems), "
            "then run `outpost migrate` again"
        )
    return timescale.enable(engine, settings.timescaledb)


def detect_flavour(conn: Connection, timescaledb: bool | None = None) -> tuple[Flavour, bool]:
    """Ask the database what it can do; on PostgreSQL, enable PostGIS. `timescaledb`: what
    `prepare_extensions` found (None: whether the extension is already in this database)."""
    if conn.dialect.name == "sqlite":
        return Flavour("sqlite"), False
    conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    has_timescale = timescaledb
    if has_timescale is None:
        has_timescale = bool(
            conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).scalar()
        )
    existing = conn.execute(
        text("SELECT c.relkind FROM pg_class c WHERE c.relname = 'fixes' AND pg_table_is_visible(c.oid)")
    ).scalar()
    if existing is not None:
        # An existing table decides: never switch paths under live data.
        partitioned = existing == "p"
        if not partitioned and not has_timescale:
            log.warning("fixes is not partitioned but TimescaleDB is not available: no retention applies")
    else:
        partitioned = not has_timescale
    hypertable = has_timescale and not partitioned
    return Flavour("postgresql", partitioned=partitioned, hypertable=hypertable), hypertable
