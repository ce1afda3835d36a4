"""Request and response bodies of the core API (msgspec types: validated on decode, documented in OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from schemas.values import DeviceId, DevicePriority, Name, Reason, Skills, UnitId
from schemas.vocabulary import DeviceKind, UnitKind, UnitStatus
from store.registry import Device

RoleName = Literal["admin", "dispatcher", "viewer"]

UNSET: Any = msgspec.UNSET


class UnitIn(msgspec.Struct, forbid_unknown_fields=True):
    """An officer, auxiliary or vehicle. It starts off duty unless `status` says otherwise."""

    id: UnitId
    name: Name
    kind: UnitKind
    skills: Skills = []
    status: UnitStatus = "off_duty"
    enabled: bool = True


class UnitPatch(msgspec.Struct, forbid_unknown_fields=True):
    """Fields to change on a unit (absent fields keep their value); enabled=false disables it, and a
    disabled unit leaves the live index."""

    name: Name | msgspec.UnsetType = UNSET
    kind: UnitKind | msgspec.UnsetType = UNSET
    skills: Skills | msgspec.UnsetType = UNSET
    enabled: bool | msgspec.UnsetType = UNSET


class UnitOut(msgspec.Struct):
    """A unit's registry record."""

    id: str
    name: str
    kind: str
    skills: list[str]
    status: str
    status_changed_at: datetime
    enabled: bool
    created_at: datetime


class GridRef(msgspec.Struct):
    """A patrol grid a unit is in: its id and name."""

    id: str
    name: str


class Position(msgspec.Struct):
    """A unit's live (fused) position, and the police and community grid it is in (null: none)."""

    lon: float
    lat: float
    ts: datetime
    fix_age_s: float
    accuracy_m: float | None
    device_id: str | None
    in_index: bool  # false when off duty or disabled: kept, but not offered to dispatch
    community_grid: GridRef | None = None
    police_grid: GridRef | None = None


class UnitListItem(msgspec.Struct):
    """A unit with its live position, if it has one."""

    id: str
    name: str
    kind: str
    skills: list[str]
    status: str
    enabled: bool
    position: Position | None


class UnitList(msgspec.Struct):
    """Units, by id (registry listing) or in a box (live view); `next_after` pages the registry listing."""

    units: list[UnitListItem]
    next_after: str | None = None


class FixOut(msgspec.Struct):
    """One device fix as the fleet holds it."""

    ts: datetime
    received_at: datetime
    lon: float
    lat: float
    accuracy_m: float | None
    speed_mps: float | None
    heading_deg: float | None
    battery_pct: float | None
    flags: list[str]


class UnitDevice(msgspec.Struct):
    """A device bound to the unit now, with its last fix."""

    id: str
    kind: str
    priority: int
    last_fix: FixOut | None
    last_usable_fix: FixOut | None  # the newest fix allowed to move the unit (not flagged)


class UnitDetail(msgspec.Struct):
    """`GET /v1/units/{id}`: the registry record, live position and every current device."""

    unit: UnitOut
    position: Position | None
    devices: list[UnitDevice]
    separated: bool


class StatusIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new status; with `expected`, only if the current status is one of them (else 409). `why` is kept
    in the unit's status history."""

    status: UnitStatus
    expected: Annotated[list[UnitStatus], msgspec.Meta(max_length=16)] | None = None
    why: Reason = ""


class StatusOut(msgspec.Struct):
    """The unit's status after the change."""

    id: str
    status: str


class DeviceIn(msgspec.Struct, forbid_unknown_fields=True):
    """A body camera, phone, radio or tracker. Higher priority wins when fusing a unit's position from devices
    of equal quality. Its credentials are issued with it: the answer's `credentials.secret` is shown this
    once (MQTT password, HTTP secret). With `"credentials": false` none are issued, and the device is
    refused (`no_credentials`) until POST /v1/devices/{id}/credentials issues them. Ids reserved for the
    broker's service accounts (`outpost`, `outpost-admin`, and any beginning with `outpost-` or `$`) are
    refused (422). Bind the device to a unit with POST /v1/units/{id}/devices."""

    id: DeviceId
    kind: DeviceKind
    priority: DevicePriority = 0
    enabled: bool = True
    credentials: bool = True


class DevicePatch(msgspec.Struct, forbid_unknown_fields=True):
    """Fields to change on a device; enabled=false disables it (its credentials stop working, and it no
    longer moves its unit)."""

    kind: DeviceKind | msgspec.UnsetType = UNSET
    priority: DevicePriority | msgspec.UnsetType = UNSET
    enabled: bool | msgspec.UnsetType = UNSET


class DeviceOut(Device, frozen=True):
    """A device's registry record (the secret is never shown again; `has_credentials` says one exists)."""


class DeviceList(msgspec.Struct):
    """Devices by id; `next_after` pages."""

    devices: list[DeviceOut]
    next_after: str | None = None


class CredentialsOut(msgspec.Struct):
    """A device secret, shown this once; only its hash is stored. Use it as MQTT password or HTTP secret."""

    device_id: str
    username: str
    secret: str


class DeviceCreated(Device, frozen=True):
    """The registered device and, unless the request said `"credentials": false`, its secret (shown this
    once; only its hash is stored)."""

    credentials: CredentialsOut | None = None


class BindingIn(msgspec.Struct, forbid_unknown_fields=True):
    """Bind a device to the unit for a shift: [valid_from, valid_to); valid_from defaults to now."""

    device_id: DeviceId
    valid_from: datetime | None = None
    valid_to: datetime | None = None


class BindingOut(msgspec.Struct):
    """A device binding."""

    id: int
    device_id: str
    unit_id: str
    valid_from: datetime
    valid_to: datetime | None


class BindingList(msgspec.Struct):
    """Every binding of a unit, oldest first."""

    bindings: list[BindingOut]


class NearestUnit(msgspec.Struct):
    """One recommended unit, with why it was picked."""

    id: str
    distance_m: float
    eta_s: float
    eta_basis: str
    fix_age_s: float
    accuracy_m: float | None
    status: str
    kind: str
    skills: list[str]
    lon: float
    lat: float
    reason: str
    community_grid: GridRef | None = None
    police_grid: GridRef | None = None


class NearestQuery(msgspec.Struct):
    """The query as understood, defaults filled in."""

    lon: float
    lat: float
    k: int
    status: list[str] | None
    kind: list[str] | None
    skill: list[str]
    max_age_s: float | None
    radius_m: float | None
    max_accuracy_m: float | None


class NearestOut(msgspec.Struct):
    """The k nearest matching units, nearest first, and how many nearer ones were left out and why."""

    units: list[NearestUnit]
    excluded: dict[str, int]
    query: NearestQuery


class TokenIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new API token."""

    role: RoleName
    name: Name


class TokenOut(msgspec.Struct):
    """An API token's record; `token` is present only in the answer that creates it."""

    id: int
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None = None
    token: str | None = None


class TokenList(msgspec.Struct):
    """Every token, revoked ones included."""

    tokens: list[TokenOut]


class AuditEntryOut(msgspec.Struct):
    """Who read which location, when."""

    id: int | None
    at: datetime
    actor: str
    action: str
    subject: str
    detail: dict[str, Any] | None
    prev_hash: str | None = None  # the hash chain: `outpost audit verify` checks it
    hash: str | None = None


class AuditList(msgspec.Struct):
    """Audit entries, oldest first."""

    entries: list[AuditEntryOut]


class Health(msgspec.Struct):
    """Readiness."""

    status: str
    units_indexed: int


def set_fields(patch: msgspec.Struct) -> dict[str, Any]:
    """The fields a PATCH body sets (absent ones are UNSET and keep their stored value)."""
    return {f: getattr(patch, f) for f in patch.__struct_fields__ if getattr(patch, f) is not UNSET}
