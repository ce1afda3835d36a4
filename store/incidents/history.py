"""Historic incidents: reports of the past, stored closed (source `import`) so heat maps count them.

Ids are the caller's (deterministic, from the row), and an id already present is left alone (`ON CONFLICT
DO NOTHING` on PostgreSQL, `INSERT OR IGNORE` on SQLite): importing a file again adds nothing. Each batch is
its own transaction, so an interrupted import keeps what it wrote and the next run adds the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from geo.hexes import cell_of
from store.incidents.rows import INCIDENTS


@dataclass(frozen=True)
class HistoricIncident:
    """One past incident as reported (times aware, UTC)."""

    id: str
    reported_at: datetime
    lon: float
    lat: float
    category: str
    priority: str
    description: str = ""
    address: str | None = None
    reporter: str = ""


def import_batch(engine: Engine, batch: Sequence[HistoricIncident], *, created_by: str) -> int:
    """Store the batch's incidents that are not stored yet, in one transaction; how many were new."""
    if not batch:
        return 0
    ids = [i.id for i in batch]
    with engine.begin() as conn:
        present = set(conn.scalars(select(INCIDENTS.c.id).where(INCIDENTS.c.id.in_(ids))))
        fresh = {i.id: i for i in batch if i.id not in present}  # a row repeated in the batch counts once
        if not fresh:
            return 0
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(
            insert(INCIDENTS).on_conflict_do_nothing(index_elements=["id"]),
            [_values(i, created_by) for i in fresh.values()],
        )
    return len(fresh)


def _values(incident: HistoricIncident, created_by: str) -> dict[str, object]:
    at = incident.reported_at
    return {
        "id": incident.id,
        "state": "closed",
        "priority": incident.priority,
        "category": incident.category,
        "source": "import",
        "description": incident.description,
        "reporter": incident.reporter,
        "address": incident.address,
        "lon": incident.lon,
        "lat": incident.lat,
        "h3_cell": cell_of(incident.lon, incident.lat),
        "tier": 0,
        "tier_entered_at": at,
        "created_by": created_by,
        "reported_at": at,
        "ended_at": at,  # known only as reported: it ended before it reached us
    }
