"""Which device belongs to which unit when: bindings over half-open time ranges, never overlapping."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, or_, select, update

from store.registry.records import Binding, Overlap, binding_of, bindings
from store.times import as_utc


def _overlapping(device_id: str, valid_from: datetime, valid_to: datetime | None) -> Any:
    # Half-open ranges [from, to) overlap when each starts before the other ends (NULL end: never ends).
    ends_after_start = or_(bindings.c.valid_to.is_(None), bindings.c.valid_to > valid_from)
    conditions = [bindings.c.device_id == device_id, ends_after_start]
    if valid_to is not None:
        conditions.append(bindings.c.valid_from < valid_to)
    return and_(*conditions)


def insert_binding(
    engine: Engine, *, device_id: str, unit_id: str, valid_from: datetime, valid_to: datetime | None
) -> Binding:
    """Bind a device to a unit for [valid_from, valid_to); raises `Overlap` if the device is bound then."""
    valid_from, valid_to = as_utc(valid_from), (as_utc(valid_to) if valid_to is not None else None)
    with engine.begin() as conn:
        clash = conn.execute(
            select(bindings).where(_overlapping(device_id, valid_from, valid_to)).limit(1)
        ).first()
        if clash is not None:
            raise Overlap(binding_of(clash))
        result = conn.execute(
            bindings.insert().values(
                device_id=device_id, unit_id=unit_id, valid_from=valid_from, valid_to=valid_to
            )
        )
        binding_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    return Binding(
        id=int(binding_id or 0),
        device_id=device_id,
        unit_id=unit_id,
        valid_from=as_utc(valid_from),
        valid_to=as_utc(valid_to) if valid_to else None,
    )


def end_bindings(engine: Engine, *, unit_id: str, device_id: str, now: datetime) -> int:
    """Unbind: close the device's current binding to the unit at `now` and drop future ones; rows changed."""
    now = as_utc(now)
    with engine.begin() as conn:
        mine = and_(bindings.c.unit_id == unit_id, bindings.c.device_id == device_id)
        dropped = conn.execute(bindings.delete().where(mine, bindings.c.valid_from >= now)).rowcount
        closed = conn.execute(
            update(bindings)
            .where(
                mine,
                bindings.c.valid_from < now,
                or_(bindings.c.valid_to.is_(None), bindings.c.valid_to > now),
            )
            .values(valid_to=now)
        ).rowcount
    return int(dropped + closed)


def bindings_of_unit(engine: Engine, unit_id: str) -> list[Binding]:
    """Every binding of the unit (past, current and future), oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(bindings)
            .where(bindings.c.unit_id == unit_id)
            .order_by(bindings.c.valid_from, bindings.c.id)
        )
        return [binding_of(r) for r in rows]


def bindings_active_at(engine: Engine, at: datetime) -> list[Binding]:
    """Bindings covering the instant `at` (the fleet's device → unit map at start)."""
    at = as_utc(at)
    with engine.connect() as conn:
        rows = conn.execute(
            select(bindings).where(
                bindings.c.valid_from <= at, or_(bindings.c.valid_to.is_(None), bindings.c.valid_to > at)
            )
        )
        return [binding_of(r) for r in rows]


def unit_for_device(engine: Engine, device_id: str, at: datetime) -> str | None:
    """The unit the device is bound to at `at`, if any."""
    at = as_utc(at)
    with engine.connect() as conn:
        value = conn.execute(
            select(bindings.c.unit_id)
            .where(
                bindings.c.device_id == device_id,
                bindings.c.valid_from <= at,
                or_(bindings.c.valid_to.is_(None), bindings.c.valid_to > at),
            )
            .order_by(bindings.c.valid_from.desc())
            .limit(1)
        ).scalar()
    return str(value) if value is not None else None
