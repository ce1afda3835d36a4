"""Queries of the incident loop (SQLAlchemy Core; PostgreSQL and SQLite alike).

Every function takes an open `Connection`, so the caller decides the transaction: one dispatch step (read the
incident, conditional UPDATE, audit rows) commits or rolls back as a whole. Times cross this boundary as
epoch seconds (floats), the unit of `dispatch.clock`; columns hold timezone-aware UTC datetimes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, MetaData, Table, and_, exists, func, insert, select, sql, update
from sqlalchemy.exc import IntegrityError

from schemas.tables import Flavour
from schemas.tables import incidents as tables

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
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _db_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Epoch floats of `*_at` keys → datetimes, as the columns want them."""
    return {k: to_datetime(v) if k.endswith("_at") or k == "at" else v for k, v in values.items()}


def _build(cls: type[T], row: Mapping[Any, Any]) -> T:
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {k: to_epoch(v) if isinstance(v, datetime) else v for k, v in row.items() if k in fields}
    return cls(**values)


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


# --- incidents ----------------------------------------------------------------------------------


def insert_incident(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a new incident (`values` with epoch-second `*_at`)."""
    conn.execute(insert(INCIDENTS).values(_db_values(values)))


def get_incident(conn: Connection, incident_id: str, *, for_update: bool = False) -> IncidentRow | None:
    """The incident, or None. `for_update` locks the row on PostgreSQL (SQLite locks the whole database)."""
    query = select(INCIDENTS).where(INCIDENTS.c.id == incident_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return None if row is None else _build(IncidentRow, row)


def list_incidents(
    conn: Connection, *, states: Sequence[str] = (), since: float | None = None, limit: int = 500
) -> list[IncidentRow]:
    """Incidents newest first, optionally in `states` and reported at or after `since`."""
    query = select(INCIDENTS).order_by(INCIDENTS.c.reported_at.desc(), INCIDENTS.c.id).limit(limit)
    if states:
        query = query.where(INCIDENTS.c.state.in_(list(states)))
    if since is not None:
        query = query.where(INCIDENTS.c.reported_at >= to_datetime(since))
    return [_build(IncidentRow, r) for r in conn.execute(query).mappings()]


def update_incident(conn: Connection, incident_id: str, seen_version: int, changes: Mapping[str, Any]) -> int:
    """Apply `changes` if the incident is still at `seen_version`; returns the new version.

    Raises StaleIncidentError when another step changed it first (optimistic concurrency).
    """
    result = conn.execute(
        update(INCIDENTS)
        .where(and_(INCIDENTS.c.id == incident_id, INCIDENTS.c.version == seen_version))
        .values(**_db_values(changes), version=seen_version + 1)
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


# --- audit trail and snapshots ------------------------------------------------------------------


def insert_transition(conn: Connection, values: Mapping[str, Any]) -> None:
    """Append one step to the incident's audit trail."""
    conn.execute(insert(TRANSITIONS).values(_db_values(values)))


def transitions(conn: Connection, incident_id: str) -> list[TransitionRow]:
    """The incident's audit trail in order."""
    query = select(TRANSITIONS).where(TRANSITIONS.c.incident_id == incident_id).order_by(TRANSITIONS.c.seq)
    return [_build(TransitionRow, r) for r in conn.execute(query).mappings()]


def _next_n(conn: Connection, table: Table, incident_id: str) -> int:
    found = conn.execute(select(func.max(table.c.n)).where(table.c.incident_id == incident_id)).scalar()
    return int(found or 0) + 1


def insert_snapshot(conn: Connection, values: Mapping[str, Any]) -> None:
    """Store what a dispatch decision was based on (numbered within its incident)."""
    n = _next_n(conn, SNAPSHOTS, values["incident_id"])
    conn.execute(insert(SNAPSHOTS).values(_db_values({**values, "n": n})))


def snapshots(conn: Connection, incident_id: str) -> list[SnapshotRow]:
    """The incident's decision snapshots, oldest first."""
    query = select(SNAPSHOTS).where(SNAPSHOTS.c.incident_id == incident_id).order_by(SNAPSHOTS.c.n)
    return [_build(SnapshotRow, r) for r in conn.execute(query).mappings()]


# --- offers -------------------------------------------------------------------------------------


def insert_offer(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a pending offer; UnitEngagedError when the unit already holds a pending offer.

    The error leaves the transaction unusable (PostgreSQL): let it propagate so the whole step rolls back.
    """
    n = _next_n(conn, OFFERS, values["incident_id"])
    try:
        conn.execute(insert(OFFERS).values(_db_values({**values, "n": n})))
    except IntegrityError as exc:
        raise UnitEngagedError(str(values.get("unit_id"))) from exc


def get_offer(conn: Connection, offer_id: str) -> OfferRow | None:
    """The offer, or None."""
    row = conn.execute(select(OFFERS).where(OFFERS.c.id == offer_id)).mappings().first()
    return None if row is None else _build(OfferRow, row)


def offers(conn: Connection, incident_id: str) -> list[OfferRow]:
    """The incident's offers, oldest first."""
    query = select(OFFERS).where(OFFERS.c.incident_id == incident_id).order_by(OFFERS.c.n)
    return [_build(OfferRow, r) for r in conn.execute(query).mappings()]


def pending_offers(conn: Connection) -> list[OfferRow]:
    """Every pending offer (to re-arm the timeouts after a restart)."""
    query = select(OFFERS).where(OFFERS.c.state == "pending").order_by(OFFERS.c.expires_at)
    return [_build(OfferRow, r) for r in conn.execute(query).mappings()]


def answer_offer(conn: Connection, offer_id: str, state: str, *, by: str, at: float) -> bool:
    """Move a pending offer to `state`; False when it was no longer pending (someone answered first)."""
    result = conn.execute(
        update(OFFERS)
        .where(and_(OFFERS.c.id == offer_id, OFFERS.c.state == "pending"))
        .values(state=state, answered_by=by, answered_at=to_datetime(at))
    )
    return result.rowcount == 1


# --- units engaged ------------------------------------------------------------------------------


def insert_engagement(conn: Connection, values: Mapping[str, Any]) -> None:
    """Engage a unit; UnitEngagedError when it is engaged in another incident (roll the step back)."""
    try:
        conn.execute(insert(UNITS).values(_db_values(values)))
    except IntegrityError as exc:
        raise UnitEngagedError(str(values.get("unit_id"))) from exc


def engagements(conn: Connection, incident_id: str) -> list[EngagementRow]:
    """The units that accepted the incident, in the order they accepted."""
    query = select(UNITS).where(UNITS.c.incident_id == incident_id).order_by(UNITS.c.assigned_at, UNITS.c.id)
    return [_build(EngagementRow, r) for r in conn.execute(query).mappings()]


def active_engagements(conn: Connection) -> list[tuple[EngagementRow, float, float]]:
    """Every unreleased engagement with its incident's lon, lat (arrival detection after a restart)."""
    query = (
        select(UNITS, INCIDENTS.c.lon, INCIDENTS.c.lat)
        .join(INCIDENTS, INCIDENTS.c.id == UNITS.c.incident_id)
        .where(UNITS.c.released_at.is_(None))
    )
    return [(_build(EngagementRow, r), r["lon"], r["lat"]) for r in conn.execute(query).mappings()]


def update_engagement(conn: Connection, incident_id: str, unit_id: str, changes: Mapping[str, Any]) -> None:
    """Record a unit's step (state and its time) within an incident."""
    conn.execute(
        update(UNITS)
        .where(and_(UNITS.c.incident_id == incident_id, UNITS.c.unit_id == unit_id))
        .values(**_db_values(changes))
    )


def release_engagements(conn: Connection, incident_id: str, *, at: float, reason: str) -> None:
    """Release every unit still engaged in the incident."""
    conn.execute(
        update(UNITS)
        .where(and_(UNITS.c.incident_id == incident_id, UNITS.c.released_at.is_(None)))
        .values(state="released", released_at=to_datetime(at), release_reason=reason)
    )


# The registry's units table, only the columns `stranded_units` reads (its owner is schemas.tables.registry).
_REGISTRY_UNITS = sql.table("units", sql.column("id"), sql.column("status"))
ENGAGED_STATUSES = ("assigned", "en_route", "on_scene")


def stranded_units(conn: Connection) -> list[tuple[str, str]]:
    """(unit id, status) of units "offered" with no pending offer: a crash between the claim and the offer.

    Only "offered" is the incident loop's alone; assigned / en_route / on_scene may also be set by hand for
    work outside Outpost's incidents (a unit's own stop), so a restart must not reset them."""
    u = _REGISTRY_UNITS
    pending = exists().where(and_(OFFERS.c.unit_id == u.c.id, OFFERS.c.state == "pending"))
    query = select(u.c.id, u.c.status).where((u.c.status == "offered") & ~pending).order_by(u.c.id)
    return [(r[0], r[1]) for r in conn.execute(query)]


def units_tried(conn: Connection, incident_id: str) -> set[str]:
    """Units that were ever offered this incident (they are not offered it again)."""
    rows = conn.execute(select(OFFERS.c.unit_id).where(OFFERS.c.incident_id == incident_id).distinct())
    return {r[0] for r in rows}


# --- feedback and evaluation --------------------------------------------------------------------


def insert_feedback(conn: Connection, values: Mapping[str, Any]) -> None:
    """Record the handling officer's feedback (once per incident)."""
    conn.execute(insert(FEEDBACK).values(_db_values(values)))


def insert_evaluation(conn: Connection, values: Mapping[str, Any]) -> None:
    """Record the evaluation of the handling (once per incident)."""
    conn.execute(insert(EVALUATIONS).values(_db_values(values)))


def review(conn: Connection, incident_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(feedback, evaluation) of the incident, each None when not recorded."""
    found = []
    for table in (FEEDBACK, EVALUATIONS):
        row = conn.execute(select(table).where(table.c.incident_id == incident_id)).mappings().first()
        found.append(None if row is None else {k: _plain(v) for k, v in row.items() if k != "incident_id"})
    return found[0], found[1]


def _plain(value: Any) -> Any:
    return to_epoch(value) if isinstance(value, datetime) else value


# --- idempotency keys ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredResponse:
    """An Idempotency-Key seen before: its request hash and, once finished, the response it got."""

    request_hash: str
    status: int | None  # None: the first request is still running
    response: Any


def _claim_key(engine: Engine, scope: str, key: str, request_hash: str, at: float) -> StoredResponse | None:
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(IDEMPOTENCY).values(
                    scope=scope, key=key, request_hash=request_hash, created_at=to_datetime(at)
                )
            )
    except IntegrityError:
        with engine.connect() as conn:
            row = (
                conn.execute(
                    select(IDEMPOTENCY).where(and_(IDEMPOTENCY.c.scope == scope, IDEMPOTENCY.c.key == key))
                )
                .mappings()
                .first()
            )
        if row is None:  # purged in between: report it as still running, the client retries
            return StoredResponse(request_hash, None, None)
        return StoredResponse(row["request_hash"], row["status"], row["response"])
    return None


def complete_key(conn: Connection, scope: str, key: str, status: int, response: Any) -> None:
    """Store the response a claimed key's request got."""
    conn.execute(
        update(IDEMPOTENCY)
        .where(and_(IDEMPOTENCY.c.scope == scope, IDEMPOTENCY.c.key == key))
        .values(status=status, response=response)
    )


def release_key(conn: Connection, scope: str, key: str) -> None:
    """Forget a claimed key (its request failed on our side, so a retry must run again)."""
    conn.execute(IDEMPOTENCY.delete().where(and_(IDEMPOTENCY.c.scope == scope, IDEMPOTENCY.c.key == key)))


def purge_keys(conn: Connection, *, before: float) -> int:
    """Delete keys created before `before`; returns how many."""
    result = conn.execute(IDEMPOTENCY.delete().where(IDEMPOTENCY.c.created_at < to_datetime(before)))
    return int(result.rowcount)


def count_incidents(conn: Connection) -> int:
    """How many incidents are stored (tests and metrics)."""
    return int(conn.execute(select(func.count()).select_from(INCIDENTS)).scalar_one())


class IncidentStore:
    """The incident loop's handle on the database: transactions, and the Idempotency-Key records.

    `begin()` yields a connection in a transaction for the module's query functions: one dispatch step
    commits or rolls back as a whole.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        """ "postgresql" or "sqlite"."""
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside a transaction, committed on leaving, rolled back on an exception."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads."""
        with self.engine.connect() as conn:
            yield conn

    def create(self, values: Mapping[str, Any], *, actor: str, at: float, reason: str) -> IncidentRow:
        """Insert a new incident (version 1) with the first line of its audit trail, "create" → new."""
        with self.engine.begin() as conn:
            insert_incident(conn, {**values, "version": 1})
            insert_transition(
                conn,
                {
                    "incident_id": values["id"],
                    "seq": 1,
                    "event": "create",
                    "from_state": None,
                    "to_state": values["state"],
                    "from_tier": values["tier"],
                    "to_tier": values["tier"],
                    "at": at,
                    "actor": actor,
                    "reason": reason,
                },
            )
            row = get_incident(conn, values["id"])
        assert row is not None
        return row

    def claim_key(self, scope: str, key: str, request_hash: str, *, at: float) -> StoredResponse | None:
        """Claim an Idempotency-Key for a new request (None), or return what is stored under it."""
        return _claim_key(self.engine, scope, key, request_hash, at)

    def complete_key(self, scope: str, key: str, status: int, response: Any) -> None:
        """Store the response a claimed key's request got."""
        with self.engine.begin() as conn:
            complete_key(conn, scope, key, status, response)

    def release_key(self, scope: str, key: str) -> None:
        """Forget a claimed key (its request failed on our side, so a retry must run again)."""
        with self.engine.begin() as conn:
            release_key(conn, scope, key)

    def purge_keys(self, *, before: float) -> int:
        """Delete Idempotency-Key records created before `before`."""
        with self.engine.begin() as conn:
            return purge_keys(conn, before=before)
