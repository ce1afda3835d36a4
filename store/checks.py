"""Widening a CHECK that names a column's allowed values, on both stores, in place.

Widening a CHECK removes no row's validity, so it needs no rewrite of the table: PostgreSQL drops and
re-adds the constraint; SQLite cannot alter a constraint, and its documented way to loosen one is to edit
the table's stored CREATE statement (https://sqlite.org/lang_altertable.html, "making other kinds of table
schema changes"). Nothing happens when the CHECK already allows exactly the values wanted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import Connection, text

from schemas.tables import Flavour


def set_allowed(conn: Connection, flavour: Flavour, table: str, column: str, values: Sequence[str]) -> None:
    """Make the CHECK `ck_{table}_{column}` allow exactly `values`."""
    wanted = "CHECK ({} IN ({}))".format(column, ", ".join(f"'{v}'" for v in values))
    name = f"ck_{table}_{column}"
    if flavour.dialect == "postgresql":
        current = conn.execute(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conname = :name AND conrelid = CAST(:table AS regclass)"
            ),
            {"name": name, "table": table},
        ).scalar()
        if current is not None and set(re.findall(r"'([^']*)'", current)) == set(values):
            return
        conn.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}"))
        conn.execute(text(f"ALTER TABLE {table} ADD CONSTRAINT {name} {wanted}"))
        return
    sql = conn.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :table"), {"table": table}
    ).scalar_one()
    match = re.search(rf"CHECK \({column} IN \([^)]*\)\)", sql)
    if match is None:
        raise RuntimeError(f"{table} has no CHECK on {column} to widen; the table is not Outpost's")
    if match.group(0) == wanted:
        return
    version = int(conn.execute(text("PRAGMA schema_version")).scalar_one())
    conn.execute(text("PRAGMA writable_schema = ON"))
    conn.execute(
        text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :table"),
        {"sql": sql[: match.start()] + wanted + sql[match.end() :], "table": table},
    )
    # Every connection re-reads the schema when the version moves (the documented procedure).
    conn.execute(text(f"PRAGMA schema_version = {version + 1}"))
    conn.execute(text("PRAGMA writable_schema = OFF"))
