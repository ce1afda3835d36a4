"""Ingest-side registry queries: the device directory (loaded whole, kept in memory by ingest) and the
registration of unknown devices on first contact (OUTPOST_REGISTER_UNKNOWN_DEVICES, as Traccar's
`database.registerUnknown`). PostgreSQL and SQLite."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, MetaData, and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from schemas.tables import registry as registry_tables
from store.times import utc

_md = MetaData()
registry_tables.define(_md)
_DEVICES = _md.tables["devices"]
_UNITS = _md.tables["units"]
_BINDINGS = _md.tables["device_bindings"]
_UNIT_ID_MAX = 64  # units.id is String(64)


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """What ingest needs to know about one device, with the unit it is bound to now (None: unbound)."""

    device_id: str
    kind: str
    enabled: bool
    unit_id: str | None
    credentials_hash: str | None
    unit_status: str | None = None  # the bound unit's status (ingest.duty: off duty or not)


def load_directory(engine: Engine, *, now: datetime) -> list[DirectoryEntry]:
    """Every device, enabled or not, with its binding active at `now`."""
    at = utc(now)
    active = (
        select(_BINDINGS.c.device_id, _BINDINGS.c.unit_id)
        .where(_BINDINGS.c.valid_from <= at, or_(_BINDINGS.c.valid_to.is_(None), _BINDINGS.c.valid_to > at))
        .subquery()
    )
    query = select(
        _DEVICES.c.id,
        _DEVICES.c.kind,
        _DEVICES.c.enabled,
        _DEVICES.c.credentials_hash,
        active.c.unit_id,
        _UNITS.c.status,
    ).select_from(
        _DEVICES.outerjoin(active, active.c.device_id == _DEVICES.c.id).outerjoin(
            _UNITS, _UNITS.c.id == active.c.unit_id
        )
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    # Bindings never overlap (the registry refuses it), so a device appears at most once; if a
    # hand-edited database disagrees, the last row wins rather than failing ingest.
    return [_entry(r) for r in rows]


def _entry(r: Any) -> DirectoryEntry:
    return DirectoryEntry(r.id, r.kind, bool(r.enabled), r.unit_id, r.credentials_hash, r.status)


def register_unknown(engine: Engine, device_id: str, *, now: datetime) -> DirectoryEntry | None:
    """Register `device_id` (kind other, registered_by auto) with a unit of the same id (kind police,
    status available) bound to it from `now`. Idempotent: a device that exists is left as it is.

    Returns the device's entry, or None when its id cannot be a unit id (longer than 64 characters).
    Whichever transaction inserts the device row creates the unit and binding, so concurrent workers
    registering the same device create them once.
    """
    if len(device_id) > _UNIT_ID_MAX:
        return None
    at = utc(now)
    with engine.begin() as conn:
        created = conn.execute(
            _insert_ignore(engine, _DEVICES).values(id=device_id, kind="other", registered_by="auto")
        ).rowcount
        if created:
            conn.execute(
                _insert_ignore(engine, _UNITS).values(
                    id=device_id,
                    name=device_id,
                    kind="police",
                    skills=[],
                    status="available",
                    status_changed_at=at,
                )
            )
            conn.execute(_BINDINGS.insert().values(device_id=device_id, unit_id=device_id, valid_from=at))
    entries = _entries(engine, device_id, at)
    return entries[0] if entries else None


def _entries(engine: Engine, device_id: str, at: datetime) -> list[DirectoryEntry]:
    query = (
        select(
            _DEVICES.c.id,
            _DEVICES.c.kind,
            _DEVICES.c.enabled,
            _DEVICES.c.credentials_hash,
            _BINDINGS.c.unit_id,
            _UNITS.c.status,
        )
        .select_from(
            _DEVICES.outerjoin(
                _BINDINGS,
                and_(
                    _BINDINGS.c.device_id == _DEVICES.c.id,
                    _BINDINGS.c.valid_from <= at,
                    or_(_BINDINGS.c.valid_to.is_(None), _BINDINGS.c.valid_to > at),
                ),
            ).outerjoin(_UNITS, _UNITS.c.id == _BINDINGS.c.unit_id)
        )
        .where(_DEVICES.c.id == device_id)
    )
    with engine.connect() as conn:
        return [_entry(r) for r in conn.execute(query)]


def _insert_ignore(engine: Engine, table: object) -> Insert:
    """INSERT … ON CONFLICT DO NOTHING in the engine's dialect."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()  # type: ignore[arg-type]
    return sqlite.insert(table).on_conflict_do_nothing()  # type: ignore[arg-type]
