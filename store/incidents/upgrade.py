"""Migration step 9: incidents know their grids and may be merged.

A fresh database has the columns from step 1 (today's definition); an older one gets `community_grid_id`,
`police_grid_id` and `merged_into` added where missing, the index on `merged_into`, the state CHECK widened
to allow `merged` (`store.checks`, in place), and every incident without grids placed in the grids current
now (the only boundaries an upgrade can know; an incident outside every grid keeps NULL).
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select, text, update

from geo.grids import GridIndex
from schemas.tables import Flavour
from schemas.tables.incidents import INCIDENT_STATES
from store.checks import set_allowed
from store.columns import add_column
from store.grids.records import current_by_id
from store.incidents.rows import INCIDENTS

_COLUMNS = (
    ("community_grid_id", "VARCHAR(64)"),
    ("police_grid_id", "VARCHAR(64)"),
    ("merged_into", "VARCHAR(36)"),
)
_BATCH = 5000


def add_incident_grids(conn: Connection, flavour: Flavour, _settings: object) -> None:
    """Step 9: the grid and merge columns present, `merged` allowed, existing incidents placed."""
    for name, kind in _COLUMNS:
        add_column(conn, flavour, "incidents", name, kind)
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_incidents_merged_into ON incidents (merged_into)"))
    set_allowed(conn, flavour, "incidents", "state", INCIDENT_STATES)
    place_incidents(conn)


def place_incidents(conn: Connection) -> int:
    """Give every incident with no grid the community and police grid that hold its place now."""
    index = GridIndex(r.as_grid() for r in current_by_id(conn).values())
    if len(index) == 0:
        return 0
    t = INCIDENTS
    unplaced = select(t.c.id, t.c.lon, t.c.lat).where(
        t.c.community_grid_id.is_(None), t.c.police_grid_id.is_(None)
    )
    placed, after = 0, ""
    while True:
        rows = conn.execute(unplaced.where(t.c.id > after).order_by(t.c.id).limit(_BATCH)).all()
        if not rows:
            return placed
        after = rows[-1].id
        located = [(r.id, index.locate(r.lon, r.lat)) for r in rows]
        updates = [
            {
                "row_id": i,
                "community_grid_id": loc.community.id if loc.community else None,
                "police_grid_id": loc.police.id if loc.police else None,
            }
            for i, loc in located
            if loc.community is not None or loc.police is not None
        ]
        if updates:
            conn.execute(update(t).where(t.c.id == bindparam("row_id")), updates)
        placed += len(updates)
