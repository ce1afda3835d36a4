"""What the picture holds of one unit and one device, the status rule of the index, and the records it reads.

The records are Protocols so the picture never imports the store: `store.registry`'s Unit, Device and
Binding satisfy them, and so does any small object a test builds.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol

import geo
from schemas.fix import Fix

# Default device priority by kind (every one of schemas.vocabulary.DEVICE_KINDS; test_picture_consistency
# checks): worn devices say where the officer is; a vehicle tracker stays in the car.
KIND_PRIORITY = {"body_cam": 40, "phone": 30, "radio": 20, "vehicle_tracker": 10, "other": 0}
OFF_INDEX_STATUSES = frozenset({"off_duty"})


class _Record(Protocol):
    """What a unit's and a device's registry records have in common."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def enabled(self) -> bool: ...


class UnitRecord(_Record, Protocol):
    """A unit as the registry stores it."""

    @property
    def name(self) -> str: ...
    @property
    def skills(self) -> Collection[str]: ...
    @property
    def status(self) -> str: ...


class DeviceRecord(_Record, Protocol):
    """A device as the registry stores it."""

    @property
    def priority(self) -> int: ...


class BindingRecord(Protocol):
    """A device's binding to a unit that covers now."""

    @property
    def device_id(self) -> str: ...
    @property
    def unit_id(self) -> str: ...


@dataclass(slots=True)
class DeviceState:
    """What the fleet knows of one device."""

    id: str
    kind: str = "other"
    priority: int = 0
    enabled: bool = True
    unit_id: str | None = None  # the unit it is bound to now, as far as the fleet knows
    last_fix: Fix | None = None  # newest fix of any kind (shown to dispatchers)
    usable_fix: Fix | None = None  # newest fix allowed to move the unit
    usable_ts_s: float = float("-inf")


@dataclass(slots=True)
class UnitState:
    """What the fleet knows of one unit."""

    id: str
    name: str = ""
    kind: str = "police"
    skills: frozenset[str] = frozenset()
    status: str = "off_duty"
    enabled: bool = True
    devices: set[str] = field(default_factory=set)
    position: geo.UnitPosition | None = None  # fused, kept even when the unit is not indexed
    apart_since_s: float | None = None
    separated: bool = False

    @property
    def indexable(self) -> bool:
        """Whether nearest may see this unit (on duty and enabled)."""
        return self.enabled and self.status not in OFF_INDEX_STATUSES
