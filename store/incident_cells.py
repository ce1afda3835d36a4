"""Migration step 6: every incident gets its H3 cell, and `import` becomes an incident source.

A fresh database already has both (step 1 creates `incidents` from today's definition), so each part checks
before it acts and the step is safe on any database: add `h3_cell` where it is missing, fill it where it is
NULL, widen the CHECK on `source` where it does not allow `import` yet (`store.checks`, in place).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, text

from geo.hexes import cell_of
from schemas.tables import Flavour
from schemas.tables.incidents import SOURCES
from store.checks import set_allowed
from store.columns import add_column

_BATCH = 5000


def add_incident_cells(conn: Connection, flavour: Flavour, _settings: object) -> None:
    """Step 6: `incidents.h3_cell` present and filled; `source` may be `import`."""
    add_column(conn, flavour, "incidents", "h3_cell", "BIGINT")
    backfill_cells(conn)
    set_sources(conn, flavour, SOURCES)


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
    set_allowed(conn, flavour, "incidents", "source", sources)
