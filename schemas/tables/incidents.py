"""Incidents and the dispatch loop: the incident, its offers, its units, its audit trail, the snapshots of
what the dispatcher saw, feedback, evaluation, and Idempotency-Key records. Owned by dispatch/incidents.

Times are timezone-aware UTC (SQLite stores them as naive UTC text; the queries re-attach UTC).
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from schemas.tables.flavour import Flavour
from schemas.tables.registry import one_of

INCIDENT_STATES = (
    "new",
    "offered",
    "dispatched",
    "en_route",
    "on_scene",
    "resolved",
    "feedback_recorded",
    "evaluated",
    "closed",
    "cancelled",
    "escalated",
    "transferred",
)
PRIORITIES = ("P1", "P2", "P3", "P4")
# "import": a historic report loaded by `outpost incidents import` (closed on arrival; never dispatched).
SOURCES = ("dispatcher", "call", "grid_report", "device_alarm", "import")
OFFER_STATES = ("pending", "accepted", "declined", "timed_out", "withdrawn")
UNIT_ENGAGEMENT_STATES = ("assigned", "en_route", "on_scene", "released")

_Id = String(36)  # uuid4 text
_BigId = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


def _at(name: str, nullable: bool = True) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


def _incident_id(primary_key: bool = False) -> Column[object]:
    """The column naming the incident a row belongs to."""
    return Column("incident_id", _Id, ForeignKey("incidents.id"), nullable=False, primary_key=primary_key)


def _numbered(table: str) -> tuple[Column[object], UniqueConstraint]:
    """`n`: 1, 2, 3, … within the incident, in the order of insertion (rows can share an instant)."""
    return Column("n", Integer, nullable=False), UniqueConstraint("incident_id", "n", name=f"uq_{table}_n")


def define(md: MetaData, flavour: Flavour) -> None:
    """Add the incident tables to `md`."""
    _incidents(md, flavour)
    _snapshots(md)
    _offers(md)
    _units(md)
    _transitions(md)
    _review(md)
    _idempotency(md)


def _incidents(md: MetaData, flavour: Flavour) -> None:
    spatial: list[Column[object]] = []
    if flavour.spatial:
        # Generated from lon/lat (the one truth on both dialects), indexed for map and area queries.
        spatial.append(
            Column(
                "geom",
                Geometry("POINT", srid=4326, spatial_index=True),
                Computed("ST_SetSRID(ST_MakePoint(lon, lat), 4326)", persisted=True),
            )
        )
    Table(
        "incidents",
        md,
        Column("id", _Id, primary_key=True),
        Column("state", String(24), nullable=False),
        Column("priority", String(2), nullable=False),
        Column("category", Text, nullable=False),
        Column("source", String(16), nullable=False),
        Column("description", Text, nullable=False, server_default=""),
        Column("reporter", Text, nullable=False, server_default=""),
        Column("address", Text),
        Column("lon", Float(53), nullable=False),
        Column("lat", Float(53), nullable=False),
        *spatial,
        # The H3 cell of (lon, lat) at geo.hexes.STORED_RES (15), set by store when the row is inserted: heat
        # maps GROUP BY its parent at any resolution, a bit mask away (NULL only before migration step 6).
        Column("h3_cell", BigInteger),
        # Escalation: 0 community_grid, 1 police_grid, 2 station, 3 command_centre.
        Column("tier", SmallInteger, nullable=False, server_default="0"),
        _at("tier_entered_at", nullable=False),
        _at("sla_due_at"),  # NULL once a unit is on scene (or the incident ended)
        # The state machine's counters, kept in the row so one conditional UPDATE guards them with the state.
        Column("pending_offers", Integer, nullable=False, server_default="0"),
        Column("engaged_units", Integer, nullable=False, server_default="0"),
        # Optimistic concurrency: every transition is UPDATE … WHERE version = :seen.
        Column("version", Integer, nullable=False, server_default="0"),
        Column("created_by", Text, nullable=False),
        Column("transferred_to", Text),
        # Milestones (NFPA/NFORS intervals are computed from these).
        _at("reported_at", nullable=False),
        _at("dispatched_at"),
        _at("en_route_at"),
        _at("on_scene_at"),
        _at("resolved_at"),
        _at("ended_at"),  # closed, cancelled or transferred
        one_of("incidents", "state", INCIDENT_STATES),
        one_of("incidents", "priority", PRIORITIES),
        one_of("incidents", "source", SOURCES),
        Index("ix_incidents_state", "state", "reported_at"),
        Index("ix_incidents_reported_at", "reported_at"),
    )


def _snapshots(md: MetaData) -> None:
    Table(
        "dispatch_snapshots",
        md,
        Column("id", _Id, primary_key=True),
        _incident_id(),
        _at("at", nullable=False),
        Column("actor", Text, nullable=False),
        *_numbered("dispatch_snapshots"),
        Column("decision", String(32), nullable=False),  # manual_offer, auto_offer, reoffer_after_timeout, …
        Column("slot", String(16), nullable=False),  # the unit kind this decision was filling
        Column("chosen_unit_id", String(64)),  # NULL: nobody suitable was available
        # What the dispatcher saw: the query, every candidate (unit id, lon, lat, fix age, status, distance)
        # and the counts of excluded units by reason.
        Column("query", JSON, nullable=False),
        Column("candidates", JSON, nullable=False),
        Column("excluded", JSON, nullable=False),
    )


def _offers(md: MetaData) -> None:
    Table(
        "incident_offers",
        md,
        Column("id", _Id, primary_key=True),
        _incident_id(),
        *_numbered("incident_offers"),
        Column("unit_id", String(64), ForeignKey("units.id"), nullable=False),
        Column("slot", String(16), nullable=False),
        Column("state", String(16), nullable=False),
        Column("automatic", Boolean, nullable=False),
        Column("snapshot_id", _Id, ForeignKey("dispatch_snapshots.id")),
        Column("offered_by", Text, nullable=False),
        _at("offered_at", nullable=False),
        _at("expires_at", nullable=False),
        Column("answered_by", Text),
        _at("answered_at"),
        one_of("incident_offers", "state", OFFER_STATES),
        # A unit holds at most one pending offer anywhere: the database's own guard behind the fleet's
        # compare-and-set of the unit's status.
        _unique_where("ux_incident_offers_pending_unit", "unit_id", "state = 'pending'"),
    )


def _unique_where(name: str, column: str, where: str) -> Index:
    """A partial unique index, the same on PostgreSQL and SQLite."""
    return Index(name, column, unique=True, postgresql_where=text(where), sqlite_where=text(where))


def _units(md: MetaData) -> None:
    Table(
        "incident_units",
        md,
        Column("id", _BigId, primary_key=True, autoincrement=True),
        _incident_id(),
        Column("unit_id", String(64), ForeignKey("units.id"), nullable=False),
        Column("offer_id", _Id, ForeignKey("incident_offers.id"), nullable=False),
        Column("slot", String(16), nullable=False),
        Column("state", String(16), nullable=False),
        _at("assigned_at", nullable=False),
        _at("en_route_at"),
        _at("on_scene_at"),
        _at("released_at"),
        Column("release_reason", Text),
        # Where the unit was when it accepted: departure from here is detected as en route.
        Column("accepted_lon", Float(53)),
        Column("accepted_lat", Float(53)),
        one_of("incident_units", "state", UNIT_ENGAGEMENT_STATES),
        UniqueConstraint("incident_id", "unit_id", name="uq_incident_units_incident_unit"),
        # A unit is engaged in at most one incident at a time.
        _unique_where("ux_incident_units_engaged_unit", "unit_id", "released_at IS NULL"),
    )


def _transitions(md: MetaData) -> None:
    Table(
        "incident_transitions",
        md,
        Column("id", _BigId, primary_key=True, autoincrement=True),
        _incident_id(),
        Column("seq", Integer, nullable=False),  # the incident's version after this step: 1, 2, 3, …
        Column("event", String(24), nullable=False),
        Column("from_state", String(24)),  # NULL for the creation
        Column("to_state", String(24), nullable=False),
        Column("from_tier", SmallInteger, nullable=False),
        Column("to_tier", SmallInteger, nullable=False),
        _at("at", nullable=False),
        Column("actor", Text, nullable=False),  # "token:3:alice", "device:cam-17", "system:offer_timeout"
        Column("reason", Text),
        Column("unit_id", String(64)),
        Column("offer_id", _Id),
        UniqueConstraint("incident_id", "seq", name="uq_incident_transitions_seq"),
    )


def _review(md: MetaData) -> None:
    Table(
        "incident_feedback",
        md,
        _incident_id(primary_key=True),
        Column("outcome", Text, nullable=False),
        Column("notes", Text, nullable=False, server_default=""),
        Column("officer", Text, nullable=False),
        Column("recorded_by", Text, nullable=False),
        _at("at", nullable=False),
    )
    Table(
        "incident_evaluations",
        md,
        _incident_id(primary_key=True),
        Column("score", SmallInteger, nullable=False),
        Column("evaluator", Text, nullable=False),
        Column("comments", Text, nullable=False, server_default=""),
        Column("recorded_by", Text, nullable=False),
        _at("at", nullable=False),
    )


def _idempotency(md: MetaData) -> None:
    Table(
        "idempotency_keys",
        md,
        Column("scope", Text, nullable=False),  # the caller: keys of different callers never collide
        Column("key", String(255), nullable=False),
        Column("request_hash", String(64), nullable=False),  # sha256 of method, path and body
        Column("status", SmallInteger),  # NULL while the first request is still running
        Column("response", JSON),
        _at("created_at", nullable=False),
        PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )
