"""What the live picture tells its listeners: a unit moved, changed status, or its devices came apart."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UnitMoved:
    """A unit's fused position changed."""

    unit_id: str
    lon: float
    lat: float
    ts_s: float
    accuracy_m: float | None
    device_id: str | None
    type: str = "unit.moved"


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """A unit's status changed (through the API or the incident workflow)."""

    unit_id: str
    old: str
    new: str
    actor: str
    at_s: float
    type: str = "unit.status"


@dataclass(frozen=True, slots=True)
class DevicesSeparated:
    """Two devices of one unit stayed far apart (`separated`), or came back together (not `separated`)."""

    unit_id: str
    device_a: str
    device_b: str
    distance_m: float
    ts_s: float
    separated: bool
    type: str = "unit.devices_separated"


FleetEvent = UnitMoved | StatusChanged | DevicesSeparated
