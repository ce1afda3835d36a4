"""Queries of the registry: units, devices, device bindings and device credentials (PostgreSQL and SQLite).

Functions take an `Engine` and return plain records; "not found" is `None` or `False`, a clash with an
existing row raises `Duplicate`, an overlapping binding raises `Overlap`. SQLite hands timestamps back
naive; every record is normalised to timezone-aware UTC here so callers never see the difference.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, MetaData, Row, Table, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from schemas.tables import registry as registry_tables


class Duplicate(Exception):  # noqa: N818
    """A row with this id already exists."""


class Overlap(Exception):  # noqa: N818
    """The device is already bound to a unit during (part of) the requested time range."""

    def __init__(self, existing: Binding) -> None:
        super().__init__(
            f"device {existing.device_id} is bound to unit {existing.unit_id} from "
            f"{existing.valid_from.isoformat()} to "
            f"{existing.valid_to.isoformat() if existing.valid_to else 'open end'}"
        )
        self.existing = existing


@dataclass(frozen=True, slots=True)
class Unit:
    """An officer, auxiliary or vehicle."""

    id: str
    name: str
    kind: str
    skills: tuple[str, ...]
    status: str
    status_changed_at: datetime
    enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Device:
    """A body camera, phone, radio or tracker. The secret is never read back, only whether one exists."""

    id: str
    kind: str
    enabled: bool
    priority: int
    has_credentials: bool
    registered_by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Binding:
    """Device `device_id` belongs to unit `unit_id` from `valid_from` until `valid_to` (None: open-ended)."""

    id: int
    device_id: str
    unit_id: str
    valid_from: datetime
    valid_to: datetime | None

    def active_at(self, at: datetime) -> bool:
        """Whether the binding covers the instant `at`."""
        return self.valid_from <= at and (self.valid_to is None or at < self.valid_to)


_md = MetaData()
registry_tables.define(_md)
units: Table = _md.tables["units"]
devices: Table = _md.tables["devices"]
bindings: Table = _md.tables["device_bindings"]


def utc(value: datetime) -> datetime:
    """A timezone-aware UTC datetime (SQLite returns naive UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _unit(row: Row[Any]) -> Unit:
    m = row._mapping
    return Unit(
        id=m["id"],
        name=m["name"],
        kind=m["kind"],
        skills=tuple(m["skills"] or ()),
        status=m["status"],
        status_changed_at=utc(m["status_changed_at"]),
        enabled=bool(m["enabled"]),
        created_at=utc(m["created_at"]),
    )


def _device(row: Row[Any]) -> Device:
    m = row._mapping
    return Device(
        id=m["id"],
        kind=m["kind"],
        enabled=bool(m["enabled"]),
        priority=int(m["priority"]),
        has_credentials=m["credentials_hash"] is not None,
        registered_by=m["registered_by"],
        created_at=utc(m["created_at"]),
    )


def _binding(row: Row[Any]) -> Binding:
    m = row._mapping
    return Binding(
        id=int(m["id"]),
        device_id=m["device_id"],
        unit_id=m["unit_id"],
        valid_from=utc(m["valid_from"]),
        valid_to=utc(m["valid_to"]) if m["valid_to"] else None,
    )


# ---- units ---------------------------------------------------------------------------------------------


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
    now = utc(now)
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
    try:
        with engine.begin() as conn:
            conn.execute(units.insert().values(**values))
    except IntegrityError as exc:
        raise Duplicate(f"unit {id} already exists") from exc
    found = get_unit(engine, id)
    assert found is not None
    return found


def get_unit(engine: Engine, unit_id: str) -> Unit | None:
    """One unit, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(units).where(units.c.id == unit_id)).first()
    return _unit(row) if row else None


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
    query = select(units).order_by(units.c.id)
    if kinds is not None:
        query = query.where(units.c.kind.in_(list(kinds)))
    if statuses is not None:
        query = query.where(units.c.status.in_(list(statuses)))
    if enabled is not None:
        query = query.where(units.c.enabled == enabled)
    if after_id is not None:
        query = query.where(units.c.id > after_id)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [_unit(r) for r in conn.execute(query)]


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
    return get_unit(engine, unit_id)


def set_unit_status(engine: Engine, unit_id: str, status: str, *, now: datetime) -> bool:
    """Set a unit's status unconditionally; False when the unit does not exist."""
    with engine.begin() as conn:
        result = conn.execute(
            update(units).where(units.c.id == unit_id).values(status=status, status_changed_at=utc(now))
        )
    return result.rowcount == 1


def compare_and_set_unit_status(
    engine: Engine, unit_id: str, expected: Collection[str], new: str, *, now: datetime
) -> bool:
    """Set the status only if it is one of `expected`, atomically in the database (one winner per race)."""
    with engine.begin() as conn:
        result = conn.execute(
            update(units)
            .where(units.c.id == unit_id, units.c.status.in_(list(expected)))
            .values(status=new, status_changed_at=utc(now))
        )
    return result.rowcount == 1


# ---- devices -------------------------------------------------------------------------------------------


def insert_device(
    engine: Engine,
    *,
    id: str,
    kind: str,
    priority: int = 0,
    enabled: bool = True,
    registered_by: str = "api",
    now: datetime,
) -> Device:
    """Register a device; raises `Duplicate` when the id is taken."""
    try:
        with engine.begin() as conn:
            conn.execute(
                devices.insert().values(
                    id=id,
                    kind=kind,
                    priority=priority,
                    enabled=enabled,
                    registered_by=registered_by,
                    created_at=utc(now),
                )
            )
    except IntegrityError as exc:
        raise Duplicate(f"device {id} already exists") from exc
    found = get_device(engine, id)
    assert found is not None
    return found


def get_device(engine: Engine, device_id: str) -> Device | None:
    """One device, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(devices).where(devices.c.id == device_id)).first()
    return _device(row) if row else None


def list_devices(engine: Engine, *, after_id: str | None = None, limit: int | None = None) -> list[Device]:
    """Devices ordered by id; `after_id` + `limit` page through them."""
    query = select(devices).order_by(devices.c.id)
    if after_id is not None:
        query = query.where(devices.c.id > after_id)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [_device(r) for r in conn.execute(query)]


def update_device(engine: Engine, device_id: str, **changes: Any) -> Device | None:
    """Change some of kind, priority, enabled; None when the device does not exist."""
    unknown = set(changes) - {"kind", "priority", "enabled"}
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    if changes:
        with engine.begin() as conn:
            if conn.execute(update(devices).where(devices.c.id == device_id).values(**changes)).rowcount == 0:
                return None
    return get_device(engine, device_id)


def set_device_credentials(engine: Engine, device_id: str, secret_hash: str) -> bool:
    """Store the hash of a newly issued device secret (replacing any previous one)."""
    with engine.begin() as conn:
        result = conn.execute(
            update(devices).where(devices.c.id == device_id).values(credentials_hash=secret_hash)
        )
    return result.rowcount == 1


def device_credentials_hash(engine: Engine, device_id: str) -> str | None:
    """The stored secret hash of an enabled device (None: unknown, disabled or no credentials issued)."""
    with engine.connect() as conn:
        value = conn.execute(
            select(devices.c.credentials_hash).where(devices.c.id == device_id, devices.c.enabled.is_(True))
        ).scalar()
    return str(value) if value is not None else None


# ---- bindings ------------------------------------------------------------------------------------------


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
    valid_from, valid_to = utc(valid_from), (utc(valid_to) if valid_to is not None else None)
    with engine.begin() as conn:
        clash = conn.execute(
            select(bindings).where(_overlapping(device_id, valid_from, valid_to)).limit(1)
        ).first()
        if clash is not None:
            raise Overlap(_binding(clash))
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
        valid_from=utc(valid_from),
        valid_to=utc(valid_to) if valid_to else None,
    )


def end_bindings(engine: Engine, *, unit_id: str, device_id: str, now: datetime) -> int:
    """Unbind: close the device's current binding to the unit at `now` and drop future ones; rows changed."""
    now = utc(now)
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
        return [_binding(r) for r in rows]


def bindings_active_at(engine: Engine, at: datetime) -> list[Binding]:
    """Bindings covering the instant `at` (the fleet's device → unit map at start)."""
    at = utc(at)
    with engine.connect() as conn:
        rows = conn.execute(
            select(bindings).where(
                bindings.c.valid_from <= at, or_(bindings.c.valid_to.is_(None), bindings.c.valid_to > at)
            )
        )
        return [_binding(r) for r in rows]


def unit_for_device(engine: Engine, device_id: str, at: datetime) -> str | None:
    """The unit the device is bound to at `at`, if any."""
    at = utc(at)
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


def count_units(engine: Engine) -> int:
    """How many units are registered."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(units)).scalar_one())


def insert_units_bulk(engine: Engine, rows: Iterable[dict[str, Any]]) -> None:
    """Insert many units at once (benchmarks, imports); each row has at least id, name, kind."""
    with engine.begin() as conn:
        conn.execute(units.insert(), [{"skills": [], **r} for r in rows])
