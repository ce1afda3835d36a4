"""Queries of the registry: units, devices, device bindings and device credentials (PostgreSQL and SQLite).

Functions take an `Engine` and return plain records; "not found" is `None` or `False`, a clash with an
existing row raises `Duplicate`, an overlapping binding raises `Overlap`. Every record carries
timezone-aware UTC times. One module per concern (`roster`: units, `devices`, `pairings`: bindings, over the
shared `records`); callers import them all from here, as `from store import registry`.
"""

from __future__ import annotations

from store.registry.devices import (
    device_credentials_hash,
    get_device,
    insert_device,
    list_devices,
    set_device_credentials,
    update_device,
)
from store.registry.pairings import (
    bindings_active_at,
    bindings_of_unit,
    end_bindings,
    insert_binding,
    unit_for_device,
)
from store.registry.records import (
    Binding,
    Device,
    Duplicate,
    Overlap,
    Queries,
    Unit,
    bindings,
    devices,
    units,
)
from store.registry.roster import (
    count_units,
    get_unit,
    get_units,
    insert_unit,
    insert_units_bulk,
    list_units,
    update_unit,
)
from store.registry.statuses import Outcome as StatusOutcome
from store.registry.statuses import StatusChange, change_unit_status, status_history

UNIT_QUERIES = Queries(get_unit, insert_unit, update_unit, list_units)
DEVICE_QUERIES = Queries(get_device, insert_device, update_device, list_devices)

__all__ = [
    "DEVICE_QUERIES",
    "UNIT_QUERIES",
    "Binding",
    "Device",
    "Duplicate",
    "Overlap",
    "Queries",
    "StatusChange",
    "StatusOutcome",
    "Unit",
    "bindings",
    "bindings_active_at",
    "bindings_of_unit",
    "change_unit_status",
    "count_units",
    "device_credentials_hash",
    "devices",
    "end_bindings",
    "get_device",
    "get_unit",
    "get_units",
    "insert_binding",
    "insert_device",
    "insert_unit",
    "insert_units_bulk",
    "list_devices",
    "list_units",
    "set_device_credentials",
    "status_history",
    "unit_for_device",
    "units",
    "update_device",
    "update_unit",
]
