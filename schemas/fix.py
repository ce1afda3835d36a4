"""The accepted position (`Fix`) and the dead letter (`RejectedMessage`): what ingest hands to storage."""

from __future__ import annotations

from datetime import datetime
from enum import IntFlag

import msgspec


class FixFlag(IntFlag):
    """Why a stored fix is suspicious but real. Stored as an integer bitmask in `fixes.flags`."""

    NONE = 0
    LOW_ACCURACY = 1  # accuracy worse than the dispatch threshold: stored, never used for dispatch
    IMPOSSIBLE_SPEED = 2  # implied speed from the previous fix is impossible: stored, does not move the unit
    MOCK = 4  # the device says its location may be spoofed (Traccar Client `mock`, our `mock`)
    OUT_OF_ORDER = 8  # older than the device's latest fix: stored, never moves the unit backwards
    NO_UNIT = 16  # the device is bound to no unit at this time


# The one definition of "not usable for dispatch": fixes with any of these flags are stored and shown as the
# device's last fix but never move a unit (so never win a recommendation), are never read back to rebuild
# the picture, and are never the reference of the implied-speed check. A spoofed (mock) position is one of
# them. A plain int: IntFlag arithmetic costs ~1 µs an operation.
NOT_FOR_DISPATCH = int(FixFlag.LOW_ACCURACY | FixFlag.IMPOSSIBLE_SPEED | FixFlag.MOCK | FixFlag.OUT_OF_ORDER)


class Fix(msgspec.Struct, frozen=True, gc=False):
    """One validated position of one device, in SI units and UTC. Coordinates are lon, lat."""

    device_id: str
    ts: datetime  # when the device took the fix, timezone-aware UTC
    lon: float
    lat: float
    received_at: datetime  # when Outpost received it, timezone-aware UTC
    unit_id: str | None = None
    accuracy_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    altitude_m: float | None = None
    battery_pct: float | None = None
    seq: int | None = None
    flags: int = 0
    # Taken while its unit was off duty: stored for the record, never in the live picture, and read back
    # only by an admin who states a reason (the README's privacy section).
    restricted: bool = False


# A bounded dead letter: never store an unbounded attacker-controlled payload.
MAX_RAW_PAYLOAD_BYTES = 4096


class RejectedMessage(msgspec.Struct, frozen=True, gc=False):
    """A message that failed validation, with every reason that fired."""

    received_at: datetime
    source: str  # the MQTT topic or the HTTP endpoint it came in on
    reasons: tuple[str, ...]
    raw: bytes  # truncated to MAX_RAW_PAYLOAD_BYTES
    device_id: str | None = None
