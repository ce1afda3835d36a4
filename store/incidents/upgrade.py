"""Migration step 9: incidents know their grids and may be merged.

A fresh database has the columns from step 1 (today's definition); an older one gets `community_grid_id`,
`police_grid_id` and `merged_into` added where missing, the index on `merged_into`, the state CHECK widened
to allow `merged` (`store.checks`, in place), and every incident without grids placed in the grids current
now (the only boundaries an upgrade can know; an incident outside every grid keeps NULL).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from geo.grids import GridIndex
from schemas.tables import Flavour
from schemas.tables.incidents import INCIDENT_STATES
from store.checks import set_allowed
from store.grids.records import current_by_id

_COLUMNS = (
    ("community_grid_id", "VARCHAR(64)"),
    ("police_grid_id", "VARCHAR(64)"),
    ("merged_into", "VARCHAR(36)"),
)
_BATCH = 5000


def add_incident_grids(conn: Connection, flavour: Flavour, _settings: object) -> None:
    """Step 9: the grid and merge columns present, `merged` allowed, existing incidents placed."""
    if flavour.dialect == "postgresql":
        for name, kind in _COLUMNS:
            conn.execute(text(f"ALTER TABLE incidents ADD COLUMN IF NOT EXISTS {name} {kind}"))
    else:
        present = {row[1] for row in conn.execute(text("PRAGMA table_info(incidents)"))}
        for name, kind in _COLUMNS:
            if name not in present:
                conn.execute(text(f"ALTER TABLE incidents ADD COLUMN {name} {kind}"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_incidents_merged_into ON incidents (merged_into)"))
    set_allowed(conn, flavour, "incidents", "state", INCIDENT_STATES)
    place_incidents(conn)


def place_incidents(conn: Connection) -> int:
    """Give every incident with no grid the community and police grid that hold its place now."""
    index = GridIndex(r.as_grid() for r in current_by_id(conn).values())
    if len(index) == 0:
        return 0
    placed, after = 0, ""
    while True:
        rows = conn.execute(
            text(
                "SELECT id, lon, lat FROM incidents WHERE community_grid_id IS NULL"
                " AND police_grid_id IS NULL AND id > :after ORDER BY id LIMIT :n"
            ),
            {"after": after, "n": _BATCH},
        ).all()
        if not rows:
            return placed
        after = rows[-1].id
        found = [(r.id, index.locate(r.lon, r.lat)) for r in rows]
        updates = [
            {
                "id": i,
                "c": loc.community.id if loc.community else None,
                "p": loc.police.id if loc.police else None,
            }
            for i, loc in found
            if loc.community is not None or loc.police is not None
        ]
        if updates:
            conn.execute(
                text("UPDATE incidents SET community_grid_id = :c, police_grid_id = :p WHERE id = :id"),
                updates,
            )
        placed += len(updates)
