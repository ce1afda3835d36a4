"""API tokens with roles, and the audit log of every read of a location."""

from __future__ import annotations

import sqlalchemy as sa

from schemas.tables.columns import created_at, instant, name, serial_id, word

ROLES = ("admin", "dispatcher", "viewer")


def define(md: sa.MetaData) -> None:
    """Add `api_tokens` and `audit_log` to `md`."""
    sa.Table(
        "api_tokens",
        md,
        serial_id(sa.Integer),
        name(),
        word("role"),
        # sha256 of the token: tokens are long random strings, so a fast hash is enough and lookups stay O(1).
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        created_at(),
        instant("revoked_at"),
    )
    sa.Table(
        "audit_log",
        md,
        serial_id(),
        instant("at", nullable=False),
        sa.Column("actor", sa.Text, nullable=False),  # "token:<id>:<name>" or "device:<id>"
        sa.Column("action", sa.Text, nullable=False),  # e.g. "read_unit", "nearest", "units_in_bbox"
        sa.Column("subject", sa.Text, nullable=False),  # unit id, bbox, or point queried
        sa.Column("detail", sa.JSON),
        # The hash chain (store.audit_chain): sha256 of the record before and of this one with it. Null on
        # records written before the chain existed (migration step 12).
        sa.Column("prev_hash", sa.String(64)),
        sa.Column("hash", sa.String(64)),
        sa.Index("ix_audit_log_at", "at"),
        sa.Index("ix_audit_log_subject", "subject"),
    )
