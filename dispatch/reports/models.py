"""The monthly workload and performance report as it is answered and stored (msgspec Structs; times are
RFC 3339 UTC, durations seconds, distances metres, shares 0 to 1)."""

from __future__ import annotations

import msgspec

RANKING = "incidents handled (most first), then P50 call → on scene (fastest first; none last), then unit id"


class Responses(msgspec.Struct):
    """One response interval over the month: how many were measured, their P50 and P90 (nearest rank)."""

    count: int
    p50_s: float | None
    p90_s: float | None


class ResponseFigures(msgspec.Struct):
    """The three response intervals of the unit's engagements: accepted → left (`dispatch_to_en_route`),
    left → arrived (`en_route_to_on_scene`), incident reported → arrived (`call_to_on_scene`)."""

    dispatch_to_en_route: Responses
    en_route_to_on_scene: Responses
    call_to_on_scene: Responses


class Offers(msgspec.Struct):
    """Offers made in the month by how they were answered."""

    accepted: int = 0
    declined: int = 0
    timed_out: int = 0


class Checkins(msgspec.Struct):
    """Assignments starting in the month by their first accepted check-in."""

    on_time: int = 0
    late: int = 0
    missing: int = 0


class RollCalls(msgspec.Struct):
    """Roll calls started in the month by how the unit ended them (`present` includes out of grid)."""

    present: int = 0
    late: int = 0
    silent: int = 0
    without_fix: int = 0


class Officer(msgspec.Struct):
    """One officer's month."""

    rank: int
    unit_id: str
    name: str
    kind: str
    incidents: dict[str, int]  # handled, by priority P1 … P4
    incidents_total: int
    offers: Offers
    responses: ResponseFigures
    distance_m: float
    duty_hours: float
    assigned_duty_hours: float  # of the on-duty hours, those holding an assigned grid
    inside_grid_share: float | None  # of the assigned duty hours, inside the grid (None: none assigned)
    checkins: Checkins
    rollcalls: RollCalls
    evaluations: int
    mean_score: float | None
    feedback: int


class Grid(msgspec.Struct):
    """One assigned grid's month: the incidents reported inside it and the duty of its holders."""

    grid_id: str
    name: str
    level: str
    incidents_reported: dict[str, int]  # by priority
    holders: int
    assigned_duty_hours: float
    inside_grid_share: float | None
    checkins: Checkins
    rollcalls: RollCalls


class Station(msgspec.Struct):
    """The whole station: officers' figures added up; incidents and reviews counted once per incident."""

    officers: int
    incidents: dict[str, int]
    incidents_total: int
    offers: Offers
    responses: ResponseFigures
    distance_m: float
    duty_hours: float
    assigned_duty_hours: float
    inside_grid_share: float | None
    checkins: Checkins
    rollcalls: RollCalls
    evaluations: int
    mean_score: float | None
    feedback: int


class MonthlyReport(msgspec.Struct):
    """Each officer's workload and performance over a month (station time), ranked, with station and grid
    totals. `complete` is false for the month still running (figures up to `as_of`), which is never
    stored."""

    month: str
    timezone: str
    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")
    as_of: str = ""
    complete: bool = True
    ranking: str = RANKING
    officers: list[Officer] = msgspec.field(default_factory=list)
    grids: list[Grid] = msgspec.field(default_factory=list)
    station: Station | None = None


class MonthlyReportOut(MonthlyReport):
    """A month's report, with when and by what it was generated."""

    generated_at: str = ""
    trigger: str = ""
