"""The registry's vocabularies, spelled once: unit statuses, unit kinds, device kinds.

Each is a `Literal` (for the type checker, msgspec's validation and the OpenAPI document) and the tuple of
its values derived from it (for CHECK constraints, query parameters and the index), so the two cannot
drift apart. Pure: the database tables (`schemas.tables.registry`), the live index (`geo`) and the API
(`dispatch`) all import from here.
"""

from __future__ import annotations

from typing import Literal, get_args

# Fixed order: the live index keeps each unit's status as its position in UNIT_STATUSES (one byte a unit);
# a new status is appended (`break` came with devices reporting their own duty, migration step 7).
UnitStatus = Literal[
    "off_duty", "available", "offered", "assigned", "en_route", "on_scene", "busy", "out_of_service", "break"
]
# What a device may report of its own unit (`outpost/v1/devices/{id}/status`): `on_duty` comes on duty as
# `available`; the others are unit statuses of the same name.
DeviceStatus = Literal["on_duty", "off_duty", "available", "busy", "break"]
UnitKind = Literal["police", "auxiliary", "vehicle"]
DeviceKind = Literal["body_cam", "phone", "radio", "vehicle_tracker", "other"]

UNIT_STATUSES: tuple[str, ...] = get_args(UnitStatus)
UNIT_KINDS: tuple[str, ...] = get_args(UnitKind)
DEVICE_KINDS: tuple[str, ...] = get_args(DeviceKind)
DEVICE_STATUSES: tuple[str, ...] = get_args(DeviceStatus)
