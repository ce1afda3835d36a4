"""Incidents and the dispatch loop: the incident, its offers, its units, its audit trail, the snapshots of
what the dispatcher saw, feedback, evaluation, and Idempotency-Key records. Owned by dispatch/incidents.

Times are timezone-aware UTC (SQLite stores them as naive UTC text; the queries re-attach UTC).
"""

from __future__ import annotations

import sqlalchemy as sa
from geoalchemy2 import Geometry

from schemas.tables.columns import instant, serial_id, word
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
    "merged",  # a duplicate report folded into another incident (`merged_into`), which keeps its call
)
PRIORITIES = ("P1", "P2", "P3", "P4")
# "import": a historic report loaded by `outpost incidents import` (closed on arrival; never dispatched).
SOURCES = ("dispatcher", "call", "grid_report", "device_alarm", "import")
OFFER_STATES = ("pending", "accepted", "declined", "timed_out", "withdrawn")
UNIT_ENGAGEMENT_STATES = ("assigned", "en_route", "on_scene", "released")

_Id = sa.String(36)  # uuid4 text


def _incident_id(primary_key: bool = False) -> sa.Column[object]:
    """The column naming the incident a row belongs to."""
    return sa.Column(
        "incident_id", _Id, sa.ForeignKey("incidents.id"), nullable=False, primary_key=primary_key
    )


def _numbered(table: str) -> tuple[sa.Column[object], sa.UniqueConstraint]:
    """`n`: 1, 2, 3, … within the incident, in the order of insertion (rows can share an instant)."""
    return sa.Column("n", sa.Integer, nullable=False), sa.UniqueConstraint(
        "incident_id", "n", name=f"uq_{table}_n"
    )


def define(md: sa.MetaData, flavour: Flavour) -> None:
    """Add the incident tables to `md`."""
    _incidents(md, flavour)
    _snapshots(md)
    _offers(md)
    _units(md)
    _transitions(md)
    _review(md)
    _idempotency(md)


def _incidents(md: sa.MetaData, flavour: Flavour) -> None:
    spatial: list[sa.Column[object]] = []
    if flavour.spatial:
        # Generated from lon/lat (the one truth on both dialects), indexed for map and area queries.
        spatial.append(
            sa.Column(
                "geom",
                Geometry("POINT", srid=4326, spatial_index=True),
                sa.Computed("ST_SetSRID(ST_MakePoint(lon, lat), 4326)", persisted=True),
            )
        )
    sa.Table(
        "incidents",
        md,
        sa.Column("id", _Id, primary_key=True),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("priority", sa.String(2), nullable=False),
        sa.Column("category", sa.Text, nullable=False),
        word("source"),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("reporter", sa.Text, nullable=False, server_default=""),
        sa.Column("address", sa.Text),
        sa.Column("lon", sa.Float(53), nullable=False),
        sa.Column("lat", sa.Float(53), nullable=False),
        *spatial,
        # The H3 cell of (lon, lat) at geo.hexes.STORED_RES (15), set by store when the row is inserted: heat
        # maps GROUP BY its parent at any resolution, a bit mask away (NULL only before migration step 6).
        sa.Column("h3_cell", sa.BigInteger),
        # Escalation: 0 community_grid, 1 police_grid, 2 station, 3 command_centre.
        sa.Column("tier", sa.SmallInteger, nullable=False, server_default="0"),
        instant("tier_entered_at", nullable=False),
        instant("sla_due_at"),  # NULL once a unit is on scene (or the incident ended)
        # The state machine's counters, kept in the row so one conditional UPDATE guards them with the state.
        sa.Column("pending_offers", sa.Integer, nullable=False, server_default="0"),
        sa.Column("engaged_units", sa.Integer, nullable=False, server_default="0"),
        # Optimistic concurrency: every transition is UPDATE … WHERE version = :seen.
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("transferred_to", sa.Text),
        # Where it happened, as the grids valid when it was reported (step 9; NULL outside every grid). The
        # tiers' owners are these grids' holders: tier 0 the community grid's, tier 1 the police grid's.
        sa.Column("community_grid_id", sa.String(64)),
        sa.Column("police_grid_id", sa.String(64)),
        # A duplicate report merged into another incident: the survivor (step 9).
        sa.Column("merged_into", _Id),
        # Milestones (NFPA/NFORS intervals are computed from these).
        instant("reported_at", nullable=False),
        instant("dispatched_at"),
        instant("en_route_at"),
        instant("on_scene_at"),
        instant("resolved_at"),
        instant("ended_at"),  # closed, cancelled, transferred or merged
        one_of("incidents", "state", INCIDENT_STATES),
        one_of("incidents", "priority", PRIORITIES),
        one_of("incidents", "source", SOURCES),
        sa.Index("ix_incidents_state", "state", "reported_at"),
        sa.Index("ix_incidents_reported_at", "reported_at"),
        sa.Index("ix_incidents_merged_into", "merged_into"),
    )


def _snapshots(md: sa.MetaData) -> None:
    sa.Table(
        "dispatch_snapshots",
        md,
        sa.Column("id", _Id, primary_key=True),
        _incident_id(),
        instant("at", nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        *_numbered("dispatch_snapshots"),
        # manual_offer, auto_offer, reoffer_after_timeout, …
        sa.Column("decision", sa.String(32), nullable=False),
        word("slot"),  # the unit kind this decision was filling
        sa.Column("chosen_unit_id", sa.String(64)),  # NULL: nobody suitable was available
        # What the dispatcher saw: the query, every candidate (unit id, lon, lat, fix age, status, distance)
        # and the counts of excluded units by reason.
        sa.Column("query", sa.JSON, nullable=False),
        sa.Column("candidates", sa.JSON, nullable=False),
        sa.Column("excluded", sa.JSON, nullable=False),
    )


def _offers(md: sa.MetaData) -> None:
    sa.Table(
        "incident_offers",
        md,
        sa.Column("id", _Id, primary_key=True),
        _incident_id(),
        *_numbered("incident_offers"),
        sa.Column("unit_id", sa.String(64), sa.ForeignKey("units.id"), nullable=False),
        word("slot"),
        word("state"),
        sa.Column("automatic", sa.Boolean, nullable=False),
        sa.Column("snapshot_id", _Id, sa.ForeignKey("dispatch_snapshots.id")),
        sa.Column("offered_by", sa.Text, nullable=False),
        instant("offered_at", nullable=False),
        instant("expires_at", nullable=False),
        sa.Column("answered_by", sa.Text),
        instant("answered_at"),
        one_of("incident_offers", "state", OFFER_STATES),
        # A unit holds at most one pending offer anywhere: the database's own guard behind the fleet's
        # compare-and-set of the unit's status.
        _unique_where("ux_incident_offers_pending_unit", "unit_id", "state = 'pending'"),
    )


def _unique_where(name: str, column: str, where: str) -> sa.Index:
    """A partial unique index, the same on PostgreSQL and SQLite."""
    return sa.Index(name, column, unique=True, postgresql_where=sa.text(where), sqlite_where=sa.text(where))


def _units(md: sa.MetaData) -> None:
    sa.Table(
        "incident_units",
        md,
        serial_id(),
        _incident_id(),
        sa.Column("unit_id", sa.String(64), sa.ForeignKey("units.id"), nullable=False),
        sa.Column("offer_id", _Id, sa.ForeignKey("incident_offers.id"), nullable=False),
        word("slot"),
        word("state"),
        instant("assigned_at", nullable=False),
        instant("en_route_at"),
        instant("on_scene_at"),
        instant("released_at"),
        sa.Column("release_reason", sa.Text),
        # Where the unit was when it accepted: departure from here is detected as en route.
        sa.Column("accepted_lon", sa.Float(53)),
        sa.Column("accepted_lat", sa.Float(53)),
        one_of("incident_units", "state", UNIT_ENGAGEMENT_STATES),
        sa.UniqueConstraint("incident_id", "unit_id", name="uq_incident_units_incident_unit"),
        # A unit is engaged in at most one incident at a time.
        _unique_where("ux_incident_units_engaged_unit", "unit_id", "released_at IS NULL"),
    )


def _transitions(md: sa.MetaData) -> None:
    sa.Table(
        "incident_transitions",
        md,
        serial_id(),
        _incident_id(),
        sa.Column("seq", sa.Integer, nullable=False),  # the incident's version after this step: 1, 2, 3, …
        sa.Column("event", sa.String(24), nullable=False),
        sa.Column("from_state", sa.String(24)),  # NULL for the creation
        sa.Column("to_state", sa.String(24), nullable=False),
        sa.Column("from_tier", sa.SmallInteger, nullable=False),
        sa.Column("to_tier", sa.SmallInteger, nullable=False),
        instant("at", nullable=False),
        sa.Column(
            "actor", sa.Text, nullable=False
        ),  # "token:3:alice", "device:cam-17", "system:offer_timeout"
        sa.Column("reason", sa.Text),
        sa.Column("unit_id", sa.String(64)),
        sa.Column("offer_id", _Id),
        sa.UniqueConstraint("incident_id", "seq", name="uq_incident_transitions_seq"),
    )


def _review(md: sa.MetaData) -> None:
    sa.Table(
        "incident_feedback",
        md,
        _incident_id(primary_key=True),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
        sa.Column("officer", sa.Text, nullable=False),
        sa.Column("recorded_by", sa.Text, nullable=False),
        instant("at", nullable=False),
    )
    sa.Table(
        "incident_evaluations",
        md,
        _incident_id(primary_key=True),
        sa.Column("score", sa.SmallInteger, nullable=False),
        sa.Column("evaluator", sa.Text, nullable=False),
        sa.Column("comments", sa.Text, nullable=False, server_default=""),
        sa.Column("recorded_by", sa.Text, nullable=False),
        instant("at", nullable=False),
    )


def _idempotency(md: sa.MetaData) -> None:
    sa.Table(
        "idempotency_keys",
        md,
        sa.Column("scope", sa.Text, nullable=False),  # the caller: keys of different callers never collide
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),  # sha256 of method, path and body
        sa.Column("status", sa.SmallInteger),  # NULL while the first request is still running
        sa.Column("response", sa.JSON),
        instant("created_at", nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_idempotency_keys"),
        sa.Index("ix_idempotency_keys_created_at", "created_at"),
    )
