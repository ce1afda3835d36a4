"""Adding a column to an existing table, on both stores, when a migration step needs one (idempotent)."""

from __future__ import annotations

from sqlalchemy import Connection, text

from schemas.tables import Flavour


def add_column(conn: Connection, flavour: Flavour, table: str, column: str, sql_type: str) -> None:
    """`ALTER TABLE table ADD COLUMN column sql_type` unless the column exists (names are ours, not input)."""
    if flavour.dialect == "postgresql":
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {sql_type}"))
        return
    columns = {row[1] for row in conn.execute(text(f"PRAGMA table_info({table})"))}
    if column not in columns:
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
