"""Attendance: check-ins (a device says its unit is on its grid; stored with the verdict and every reason)
and roll calls (a supervisor calls the roll of a scope; one row a unit with how it ended)."""

from __future__ import annotations

import sqlalchemy as sa

from schemas.tables.columns import instant, serial_id, unit_ref
from schemas.tables.registry import one_of

CHECKIN_SOURCES = ("device", "auto")  # the device sent it (MQTT or HTTP), or its fix entered the grid
ROLLCALL_STATES = ("open", "closed")
ROLLCALL_RESULTS = ("present", "present_out_of_grid", "late", "answered_without_fix", "silent")


def _text(name: str, length: int, *, nullable: bool = True, primary_key: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(length), nullable=nullable, primary_key=primary_key)


def define(md: sa.MetaData) -> None:
    """Add `checkins`, `rollcalls` and `rollcall_units` to `md`."""
    sa.Table(
        "checkins",
        md,
        serial_id(),
        _text("device_id", 128, nullable=False),
        _text("checkin_id", 200, nullable=False),  # the device's own id: a retry finds this row
        unit_ref(),
        _text("grid_id", 64),  # the grid assigned at the time (none: refused for that reason)
        sa.Column("assignment_id", sa.Integer),
        instant("at", nullable=False),
        instant("fix_ts"),
        *(sa.Column(name, sa.Float) for name in ("lon", "lat", "accuracy_m", "distance_m")),
        sa.Column("accepted", sa.Boolean, nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
        _text("source", 8, nullable=False),
        sa.UniqueConstraint("device_id", "checkin_id", name="uq_checkins_device_checkin"),
        one_of("checkins", "source", CHECKIN_SOURCES),
        sa.Index("ix_checkins_unit", "unit_id", "at"),
        sa.Index("ix_checkins_grid", "grid_id", "at"),
    )
    sa.Table(
        "rollcalls",
        md,
        _text("id", 36, nullable=False, primary_key=True),
        instant("started_at", nullable=False),
        instant("deadline_at", nullable=False),
        sa.Column("scope", sa.JSON, nullable=False),  # {"kind": "on_duty" | "grid" | "units", ...}
        sa.Column("started_by", sa.Text, nullable=False),
        sa.Column("state", sa.String(8), nullable=False, server_default="open"),
        instant("closed_at"),
        one_of("rollcalls", "state", ROLLCALL_STATES),
        sa.Index("ix_rollcalls_started", "started_at"),
    )
    sa.Table(
        "rollcall_units",
        md,
        sa.Column("rollcall_id", sa.String(36), sa.ForeignKey("rollcalls.id"), primary_key=True),
        unit_ref(primary_key=True),
        _text("grid_id", 64),  # assigned when the roll call started
        sa.Column("devices", sa.JSON, nullable=False),  # the devices it was sent to
        instant("answered_at"),
        _text("answered_by", 128),
        instant("fix_ts"),
        sa.Column("lon", sa.Float),
        sa.Column("lat", sa.Float),
        sa.Column("inside", sa.Boolean),
        instant("pinged_again_at"),
        _text("result", 24),  # set when the unit's answer is judged, or at the end: silent
        one_of("rollcall_units", "result", ROLLCALL_RESULTS),
    )
