"""Units (officers, auxiliaries, vehicles), devices, and which device belongs to which unit when."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
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

from schemas.vocabulary import DEVICE_KINDS, UNIT_KINDS, UNIT_STATUSES

__all__ = ["DEVICE_KINDS", "UNIT_KINDS", "UNIT_STATUSES", "define", "one_of"]


def one_of(table: str, column: str, values: tuple[str, ...]) -> CheckConstraint:
    """A CHECK that `column` holds one of `values` (portable: PostgreSQL and SQLite)."""
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=f"ck_{table}_{column}")


def define(md: MetaData) -> None:
    """Add the registry tables to `md`."""
    Table(
        "units",
        md,
        Column("id", String(64), primary_key=True),
        Column("name", Text, nullable=False),
        Column("kind", String(16), nullable=False),
        Column("skills", JSON, nullable=False, default=list),
        Column("status", String(16), nullable=False, server_default="off_duty"),
        Column("status_changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("enabled", Boolean, nullable=False, server_default="1"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        one_of("units", "kind", UNIT_KINDS),
        one_of("units", "status", UNIT_STATUSES),
    )
    Table(
        "devices",
        md,
        Column("id", String(128), primary_key=True),
        Column("kind", String(16), nullable=False),
        # scrypt hash of the device's MQTT/HTTP secret; NULL until credentials are issued.
        Column("credentials_hash", Text),
        Column("enabled", Boolean, nullable=False, server_default="1"),
        # Higher wins ties when fusing a unit's position from several devices.
        Column("priority", Integer, nullable=False, server_default="0"),
        Column("registered_by", String(16), nullable=False, server_default="api"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        one_of("devices", "kind", DEVICE_KINDS),
    )
    Table(
        "device_bindings",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("device_id", String(128), ForeignKey("devices.id"), nullable=False),
        Column("unit_id", String(64), ForeignKey("units.id"), nullable=False),
        Column("valid_from", DateTime(timezone=True), nullable=False),
        Column("valid_to", DateTime(timezone=True)),  # NULL: open-ended
        Index("ix_device_bindings_device", "device_id", "valid_from"),
        Index("ix_device_bindings_unit", "unit_id", "valid_from"),
    )
