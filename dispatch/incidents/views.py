"""Reading incidents back: the full record of one incident, and listings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dispatch.incidents import models as m
from dispatch.incidents.core import progress_of
from dispatch.incidents.intervals import Milestones, response_intervals
from dispatch.incidents.states import TIERS, Event, allowed_events
from dispatch.problems import NotFound
from store import incidents as db

# Events only the system raises: not offered to API callers as next steps.
_INTERNAL = frozenset({Event.TIMEOUT, Event.SLA_BREACH})


def _dt(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


def _odt(epoch_s: float | None) -> datetime | None:
    return None if epoch_s is None else _dt(epoch_s)


def offer_out(o: db.OfferRow) -> m.OfferOut:
    return m.OfferOut(
        id=o.id,
        unit_id=o.unit_id,
        state=o.state,
        slot=o.slot,
        automatic=bool(o.automatic),
        offered_by=o.offered_by,
        offered_at=_dt(o.offered_at),
        expires_at=_dt(o.expires_at),
        answered_by=o.answered_by,
        answered_at=_odt(o.answered_at),
        snapshot_id=o.snapshot_id,
    )


def _unit(e: db.EngagementRow) -> m.EngagedUnitOut:
    return m.EngagedUnitOut(
        unit_id=e.unit_id,
        slot=e.slot,
        state=e.state,
        offer_id=e.offer_id,
        assigned_at=_dt(e.assigned_at),
        en_route_at=_odt(e.en_route_at),
        on_scene_at=_odt(e.on_scene_at),
        released_at=_odt(e.released_at),
        release_reason=e.release_reason,
    )


def _transition(t: db.TransitionRow) -> m.TransitionOut:
    return m.TransitionOut(
        seq=t.seq,
        event=t.event,
        from_state=t.from_state,
        to_state=t.to_state,
        from_tier=TIERS[t.from_tier],
        to_tier=TIERS[t.to_tier],
        at=_dt(t.at),
        actor=t.actor,
        reason=t.reason,
        unit_id=t.unit_id,
        offer_id=t.offer_id,
    )


def _snapshot(s: db.SnapshotRow) -> m.SnapshotOut:
    return m.SnapshotOut(
        id=s.id,
        at=_dt(s.at),
        actor=s.actor,
        decision=s.decision,
        slot=s.slot,
        chosen_unit_id=s.chosen_unit_id,
        query=s.query,
        candidates=s.candidates,
        excluded=s.excluded,
    )


def _review(found: dict[str, Any] | None, cls: type[Any]) -> Any:
    if found is None:
        return None
    return cls(**{k: _dt(v) if k == "at" else v for k, v in found.items()})


def intervals_of(row: db.IncidentRow) -> m.IntervalsOut:
    """The NFPA/NFORS response intervals of an incident."""
    got = response_intervals(Milestones(row.reported_at, row.dispatched_at, row.en_route_at, row.on_scene_at))
    return m.IntervalsOut(**got.as_dict())


def read_incident(store: db.IncidentStore, incident_id: str) -> m.IncidentOut:
    """Everything recorded about one incident (NotFound when there is no such incident)."""
    with store.read() as conn:
        row = db.get_incident(conn, incident_id)
        if row is None:
            raise NotFound(f"no incident {incident_id}")
        offers = db.offers(conn, incident_id)
        units = db.engagements(conn, incident_id)
        history = db.transitions(conn, incident_id)
        snapshots = db.snapshots(conn, incident_id)
        feedback, evaluation = db.review(conn, incident_id)
    return m.IncidentOut(
        id=row.id,
        state=row.state,
        priority=row.priority,
        category=row.category,
        source=row.source,
        description=row.description,
        reporter=row.reporter,
        address=row.address,
        lon=row.lon,
        lat=row.lat,
        tier=TIERS[row.tier],
        tier_entered_at=_dt(row.tier_entered_at),
        sla_due_at=_odt(row.sla_due_at),
        created_by=row.created_by,
        transferred_to=row.transferred_to,
        reported_at=_dt(row.reported_at),
        dispatched_at=_odt(row.dispatched_at),
        en_route_at=_odt(row.en_route_at),
        on_scene_at=_odt(row.on_scene_at),
        resolved_at=_odt(row.resolved_at),
        ended_at=_odt(row.ended_at),
        allowed=[e.value for e in allowed_events(progress_of(row)) if e not in _INTERNAL],
        offers=[offer_out(o) for o in offers],
        units=[_unit(u) for u in units],
        history=[_transition(t) for t in history],
        intervals=intervals_of(row),
        snapshots=[_snapshot(s) for s in snapshots],
        feedback=_review(feedback, m.FeedbackOut),
        evaluation=_review(evaluation, m.EvaluationOut),
    )


def list_summaries(
    store: db.IncidentStore, *, states: tuple[str, ...], since: float | None, limit: int
) -> m.IncidentList:
    """Incidents newest first, filtered by state and report time."""
    with store.read() as conn:
        rows = db.list_incidents(conn, states=states, since=since, limit=limit)
    return m.IncidentList(
        incidents=[
            m.IncidentSummary(
                id=r.id,
                state=r.state,
                priority=r.priority,
                category=r.category,
                source=r.source,
                lon=r.lon,
                lat=r.lat,
                address=r.address,
                tier=TIERS[r.tier],
                reported_at=_dt(r.reported_at),
            )
            for r in rows
        ]
    )
