"""Units: officers, auxiliaries and vehicles, and their status (PostgreSQL and SQLite)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update

from store.notify import announce_unit
from store.registry.records import Unit, by_id, insert_new, page, unit_of, units
from store.times import as_utc


def insert_unit(
    engine: Engine,
    *,
    id: str,
    name: str,
    kind: str,
    skills: Sequence[str] = (),
    status: str = "off_duty",
    enabled: bool = True,
    now: datetime,
) -> Unit:
    """Create a unit; raises `Duplicate` when the id is taken."""
    now = as_utc(now)
    values = {
        "id": id,
        "name": name,
        "kind": kind,
        "skills": list(skills),
        "status": status,
        "enabled": enabled,
        "status_changed_at": now,
        "created_at": now,
    }
    return insert_new(
        engine, units, values, what=f"unit {id}", build=unit_of, then=lambda conn: announce_unit(conn, id)
    )


def get_unit(engine: Engine, unit_id: str) -> Unit | None:
    """One unit, or None."""
    return by_id(engine, units, unit_id, unit_of)


def get_units(engine: Engine, unit_ids: Collection[str]) -> list[Unit]:
    """The units of these ids that exist, in no particular order."""
    found: list[Unit] = []
    ids = list(unit_ids)
    with engine.connect() as conn:
        for start in range(0, len(ids), 1000):  # bounded parameter lists
            rows = conn.execute(select(units).where(units.c.id.in_(ids[start : start + 1000])))
            found += [unit_of(r) for r in rows]
    return found


def list_units(
    engine: Engine,
    *,
    kinds: Collection[str] | None = None,
    statuses: Collection[str] | None = None,
    enabled: bool | None = None,
    after_id: str | None = None,
    limit: int | None = None,
) -> list[Unit]:
    """Units ordered by id, optionally filtered; `after_id` + `limit` page through them."""
    query = select(units)
    if kinds is not None:
        query = query.where(units.c.kind.in_(list(kinds)))
    if statuses is not None:
        query = query.where(units.c.status.in_(list(statuses)))
    if enabled is not None:
        query = query.where(units.c.enabled == enabled)
    return page(engine, query, units, unit_of, after_id, limit)


def update_unit(engine: Engine, unit_id: str, **changes: Any) -> Unit | None:
    """Change some of name, kind, skills, enabled; None when the unit does not exist."""
    allowed = {"name", "kind", "skills", "enabled"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    if "skills" in changes:
        changes["skills"] = list(changes["skills"])
    if changes:
        with engine.begin() as conn:
            if conn.execute(update(units).where(units.c.id == unit_id).values(**changes)).rowcount == 0:
                return None
            announce_unit(conn, unit_id)
    return get_unit(engine, unit_id)


def count_units(engine: Engine) -> int:
    """How many units are registered."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(units)).scalar_one())


def insert_units_bulk(engine: Engine, rows: Iterable[dict[str, Any]]) -> None:
    """Insert many units at once (benchmarks, imports); each row has at least id, name, kind."""
    with engine.begin() as conn:
        conn.execute(units.insert(), [{"skills": [], **r} for r in rows])
