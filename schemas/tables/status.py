"""Every change of a unit's status, from the API, the incident loop or the unit's own device: who, from,
to, when and why (the monthly reports read it)."""

from __future__ import annotations

from sqlalchemy import Column, Index, MetaData, String, Table, Text

from schemas.tables.columns import instant, serial_id, unit_ref


def define(md: MetaData) -> None:
    """Add `status_history` to `md`."""
    Table(
        "status_history",
        md,
        serial_id(),
        unit_ref(),
        Column("from_status", String(16), nullable=False),
        Column("to_status", String(16), nullable=False),
        instant("at", nullable=False),
        Column("actor", Text, nullable=False),  # token:…, device:…, or the incident loop's actor
        Column("why", Text, nullable=False, server_default=""),
        Index("ix_status_history_unit", "unit_id", "at"),
    )
