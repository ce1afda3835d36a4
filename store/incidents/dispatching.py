"""Offers of an incident to units, and the units engaged in it (one offer or incident per unit at a time)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, and_, exists, insert, select, sql, update
from sqlalchemy.exc import IntegrityError

from store.incidents.rows import (
    INCIDENTS,
    OFFERS,
    UNITS,
    EngagementRow,
    OfferRow,
    UnitEngagedError,
    build,
    db_values,
    next_n,
    to_datetime,
)


def insert_offer(conn: Connection, values: Mapping[str, Any]) -> None:
    """Insert a pending offer; UnitEngagedError when the unit already holds a pending offer.

    The error leaves the transaction unusable (PostgreSQL): let it propagate so the whole step rolls back.
    """
    n = next_n(conn, OFFERS, values["incident_id"])
    try:
        conn.execute(insert(OFFERS).values(db_values({**values, "n": n})))
    except IntegrityError as exc:
        raise UnitEngagedError(str(values.get("unit_id"))) from exc


def get_offer(conn: Connection, offer_id: str) -> OfferRow | None:
    """The offer, or None."""
    row = conn.execute(select(OFFERS).where(OFFERS.c.id == offer_id)).mappings().first()
    return None if row is None else build(OfferRow, row)


def offers(conn: Connection, incident_id: str) -> list[OfferRow]:
    """The incident's offers, oldest first."""
    query = select(OFFERS).where(OFFERS.c.incident_id == incident_id).order_by(OFFERS.c.n)
    return [build(OfferRow, r) for r in conn.execute(query).mappings()]


def pending_offers(conn: Connection) -> list[OfferRow]:
    """Every pending offer (to re-arm the timeouts after a restart)."""
    query = select(OFFERS).where(OFFERS.c.state == "pending").order_by(OFFERS.c.expires_at)
    return [build(OfferRow, r) for r in conn.execute(query).mappings()]


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
        conn.execute(insert(UNITS).values(db_values(values)))
    except IntegrityError as exc:
        raise UnitEngagedError(str(values.get("unit_id"))) from exc


def engagements(conn: Connection, incident_id: str) -> list[EngagementRow]:
    """The units that accepted the incident, in the order they accepted."""
    query = select(UNITS).where(UNITS.c.incident_id == incident_id).order_by(UNITS.c.assigned_at, UNITS.c.id)
    return [build(EngagementRow, r) for r in conn.execute(query).mappings()]


def active_engagements(conn: Connection) -> list[tuple[EngagementRow, float, float]]:
    """Every unreleased engagement with its incident's lon, lat (arrival detection after a restart)."""
    query = (
        select(UNITS, INCIDENTS.c.lon, INCIDENTS.c.lat)
        .join(INCIDENTS, INCIDENTS.c.id == UNITS.c.incident_id)
        .where(UNITS.c.released_at.is_(None))
    )
    return [(build(EngagementRow, r), r["lon"], r["lat"]) for r in conn.execute(query).mappings()]


def update_engagement(conn: Connection, incident_id: str, unit_id: str, changes: Mapping[str, Any]) -> None:
    """Record a unit's step (state and its time) within an incident."""
    conn.execute(
        update(UNITS)
        .where(and_(UNITS.c.incident_id == incident_id, UNITS.c.unit_id == unit_id))
        .values(**db_values(changes))
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
