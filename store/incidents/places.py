"""Where incidents are, in grid terms: the current grids' versions (so the loop rebuilds its index and
adjacency only when a boundary changed), and the duplicates merged into an incident."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, select

from store.grids.records import table
from store.incidents.rows import INCIDENTS, IncidentRow, build


def grid_versions(engine: Engine) -> tuple[tuple[str, int], ...]:
    """(id, version) of every current grid, by id: one small query, no geometry."""
    with engine.connect() as conn:
        t = table(conn)
        rows = conn.execute(select(t.c.id, t.c.version).where(t.c.valid_to.is_(None)).order_by(t.c.id))
        return tuple((str(r[0]), int(r[1])) for r in rows)


def merged_reports(conn: Connection, incident_id: str) -> list[IncidentRow]:
    """Every incident merged into this one, directly or through another duplicate, by report time."""
    found: list[IncidentRow] = []
    frontier = [incident_id]
    seen = {incident_id}
    while frontier:
        query = select(INCIDENTS).where(INCIDENTS.c.merged_into.in_(frontier))
        rows = [build(IncidentRow, r) for r in conn.execute(query).mappings()]
        rows = [r for r in rows if r.id not in seen]
        seen.update(r.id for r in rows)
        found += rows
        frontier = [r.id for r in rows]
    return sorted(found, key=lambda r: (r.reported_at, r.id))
