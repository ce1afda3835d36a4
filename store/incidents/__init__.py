"""Queries of the incident loop (SQLAlchemy Core; PostgreSQL and SQLite alike).

Every function takes an open `Connection`, so the caller decides the transaction: one dispatch step (read the
incident, conditional UPDATE, audit rows) commits or rolls back as a whole. Times cross this boundary as
epoch seconds (floats), the unit of `dispatch.clock`; columns hold timezone-aware UTC datetimes.

One module per concern over the shared `rows`: `reports` (the incidents), `dispatching` (offers and the units
engaged), `timeline` (audit trail, decision snapshots, feedback and evaluation), `idempotency`, and `handle`
(`IncidentStore`, the transactions). Callers import them all from here, as `from store import incidents`.
"""

from __future__ import annotations

from store.incidents.dispatching import (
    ENGAGED_STATUSES,
    active_engagements,
    answer_offer,
    engagements,
    get_offer,
    insert_engagement,
    insert_offer,
    offers,
    pending_offers,
    release_engagements,
    stranded_units,
    units_tried,
    update_engagement,
)
from store.incidents.handle import IncidentStore
from store.incidents.idempotency import StoredResponse, complete_key, purge_keys, release_key
from store.incidents.places import grid_versions, merged_reports
from store.incidents.reports import (
    count_incidents,
    get_incident,
    insert_incident,
    list_incidents,
    sla_deadlines,
    update_incident,
)
from store.incidents.rows import (
    EVALUATIONS,
    FEEDBACK,
    IDEMPOTENCY,
    INCIDENTS,
    OFFERS,
    SNAPSHOTS,
    TRANSITIONS,
    UNITS,
    EngagementRow,
    IncidentRow,
    OfferRow,
    SnapshotRow,
    StaleIncidentError,
    TransitionRow,
    UnitEngagedError,
    to_datetime,
    to_epoch,
)
from store.incidents.timeline import (
    insert_evaluation,
    insert_feedback,
    insert_snapshot,
    insert_transition,
    review,
    snapshots,
    transitions,
)

__all__ = [
    "ENGAGED_STATUSES",
    "EVALUATIONS",
    "FEEDBACK",
    "IDEMPOTENCY",
    "INCIDENTS",
    "OFFERS",
    "SNAPSHOTS",
    "TRANSITIONS",
    "UNITS",
    "EngagementRow",
    "IncidentRow",
    "IncidentStore",
    "OfferRow",
    "SnapshotRow",
    "StaleIncidentError",
    "StoredResponse",
    "TransitionRow",
    "UnitEngagedError",
    "active_engagements",
    "answer_offer",
    "complete_key",
    "count_incidents",
    "engagements",
    "get_incident",
    "get_offer",
    "grid_versions",
    "insert_engagement",
    "insert_evaluation",
    "insert_feedback",
    "insert_incident",
    "insert_offer",
    "insert_snapshot",
    "insert_transition",
    "list_incidents",
    "merged_reports",
    "offers",
    "pending_offers",
    "purge_keys",
    "release_engagements",
    "release_key",
    "review",
    "sla_deadlines",
    "snapshots",
    "stranded_units",
    "to_datetime",
    "to_epoch",
    "transitions",
    "units_tried",
    "update_engagement",
    "update_incident",
]
