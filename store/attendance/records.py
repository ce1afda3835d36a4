"""The attendance tables and their records (built from rows by `store.rows.record_of`). Times are
timezone-aware UTC in and out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import MetaData, Table

from schemas.tables import attendance as attendance_tables
from schemas.tables import duty as duty_tables
from schemas.tables import registry as registry_tables

_MD = MetaData()
registry_tables.define(_MD)  # the foreign keys' targets
duty_tables.define(_MD)
attendance_tables.define(_MD)
checkins: Table = _MD.tables["checkins"]
rollcalls: Table = _MD.tables["rollcalls"]
rollcall_units_table: Table = _MD.tables["rollcall_units"]
assignments: Table = _MD.tables["assignments"]


@dataclass(frozen=True, slots=True)
class CheckinDraft:
    """A judged check-in, before it is stored."""

    device_id: str
    checkin_id: str
    unit_id: str
    grid_id: str | None
    assignment_id: int | None
    at: datetime
    fix_ts: datetime | None
    lon: float | None
    lat: float | None
    accuracy_m: float | None
    distance_m: float | None
    accepted: bool
    reasons: tuple[str, ...]
    source: str  # device or auto


@dataclass(frozen=True, slots=True)
class Checkin(CheckinDraft):
    """A stored check-in."""

    id: int


@dataclass(frozen=True, slots=True)
class RollCall:
    """A roll call: who called it, over which scope, until when; open until it closes."""

    id: str
    started_at: datetime
    deadline_at: datetime
    scope: dict[str, Any]
    started_by: str
    state: str
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class RollCallUnit:
    """One unit of a roll call: where it was sent, its answer and fix, and its result once judged."""

    rollcall_id: str
    unit_id: str
    grid_id: str | None
    devices: tuple[str, ...]
    answered_at: datetime | None
    answered_by: str | None
    fix_ts: datetime | None
    lon: float | None
    lat: float | None
    inside: bool | None
    pinged_again_at: datetime | None
    result: str | None
