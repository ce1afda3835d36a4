"""The incident loop's tables, records and errors, and how its times cross the storage boundary: epoch
seconds (floats, the unit of `dispatch.clock`) outside, timezone-aware UTC datetimes in the columns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, MetaData, Table, func, select

from schemas.tables import Flavour
from schemas.tables import incidents as tables
from store.times import as_utc

T = TypeVar("T")


class StaleIncidentError(Exception):
    """The incident changed between read and write (another step won); re-read and try again."""


class UnitEngagedError(Exception):
    """The unit already holds a pending offer or is engaged in an incident (the database's unique guard)."""


def _metadata() -> MetaData:
    # Column shapes are the same on both dialects except `geom`, which these queries never touch.
    md = MetaData()
    tables.define(md, Flavour("sqlite"))
    return md


_MD = _metadata()
INCIDENTS: Table = _MD.tables["incidents"]
OFFERS: Table = _MD.tables["incident_offers"]
UNITS: Table = _MD.tables["incident_units"]
TRANSITIONS: Table = _MD.tables["incident_transitions"]
SNAPSHOTS: Table = _MD.tables["dispatch_snapshots"]
FEEDBACK: Table = _MD.tables["incident_feedback"]
EVALUATIONS: Table = _MD.tables["incident_evaluations"]
IDEMPOTENCY: Table = _MD.tables["idempotency_keys"]


def to_datetime(epoch_s: float | None) -> datetime | None:
    """Epoch seconds → aware UTC datetime (None stays None)."""
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)


def to_epoch(value: datetime | None) -> float | None:
    """A datetime column value → epoch seconds; SQLite gives naive UTC back."""
    return None if value is None else as_utc(value).timestamp()


def db_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Epoch floats of `*_at` keys → datetimes, as the columns want them."""
    return {k: to_datetime(v) if k.endswith("_at") or k == "at" else v for k, v in values.items()}


def build(cls: type[T], row: Mapping[Any, Any]) -> T:
    """The record `cls` from a row mapping, its datetimes as epoch seconds."""
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {k: to_epoch(v) if isinstance(v, datetime) else v for k, v in row.items() if k in fields}
    return cls(**values)


def next_n(conn: Connection, table: Table, incident_id: str) -> int:
    """The next number within the incident of a table numbered by `n` (snapshots, offers)."""
    found = conn.execute(select(func.max(table.c.n)).where(table.c.incident_id == incident_id)).scalar()
    return int(found or 0) + 1


@dataclass(frozen=True)
class IncidentRow:
    """One incident as stored."""

    id: str
    state: str
    priority: str
    category: str
    source: str
    description: str
    reporter: str
    address: str | None
    lon: float
    lat: float
    tier: int
    tier_entered_at: float
    sla_due_at: float | None
    pending_offers: int
    engaged_units: int
    version: int
    created_by: str
    transferred_to: str | None
    reported_at: float
    dispatched_at: float | None
    en_route_at: float | None
    on_scene_at: float | None
    resolved_at: float | None
    ended_at: float | None
    community_grid_id: str | None = None
    police_grid_id: str | None = None
    merged_into: str | None = None


@dataclass(frozen=True)
class OfferRow:
    """One offer of an incident to a unit."""

    id: str
    incident_id: str
    unit_id: str
    slot: str
    state: str
    automatic: bool
    snapshot_id: str | None
    offered_by: str
    offered_at: float
    expires_at: float
    answered_by: str | None
    answered_at: float | None


@dataclass(frozen=True)
class EngagementRow:
    """A unit that accepted an incident, and its steps."""

    incident_id: str
    unit_id: str
    offer_id: str
    slot: str
    state: str
    assigned_at: float
    en_route_at: float | None
    on_scene_at: float | None
    released_at: float | None
    release_reason: str | None
    accepted_lon: float | None
    accepted_lat: float | None


@dataclass(frozen=True)
class TransitionRow:
    """One line of the audit trail."""

    seq: int
    event: str
    from_state: str | None
    to_state: str
    from_tier: int
    to_tier: int
    at: float
    actor: str
    reason: str | None
    unit_id: str | None
    offer_id: str | None


@dataclass(frozen=True)
class SnapshotRow:
    """What the dispatcher (or policy) saw when deciding."""

    id: str
    incident_id: str
    at: float
    actor: str
    decision: str
    slot: str
    chosen_unit_id: str | None
    query: dict[str, Any]
    candidates: list[dict[str, Any]]
    excluded: dict[str, Any]
