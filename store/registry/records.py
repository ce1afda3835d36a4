"""The registry's records and tables: units, devices, device bindings, and the errors its queries raise.

SQLite hands timestamps back naive; every record is normalised to timezone-aware UTC here so callers never
see the difference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec
from sqlalchemy import Connection, Engine, MetaData, Row, Select, Table, select
from sqlalchemy.exc import IntegrityError

from schemas.tables import registry as registry_tables
from store.rows import record_of

T = TypeVar("T")
R = TypeVar("R")
Build = Callable[[Row[Any]], T]  # a record from its row


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


class Device(msgspec.Struct, frozen=True):
    """A body camera, phone, radio or tracker. The secret is never read back, only whether one exists. (A
    Struct: the API answers it as it is, `dispatch.routes.models.DeviceOut`.)"""

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


def unit_of(row: Row[Any]) -> Unit:
    m = row._mapping
    return record_of(Unit, row, skills=tuple(m["skills"] or ()), enabled=bool(m["enabled"]))


def device_of(row: Row[Any]) -> Device:
    m = row._mapping
    return record_of(
        Device,
        row,
        enabled=bool(m["enabled"]),
        priority=int(m["priority"]),
        has_credentials=m["credentials_hash"] is not None,
    )


def binding_of(row: Row[Any]) -> Binding:
    return record_of(Binding, row, id=int(row._mapping["id"]))


def insert_new(
    engine: Engine,
    table: Table,
    values: Mapping[str, Any],
    *,
    what: str,
    build: Build[T],
    then: Callable[[Connection], object] = lambda _conn: None,
) -> T:
    """Insert one row and return it as stored; raises `Duplicate` ("<what> already exists") when its id is
    taken. `then` runs in the inserting transaction, after the insert."""
    try:
        with engine.begin() as conn:
            conn.execute(table.insert().values(**values))
            then(conn)
    except IntegrityError as exc:
        raise Duplicate(f"{what} already exists") from exc
    found = by_id(engine, table, values["id"], build)
    assert found is not None
    return found


def by_id(engine: Engine, table: Table, row_id: str, build: Build[T]) -> T | None:
    """The row of `table` with this id as a record, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.id == row_id)).first()
    return build(row) if row else None


def page(
    engine: Engine, query: Select[Any], table: Table, build: Build[T], after_id: str | None, limit: int | None
) -> list[T]:
    """The rows of `query` ordered by id as records; `after_id` + `limit` page through them (keyset)."""
    query = query.order_by(table.c.id)
    if after_id is not None:
        query = query.where(table.c.id > after_id)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [build(r) for r in conn.execute(query)]


@dataclass(frozen=True)
class Queries(Generic[R]):
    """The four queries every kind of registry record has (units, devices): by id, insert, change, page."""

    get: Callable[[Engine, str], R | None]
    insert: Callable[..., R]  # (engine, *, id, ..., now); raises Duplicate for a taken id
    update: Callable[..., R | None]  # (engine, id, **changes); None when there is no such record
    listing: Callable[..., list[R]]  # (engine, *, after_id, limit, **filters)
