"""Request and response bodies of the incident API (msgspec: validated on decode, documented in OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from schemas.values import PRINTABLE, Name, Reason, Text, UnitId

Priority = Literal["P1", "P2", "P3", "P4"]
Source = Literal["dispatcher", "call", "grid_report", "device_alarm"]
Lon = Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]
Lat = Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
# One-line text the incident's people are named by (a reporter, an address): printable, bounded.
Line = Annotated[str, msgspec.Meta(max_length=500, pattern=PRINTABLE)]


class IncidentIn(msgspec.Struct, forbid_unknown_fields=True):
    """A reported incident. Coordinates are lon, lat (WGS84 degrees)."""

    lon: Lon
    lat: Lat
    category: Name
    priority: Priority
    source: Source
    description: Text = ""
    reporter: Line = ""
    address: Line | None = None


class Created(msgspec.Struct):
    """The new incident's id and state (offers made by policy are listed in GET /v1/incidents/{id})."""

    id: str
    state: str


class OfferIn(msgspec.Struct, forbid_unknown_fields=True):
    """Offer the incident to `unit_id`, or, when absent, to the recommended unit for the first open slot."""

    unit_id: UnitId | None = None


class UnitStepIn(msgspec.Struct, forbid_unknown_fields=True):
    """A unit's step; `unit_id` may be left out when exactly one engaged unit can take the step."""

    unit_id: UnitId | None = None
    reason: Reason | None = None


class ReasonIn(msgspec.Struct, forbid_unknown_fields=True):
    """Why (kept in the audit trail)."""

    reason: Reason | None = None


class TransferIn(msgspec.Struct, forbid_unknown_fields=True):
    """Move the incident up to a tier (`to`: police_grid, station, command_centre), or hand it to another
    agency or jurisdiction (any other `to`)."""

    to: Name
    reason: Reason | None = None


class PriorityIn(msgspec.Struct, forbid_unknown_fields=True):
    """The incident's new priority, and why (kept in the audit trail)."""

    priority: Priority
    reason: Reason | None = None


class MergeIn(msgspec.Struct, forbid_unknown_fields=True):
    """The incident of the path is a duplicate report of `into`, which keeps its call."""

    into: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=PRINTABLE)]
    reason: Reason | None = None


class FeedbackIn(msgspec.Struct, forbid_unknown_fields=True):
    """The handling officer's report."""

    outcome: Name
    officer: Name
    notes: Text = ""


class EvaluationIn(msgspec.Struct, forbid_unknown_fields=True):
    """A reviewer's evaluation of the handling: score 1 (poor) to 5 (exemplary)."""

    score: Annotated[int, msgspec.Meta(ge=1, le=5)]
    evaluator: Name
    comments: Text = ""


class OfferOut(msgspec.Struct):
    """An offer of the incident to one unit."""

    id: str
    unit_id: str
    state: str  # pending, accepted, declined, timed_out, withdrawn
    slot: str  # the unit kind it fills (police, auxiliary, vehicle, any, extra)
    automatic: bool
    offered_by: str
    offered_at: datetime
    expires_at: datetime
    answered_by: str | None
    answered_at: datetime | None
    snapshot_id: str | None


class EngagedUnitOut(msgspec.Struct):
    """A unit that accepted the incident, and when it made each step."""

    unit_id: str
    slot: str
    state: str  # assigned, en_route, on_scene, released
    offer_id: str
    assigned_at: datetime
    en_route_at: datetime | None
    on_scene_at: datetime | None
    released_at: datetime | None
    release_reason: str | None


class TransitionOut(msgspec.Struct):
    """One step of the audit trail: what, from which state to which, when, by whom, why."""

    seq: int
    event: str
    from_state: str | None
    to_state: str
    from_tier: str
    to_tier: str
    at: datetime
    actor: str
    reason: str | None
    unit_id: str | None
    offer_id: str | None


class IntervalsOut(msgspec.Struct):
    """NFPA 1710 / NFORS response intervals (s): None where a milestone is missing."""

    processing_s: float | None  # reported → dispatched
    turnout_s: float | None  # dispatched → en_route
    travel_s: float | None  # en_route → on_scene
    total_s: float | None  # reported → on_scene


class SnapshotOut(msgspec.Struct):
    """What a dispatch decision was based on: every candidate with position, fix age, status, distance."""

    id: str
    at: datetime
    actor: str
    decision: str
    slot: str
    chosen_unit_id: str | None
    query: dict[str, Any]
    candidates: list[dict[str, Any]]
    excluded: dict[str, Any]


class FeedbackOut(msgspec.Struct):
    """The recorded feedback."""

    outcome: str
    officer: str
    notes: str
    recorded_by: str
    at: datetime


class EvaluationOut(msgspec.Struct):
    """The recorded evaluation."""

    score: int
    evaluator: str
    comments: str
    recorded_by: str
    at: datetime


class IncidentSummary(msgspec.Struct):
    """An incident in a listing."""

    id: str
    state: str
    priority: str
    category: str
    source: str
    lon: float
    lat: float
    address: str | None
    tier: str
    reported_at: datetime
    community_grid_id: str | None
    police_grid_id: str | None
    merged_into: str | None


class CallOut(msgspec.Struct):
    """One report of the incident: its own first, then each duplicate merged into it (their times kept)."""

    incident_id: str  # the incident the report opened (the duplicate's id for a merged one)
    source: str
    category: str
    priority: str
    description: str
    reporter: str
    address: str | None
    lon: float
    lat: float
    reported_at: datetime
    merged_at: datetime | None  # None for the incident's own report


class IncidentList(msgspec.Struct):
    """Incidents, newest first."""

    incidents: list[IncidentSummary]


class IncidentOut(msgspec.Struct):
    """`GET /v1/incidents/{id}`: the incident, its offers, units, history, intervals and snapshots."""

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
    tier: str
    tier_entered_at: datetime
    sla_due_at: datetime | None
    created_by: str
    transferred_to: str | None
    community_grid_id: str | None  # the grids that held its place when reported (None: outside them)
    community_grid_name: str | None
    police_grid_id: str | None
    police_grid_name: str | None
    merged_into: str | None  # set on a duplicate merged into another incident
    reported_at: datetime
    dispatched_at: datetime | None
    en_route_at: datetime | None
    on_scene_at: datetime | None
    resolved_at: datetime | None
    ended_at: datetime | None
    allowed: list[str]  # the events the state machine accepts now
    offers: list[OfferOut]
    units: list[EngagedUnitOut]
    history: list[TransitionOut]
    intervals: IntervalsOut
    snapshots: list[SnapshotOut]
    feedback: FeedbackOut | None
    evaluation: EvaluationOut | None
    calls: list[CallOut]  # every report of it: its own, then the duplicates merged into it


class Candidate(msgspec.Struct):
    """A recommended unit and why."""

    unit_id: str
    kind: str
    status: str
    lon: float
    lat: float
    distance_m: float
    fix_age_s: float
    accuracy_m: float | None
    eta_s: float  # straight-line distance at a typical speed for the kind: an estimate, not a route
    reason: str
    # Which ring of the cascade picked it: community_grid, police_grid (the incident's grids' holders),
    # neighbouring_grid (a touching grid's holder) or nearest (anywhere); grid_id: the grid it holds.
    basis: str = "nearest"
    grid_id: str | None = None


class PassedOver(msgspec.Struct):
    """A unit the cascade saw and did not pick, and why (None: not known, e.g. no live position)."""

    unit_id: str
    kind: str | None
    status: str | None
    distance_m: float | None
    basis: str
    grid_id: str | None
    reason: str


class SlotRecommendation(msgspec.Struct):
    """The best units for one open slot of the incident."""

    slot: str
    candidates: list[Candidate]  # in the cascade's pick order
    excluded: dict[str, int]
    passed_over: list[PassedOver]


class Recommendations(msgspec.Struct):
    """Suitable available units per open slot, in the cascade's order: the incident's grids' holders, the
    neighbouring grids' holders, the nearest anywhere (units already offered this incident are left out)."""

    incident_id: str
    community_grid_id: str | None
    police_grid_id: str | None
    slots: list[SlotRecommendation]


class StepOut(msgspec.Struct):
    """The incident after a step: its state and tier, and the step just recorded."""

    id: str
    state: str
    tier: str
    event: str
    from_state: str
    at: datetime
    unit_id: str | None = None
