"""The live picture, pure: units, devices, their latest fixes, fused positions, the nearest index, the rules.

No I/O here (no asyncio, no database, no HTTP; an import-linter contract keeps it so): `dispatch.fleet`
loads it from the store, persists status changes and schedules the batches; this package only decides.
Every change of a unit's index entry is a change record `geo.Change(old, new)` (Tile38's model), returned by
the move that made it and published to `Picture.subscribe_changes` subscribers.
"""

from dispatch.live.events import DevicesSeparated, FleetEvent, StatusChanged, UnitMoved
from dispatch.live.picture import Picture
from dispatch.live.state import (
    KIND_PRIORITY,
    OFF_INDEX_STATUSES,
    BindingRecord,
    DeviceRecord,
    DeviceState,
    UnitRecord,
    UnitState,
)

__all__ = [
    "KIND_PRIORITY",
    "OFF_INDEX_STATUSES",
    "BindingRecord",
    "DeviceRecord",
    "DeviceState",
    "DevicesSeparated",
    "FleetEvent",
    "Picture",
    "StatusChanged",
    "UnitMoved",
    "UnitRecord",
    "UnitState",
]
