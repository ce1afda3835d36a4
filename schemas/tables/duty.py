"""Duty: shifts, and which unit holds which patrol grid when (assignments, with their history).

An assignment covers the half-open interval [starts_at, ends_at). Ending one early (a dispatcher's DELETE,
or another assignment replacing it) never rewrites the plan: it sets `ended_at` (clamped to the start, so a
future assignment ended before it began covers nothing), who did it, and which assignment replaced it. The
interval an assignment holds its grid is therefore [starts_at, coalesce(ended_at, ends_at)).
"""

from __future__ import annotations

import sqlalchemy as sa

from schemas.tables.columns import created_at, instant, name, serial_id


def define(md: sa.MetaData) -> None:
    """Add `shifts` and `assignments` to `md`."""
    sa.Table(
        "shifts",
        md,
        serial_id(sa.Integer),
        name(),
        instant("starts_at", nullable=False),
        instant("ends_at", nullable=False),
        created_at(),
        sa.CheckConstraint("ends_at > starts_at", name="ck_shifts_interval"),
        sa.Index("ix_shifts_starts_at", "starts_at"),
    )
    sa.Table(
        "assignments",
        md,
        serial_id(sa.Integer),
        sa.Column("unit_id", sa.String(64), sa.ForeignKey("units.id"), nullable=False),
        # Not a foreign key: grids are versioned by (id, version) and an assignment names the grid, whose
        # boundary may change while it is held (see schemas.tables.grids).
        sa.Column("grid_id", sa.String(64), nullable=False),
        sa.Column("shift_id", sa.Integer, sa.ForeignKey("shifts.id")),
        instant("starts_at", nullable=False),
        instant("ends_at", nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        created_at(),
        # Set when the assignment ended before `ends_at`: by whom, and by which assignment if replaced.
        instant("ended_at"),
        sa.Column("ended_by", sa.Text),
        sa.Column("replaced_by", sa.Integer, sa.ForeignKey("assignments.id")),
        sa.CheckConstraint("ends_at > starts_at", name="ck_assignments_interval"),
        sa.CheckConstraint(
            "ended_at IS NULL OR (ended_at >= starts_at AND ended_at <= ends_at)", name="ck_assignments_ended"
        ),
        sa.Index("ix_assignments_grid", "grid_id", "starts_at"),
        sa.Index("ix_assignments_unit", "unit_id", "starts_at"),
    )
