"""Duty: shifts, and which unit holds which patrol grid when (assignments, with their history).

An assignment covers the half-open interval [starts_at, ends_at). Ending one early (a dispatcher's DELETE,
or another assignment replacing it) never rewrites the plan: it sets `ended_at` (clamped to the start, so a
future assignment ended before it began covers nothing), who did it, and which assignment replaced it. The
interval an assignment holds its grid is therefore [starts_at, coalesce(ended_at, ends_at)).
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
)


def define(md: MetaData) -> None:
    """Add `shifts` and `assignments` to `md`."""
    Table(
        "shifts",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", Text, nullable=False),
        Column("starts_at", DateTime(timezone=True), nullable=False),
        Column("ends_at", DateTime(timezone=True), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        CheckConstraint("ends_at > starts_at", name="ck_shifts_interval"),
        Index("ix_shifts_starts_at", "starts_at"),
    )
    Table(
        "assignments",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("unit_id", String(64), ForeignKey("units.id"), nullable=False),
        # Not a foreign key: grids are versioned by (id, version) and an assignment names the grid, whose
        # boundary may change while it is held (see schemas.tables.grids).
        Column("grid_id", String(64), nullable=False),
        Column("shift_id", Integer, ForeignKey("shifts.id")),
        Column("starts_at", DateTime(timezone=True), nullable=False),
        Column("ends_at", DateTime(timezone=True), nullable=False),
        Column("created_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # Set when the assignment ended before `ends_at`: by whom, and by which assignment if replaced.
        Column("ended_at", DateTime(timezone=True)),
        Column("ended_by", Text),
        Column("replaced_by", Integer, ForeignKey("assignments.id")),
        CheckConstraint("ends_at > starts_at", name="ck_assignments_interval"),
        CheckConstraint(
            "ended_at IS NULL OR (ended_at >= starts_at AND ended_at <= ends_at)", name="ck_assignments_ended"
        ),
        Index("ix_assignments_grid", "grid_id", "starts_at"),
        Index("ix_assignments_unit", "unit_id", "starts_at"),
    )
