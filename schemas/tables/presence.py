"""Patrol presence, materialized: on-duty seconds of each unit in each H3 cell (at the patrol resolution) per
hour, computed from the fixes and the status history (`store.presence`), and which hours are done.

Derived data, never the truth: any hour can be computed again from `fixes` and `status_history`."""

from __future__ import annotations

import sqlalchemy as sa

from schemas.tables.columns import instant


def define(md: sa.MetaData) -> None:
    """Add `patrol_presence` and `patrol_presence_hours` to `md`."""
    sa.Table(
        "patrol_presence",
        md,
        instant("hour", nullable=False),  # the hour's start, UTC
        sa.Column("unit_id", sa.String(64), nullable=False),
        sa.Column("cell", sa.BigInteger, nullable=False),  # H3, int64, at the patrol resolution
        sa.Column("seconds", sa.Float(53), nullable=False),
        sa.PrimaryKeyConstraint("hour", "unit_id", "cell", name="pk_patrol_presence"),
        sa.Index("ix_patrol_presence_unit", "unit_id", "hour"),  # a unit's presence (`unit=`)
    )
    sa.Table(
        "patrol_presence_hours",
        md,
        instant("hour", nullable=False, primary_key=True),
        sa.Column("res", sa.Integer, nullable=False),  # the patrol resolution it was computed at
        instant("refreshed_at", nullable=False),
    )
