"""Devices as the API manages them: body cameras, phones, radios, trackers, and their credentials."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from store.registry.records import Device, by_id, device_of, devices, insert_new, page
from store.times import as_utc


def insert_device(
    engine: Engine,
    *,
    id: str,
    kind: str,
    priority: int = 0,
    enabled: bool = True,
    registered_by: str = "api",
    credentials_hash: str | None = None,
    now: datetime,
) -> Device:
    """Register a device (with its credentials' hash, in the same row, when given); raises `Duplicate`
    when the id is taken."""
    values = {
        "id": id,
        "kind": kind,
        "priority": priority,
        "enabled": enabled,
        "registered_by": registered_by,
        "credentials_hash": credentials_hash,
        "created_at": as_utc(now),
    }
    return insert_new(engine, devices, values, what=f"device {id}", build=device_of)


def get_device(engine: Engine, device_id: str) -> Device | None:
    """One device, or None."""
    return by_id(engine, devices, device_id, device_of)


def list_devices(engine: Engine, *, after_id: str | None = None, limit: int | None = None) -> list[Device]:
    """Devices ordered by id; `after_id` + `limit` page through them."""
    return page(engine, select(devices), devices, device_of, after_id, limit)


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
