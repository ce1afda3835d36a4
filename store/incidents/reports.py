"""Incidents as reported and as they move: insert, read, list, the versioned update, SLA timers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from geo.hexes import cell_of
from store.incidents.rows import (
    INCIDENTS,
    IncidentRow,
    StaleIncidentError,
    build,
    db_values,
    to_datetime,
    to_epoch,
)


def insert_incident(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a new incident (`values` with epoch-second `*_at`); its H3 cell is computed here, once."""
    row = db_values(values)
    row.setdefault("h3_cell", cell_of(row["lon"], row["lat"]))
    conn.execute(insert(INCIDENTS).values(row))


def get_incident(conn: Connection, incident_id: str, *, for_update: bool = False) -> IncidentRow | None:
    """The incident, or None. `for_update` locks the row on PostgreSQL (SQLite locks the whole database)."""
    query = select(INCIDENTS).where(INCIDENTS.c.id == incident_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return None if row is None else build(IncidentRow, row)


def list_incidents(
    conn: Connection, *, states: Sequence[str] = (), since: float | None = None, limit: int = 500
) -> list[IncidentRow]:
    """Incidents newest first, optionally in `states` and reported at or after `since`."""
    query = select(INCIDENTS).order_by(INCIDENTS.c.reported_at.desc(), INCIDENTS.c.id).limit(limit)
    if states:
        query = query.where(INCIDENTS.c.state.in_(list(states)))
    if since is not None:
        query = query.where(INCIDENTS.c.reported_at >= to_datetime(since))
    return [build(IncidentRow, r) for r in conn.execute(query).mappings()]


def update_incident(conn: Connection, incident_id: str, seen_version: int, changes: Mapping[str, Any]) -> int:
    """Apply `changes` if the incident is still at `seen_version`; returns the new version.

    Raises StaleIncidentError when another step changed it first (optimistic concurrency).
    """
    result = conn.execute(
        update(INCIDENTS)
        .where(and_(INCIDENTS.c.id == incident_id, INCIDENTS.c.version == seen_version))
        .values(**db_values(changes), version=seen_version + 1)
    )
    if result.rowcount != 1:
        raise StaleIncidentError(incident_id)
    return seen_version + 1


def sla_deadlines(conn: Connection) -> list[tuple[str, float]]:
    """(incident id, SLA due time) of every incident with a running SLA timer (to re-arm after a restart)."""
    rows = conn.execute(
        select(INCIDENTS.c.id, INCIDENTS.c.sla_due_at).where(INCIDENTS.c.sla_due_at.is_not(None))
    )
    return [(r[0], float(to_epoch(r[1]) or 0.0)) for r in rows]


def count_incidents(conn: Connection) -> int:
    """How many incidents are stored (tests and metrics)."""
    return int(conn.execute(select(func.count()).select_from(INCIDENTS)).scalar_one())
