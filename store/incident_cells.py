"""Migration step 6: every incident gets its H3 cell, and `import` becomes an incident source.

A fresh database already has both (step 1 creates `incidents` from today's definition), so each part checks
before it acts and the step is safe on any database: add `h3_cell` where it is missing, fill it where it is
NULL, widen the CHECK on `source` where it does not allow `import` yet. Widening a CHECK removes no row's
validity, so it needs no rewrite of the table: PostgreSQL drops and re-adds the constraint; SQLite cannot
alter a constraint, and its documented way to loosen one is to edit the table's stored CREATE statement
(https://sqlite.org/lang_altertable.html, "making other kinds of table schema changes").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import Connection, text

from geo.hexes import cell_of
from schemas.tables import Flavour
from schemas.tables.incidents import SOURCES

_BATCH = 5000
_SOURCE_CHECK = re.compile(r"CHECK \(source IN \([^)]*\)\)")


def add_incident_cells(conn: Connection, flavour: Flavour, _settings: object) -> None:
    """Step 6: `incidents.h3_cell` present and filled; `source` may be `import`."""
    _add_column(conn, flavour)
    backfill_cells(conn)
    set_sources(conn, flavour, SOURCES)


def _add_column(conn: Connection, flavour: Flavour) -> None:
    if flavour.dialect == "postgresql":
        conn.execute(text("ALTER TABLE incidents ADD COLUMN IF NOT EXISTS h3_cell BIGINT"))
        return
    columns = {row[1] for row in conn.execute(text("PRAGMA table_info(incidents)"))}
    if "h3_cell" not in columns:
        conn.execute(text("ALTER TABLE incidents ADD COLUMN h3_cell BIGINT"))


def backfill_cells(conn: Connection) -> int:
    """Compute the cell of every incident that has none; how many were filled."""
    filled = 0
    while True:
        rows = conn.execute(
            text("SELECT id, lon, lat FROM incidents WHERE h3_cell IS NULL ORDER BY id LIMIT :n"),
            {"n": _BATCH},
        ).all()
        if not rows:
            return filled
        conn.execute(
            text("UPDATE incidents SET h3_cell = :cell WHERE id = :id"),
            [{"id": r.id, "cell": cell_of(r.lon, r.lat)} for r in rows],
        )
        filled += len(rows)


def set_sources(conn: Connection, flavour: Flavour, sources: Sequence[str]) -> None:
    """Make the CHECK on `incidents.source` allow exactly `sources` (nothing when it already does)."""
    wanted = "CHECK (source IN ({}))".format(", ".join(f"'{s}'" for s in sources))
    if flavour.dialect == "postgresql":
        current = conn.execute(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conname = 'ck_incidents_source' AND conrelid = 'incidents'::regclass"
            )
        ).scalar()
        if current is not None and set(re.findall(r"'([^']*)'", current)) == set(sources):
            return
        conn.execute(text("ALTER TABLE incidents DROP CONSTRAINT IF EXISTS ck_incidents_source"))
        conn.execute(text(f"ALTER TABLE incidents ADD CONSTRAINT ck_incidents_source {wanted}"))
        return
    sql = conn.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'incidents'")
    ).scalar_one()
    match = _SOURCE_CHECK.search(sql)
    if match is None:
        raise RuntimeError("incidents has no CHECK on source to widen; the table is not Outpost's")
    if match.group(0) == wanted:
        return
    version = int(conn.execute(text("PRAGMA schema_version")).scalar_one())
    conn.execute(text("PRAGMA writable_schema = ON"))
    conn.execute(
        text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'incidents'"),
        {"sql": sql[: match.start()] + wanted + sql[match.end() :]},
    )
    # Every connection re-reads the schema when the version moves (the documented procedure).
    conn.execute(text(f"PRAGMA schema_version = {version + 1}"))
    conn.execute(text("PRAGMA writable_schema = OFF"))
