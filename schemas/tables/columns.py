"""Column shapes every table uses alike: an instant (timezone-aware), a serial id, a text id, a name, a
vocabulary word, the time a row was made, a reference to a unit."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

# SQLite autoincrements an INTEGER PRIMARY KEY only; PostgreSQL gets a 64-bit one.
BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def instant(name: str, nullable: bool = True, **kwargs: Any) -> sa.Column[Any]:
    """A timezone-aware instant (UTC in the database)."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, **kwargs)


def created_at(name: str = "created_at") -> sa.Column[Any]:
    """When the row was made, set by the database."""
    return instant(name, nullable=False, server_default=sa.func.now())


def serial_id(kind: Any = BIG_ID) -> sa.Column[Any]:
    """`id`: an autoincremented primary key, 64-bit unless `kind` says otherwise."""
    return sa.Column("id", kind, primary_key=True, autoincrement=True)


def unit_ref(*, primary_key: bool = False) -> sa.Column[Any]:
    """`unit_id`, the unit a row is about (never NULL)."""
    return sa.Column(
        "unit_id", sa.String(64), sa.ForeignKey("units.id"), nullable=False, primary_key=primary_key
    )


def text_id() -> sa.Column[Any]:
    """`id`: a primary key chosen by people (a unit's, a device's, a geofence's), at most 64 characters."""
    return sa.Column("id", sa.String(64), primary_key=True)


def name() -> sa.Column[Any]:
    """`name`: what people call the row (never NULL)."""
    return sa.Column("name", sa.Text, nullable=False)


def word(column: str, **kwargs: Any) -> sa.Column[Any]:
    """A word of a vocabulary (a kind, a role, a state), never NULL; a CHECK (`one_of`) lists the words."""
    return sa.Column(column, sa.String(16), nullable=False, **kwargs)
