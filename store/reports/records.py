"""What a month's report is built from, as records leaving `store` (times as epoch seconds, the unit of
`dispatch.clock`, so the report's maths is plain arithmetic), and the tables the queries read."""

from __future__ import annotations

from dataclasses import dataclass, field

from shapely.geometry import MultiPolygon
from sqlalchemy import MetaData

from schemas.tables import reports as report_tables
from store.registry.statuses import history as status_history

__all__ = ["status_history"]  # the status history's table, read here, owned by store.registry
_MD = MetaData()
report_tables.define(_MD)
monthly_reports, report_schedule = (_MD.tables[name] for name in ("monthly_reports", "report_schedule"))


@dataclass(frozen=True, slots=True)
class Officer:
    """A unit that is a person (a police officer or an auxiliary), with its status now."""

    id: str
    name: str
    kind: str
    status: str


@dataclass(frozen=True, slots=True)
class Engagement:
    """A unit engaged in an incident (it accepted the offer), with the incident's report and review."""

    unit_id: str
    incident_id: str
    priority: str
    reported_at_s: float
    assigned_at_s: float
    en_route_at_s: float | None
    on_scene_at_s: float | None
    score: int | None  # the incident's evaluation, if any
    feedback: bool  # whether the incident has feedback


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One change of a unit's status."""

    unit_id: str
    at_s: float
    from_status: str
    to_status: str


@dataclass(frozen=True, slots=True)
class Held:
    """An assignment: `unit_id` holds `grid_id` over [starts_at_s, until_s)."""

    id: int
    unit_id: str
    grid_id: str
    starts_at_s: float
    until_s: float


@dataclass(frozen=True, slots=True)
class IncidentPlace:
    """Where and how urgent an incident reported in the month was."""

    id: str
    priority: str
    lon: float
    lat: float


@dataclass(frozen=True, slots=True)
class RollCallResult:
    """How a unit ended one roll call (None: the roll call is still open)."""

    unit_id: str
    rollcall_id: str
    started_at_s: float
    grid_id: str | None
    result: str | None


@dataclass(frozen=True, slots=True)
class GridShape:
    """One version of an assigned grid, valid over [valid_from_s, valid_to_s) (None: still valid)."""

    id: str
    name: str
    level: str
    geometry: MultiPolygon
    valid_from_s: float
    valid_to_s: float | None


@dataclass
class MonthData:
    """Every row a month's report reads, for the officers of the station, from [start_s, end_s)."""

    start_s: float
    end_s: float
    officers: list[Officer] = field(default_factory=list)
    engagements: list[Engagement] = field(default_factory=list)
    offers: dict[tuple[str, str], int] = field(default_factory=dict)  # (unit, state) → count
    status_before: dict[str, str] = field(default_factory=dict)  # each officer's status at start_s
    changes: list[StatusChange] = field(default_factory=list)  # in the month, in time order
    held: list[Held] = field(default_factory=list)  # overlapping the month
    checkins: dict[str, list[float]] = field(default_factory=dict)  # unit → accepted check-in times
    rollcalls: list[RollCallResult] = field(default_factory=list)
    incidents: list[IncidentPlace] = field(default_factory=list)
    grids: list[GridShape] = field(default_factory=list)  # every version of every assigned grid
