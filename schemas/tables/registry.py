"""Units (officers, auxiliaries, vehicles), devices, and which device belongs to which unit when."""

from __future__ import annotations

import sqlalchemy as sa

from schemas.tables.columns import created_at, instant, name, serial_id, text_id, word
from schemas.vocabulary import DEVICE_KINDS, UNIT_KINDS, UNIT_STATUSES

__all__ = ["DEVICE_KINDS", "UNIT_KINDS", "UNIT_STATUSES", "define", "one_of"]


def one_of(table: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    """A CHECK that `column` holds one of `values` (portable: PostgreSQL and SQLite)."""
    quoted = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({quoted})", name=f"ck_{table}_{column}")


def define(md: sa.MetaData) -> None:
    """Add the registry tables to `md`."""
    sa.Table(
        "units",
        md,
        text_id(),
        name(),
        word("kind"),
        sa.Column("skills", sa.JSON, nullable=False, default=list),
        word("status", server_default="off_duty"),
        sa.Column(
            "status_changed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default="1"),
        created_at(),
        one_of("units", "kind", UNIT_KINDS),
        one_of("units", "status", UNIT_STATUSES),
    )
    sa.Table(
        "devices",
        md,
        sa.Column("id", sa.String(128), primary_key=True),
        word("kind"),
        # scrypt hash of the device's MQTT/HTTP secret; NULL until credentials are issued.
        sa.Column("credentials_hash", sa.Text),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default="1"),
        # Higher wins ties when fusing a unit's position from several devices.
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        word("registered_by", server_default="api"),
        created_at(),
        one_of("devices", "kind", DEVICE_KINDS),
    )
    sa.Table(
        "device_bindings",
        md,
        serial_id(sa.Integer),
        sa.Column("device_id", sa.String(128), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("unit_id", sa.String(64), sa.ForeignKey("units.id"), nullable=False),
        instant("valid_from", nullable=False),
        instant("valid_to"),  # NULL: open-ended
        sa.Index("ix_device_bindings_device", "device_id", "valid_from"),
        sa.Index("ix_device_bindings_unit", "unit_id", "valid_from"),
    )
