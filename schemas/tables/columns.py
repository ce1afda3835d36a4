"""Columns many tables declare alike: a serial id, a reference to a unit, an instant."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, ForeignKey, Integer, String


def serial_id() -> Column[int]:
    """`id`, an integer primary key the database numbers."""
    return Column("id", Integer, primary_key=True, autoincrement=True)


def unit_ref(*, primary_key: bool = False) -> Column[str]:
    """`unit_id`, the unit a row is about (never NULL)."""
    return Column("unit_id", String(64), ForeignKey("units.id"), nullable=False, primary_key=primary_key)


def instant(name: str, *, required: bool = False) -> Column[object]:
    """A timezone-aware instant (NULL allowed unless `required`)."""
    return Column(name, DateTime(timezone=True), nullable=not required)
