"""Reading incidents back: the full record of one incident, and listings."""

from __future__ import annotations

from typing import Any

import msgspec

from dispatch.bodies import S, body_of
from dispatch.incidents import models as m
from dispatch.incidents.candidates import Seen
from dispatch.incidents.core import progress_of
from dispatch.incidents.intervals import Milestones, response_intervals
from dispatch.incidents.places import GridPlaces
from dispatch.incidents.states import TIERS, Event, allowed_events
from dispatch.problems import NotFound
from store import incidents as db

# Events only the system raises: not offered to API callers as next steps.
_INTERNAL = frozenset({Event.TIMEOUT, Event.SLA_BREACH})


def offer_out(o: db.OfferRow) -> m.OfferOut:
    return body_of(m.OfferOut, o)


def _transition(t: db.TransitionRow) -> m.TransitionOut:
    return body_of(m.TransitionOut, t, from_tier=TIERS[t.from_tier], to_tier=TIERS[t.to_tier])


def _review(found: dict[str, Any] | None, cls: type[S]) -> S | None:
    # The row's keys are SQLAlchemy's names (a str subclass msgspec does not take as keys).
    return (
        None if found is None else msgspec.convert({str(k): v for k, v in found.items()}, cls, strict=False)
    )


def intervals_of(row: db.IncidentRow) -> m.IntervalsOut:
    """The NFPA/NFORS response intervals of an incident."""
    got = response_intervals(Milestones(row.reported_at, row.dispatched_at, row.en_route_at, row.on_scene_at))
    return m.IntervalsOut(**got.as_dict())


def _call(row: db.IncidentRow, *, merged: bool) -> m.CallOut:
    return body_of(m.CallOut, row, incident_id=row.id, merged_at=row.ended_at if merged else None)


def read_incident(store: db.IncidentStore, incident_id: str, places: GridPlaces) -> m.IncidentOut:
    """Everything recorded about one incident (NotFound when there is no such incident)."""
    places.refresh()
    with store.read() as conn:
        row = db.get_incident(conn, incident_id)
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        offers = db.offers(conn, incident_id)
        units = db.engagements(conn, incident_id)
        history = db.transitions(conn, incident_id)
        snapshots = db.snapshots(conn, incident_id)
        feedback, evaluation = db.review(conn, incident_id)
        merged = db.merged_reports(conn, incident_id)
    return body_of(
        m.IncidentOut,
        row,
        tier=TIERS[row.tier],
        allowed=[e.value for e in allowed_events(progress_of(row)) if e not in _INTERNAL],
        offers=[offer_out(o) for o in offers],
        units=[body_of(m.EngagedUnitOut, u) for u in units],
        history=[_transition(t) for t in history],
        intervals=intervals_of(row),
        snapshots=[body_of(m.SnapshotOut, s) for s in snapshots],
        feedback=_review(feedback, m.FeedbackOut),
        evaluation=_review(evaluation, m.EvaluationOut),
        community_grid_name=places.name(row.community_grid_id),
        police_grid_name=places.name(row.police_grid_id),
        calls=[_call(row, merged=False), *(_call(r, merged=True) for r in merged)],
    )


def list_summaries(
    store: db.IncidentStore, *, states: tuple[str, ...], since: float | None, limit: int
) -> m.IncidentList:
    """Incidents newest first, filtered by state and report time."""
    with store.read() as conn:
        rows = db.list_incidents(conn, states=states, since=since, limit=limit)
    return m.IncidentList(incidents=[body_of(m.IncidentSummary, r, tier=TIERS[r.tier]) for r in rows])


def slot_recommendation(seen: Seen) -> m.SlotRecommendation:
    """A slot's picks (in the cascade's order) and the units passed over, each with its reason."""
    picked = [msgspec.convert(c, m.Candidate) for c in seen.candidates if c["eligible"]]
    passed = [
        msgspec.convert({k: c.get(k) for k in _PASSED_FIELDS}, m.PassedOver)
        for c in seen.candidates
        if not c["eligible"]
    ]
    return m.SlotRecommendation(slot=seen.slot, candidates=picked, excluded=seen.excluded, passed_over=passed)


_PASSED_FIELDS = ("unit_id", "kind", "status", "distance_m", "basis", "grid_id", "reason")
