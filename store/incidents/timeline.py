"""What happened to an incident and why: its audit trail, the snapshots of what each decision saw, and the
officer's feedback and the evaluation afterwards."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from store.incidents.rows import (
    EVALUATIONS,
    FEEDBACK,
    SNAPSHOTS,
    TRANSITIONS,
    SnapshotRow,
    TransitionRow,
    build,
    db_values,
    next_n,
    to_epoch,
)


def insert_transition(conn: Connection, values: Mapping[str, Any]) -> None:
    """Append one step to the incident's audit trail."""
    conn.execute(insert(TRANSITIONS).values(db_values(values)))


def transitions(conn: Connection, incident_id: str) -> list[TransitionRow]:
    """The incident's audit trail in order."""
    query = select(TRANSITIONS).where(TRANSITIONS.c.incident_id == incident_id).order_by(TRANSITIONS.c.seq)
    return [build(TransitionRow, r) for r in conn.execute(query).mappings()]


def insert_snapshot(conn: Connection, values: Mapping[str, Any]) -> None:
    """Store what a dispatch decision was based on (numbered within its incident)."""
    n = next_n(conn, SNAPSHOTS, values["incident_id"])
    conn.execute(insert(SNAPSHOTS).values(db_values({**values, "n": n})))


def snapshots(conn: Connection, incident_id: str) -> list[SnapshotRow]:
    """The incident's decision snapshots, oldest first."""
    query = select(SNAPSHOTS).where(SNAPSHOTS.c.incident_id == incident_id).order_by(SNAPSHOTS.c.n)
    return [build(SnapshotRow, r) for r in conn.execute(query).mappings()]


def insert_feedback(conn: Connection, values: Mapping[str, Any]) -> None:
    """Record the handling officer's feedback (once per incident)."""
    conn.execute(insert(FEEDBACK).values(db_values(values)))


def insert_evaluation(conn: Connection, values: Mapping[str, Any]) -> None:
    """Record the evaluation of the handling (once per incident)."""
    conn.execute(insert(EVALUATIONS).values(db_values(values)))


def review(conn: Connection, incident_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(feedback, evaluation) of the incident, each None when not recorded."""
    found = []
    for table in (FEEDBACK, EVALUATIONS):
        row = conn.execute(select(table).where(table.c.incident_id == incident_id)).mappings().first()
        found.append(None if row is None else {k: _plain(v) for k, v in row.items() if k != "incident_id"})
    return found[0], found[1]


def _plain(value: Any) -> Any:
    return to_epoch(value) if isinstance(value, datetime) else value
