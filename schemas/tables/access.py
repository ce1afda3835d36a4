"""API tokens with roles, and the audit log of every read of a location."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
)

ROLES = ("admin", "dispatcher", "viewer")


def define(md: MetaData) -> None:
    """Add `api_tokens` and `audit_log` to `md`."""
    Table(
        "api_tokens",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", Text, nullable=False),
        Column("role", String(16), nullable=False),
        # sha256 of the token: tokens are long random strings, so a fast hash is enough and lookups stay O(1).
        Column("token_hash", String(64), nullable=False, unique=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("revoked_at", DateTime(timezone=True)),
    )
    Table(
        "audit_log",
        md,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("at", DateTime(timezone=True), nullable=False),
        Column("actor", Text, nullable=False),  # "token:<id>:<name>" or "device:<id>"
        Column("action", Text, nullable=False),  # e.g. "read_unit", "nearest", "units_in_bbox"
        Column("subject", Text, nullable=False),  # unit id, bbox, or point queried
        Column("detail", JSON),
        Index("ix_audit_log_at", "at"),
    )
