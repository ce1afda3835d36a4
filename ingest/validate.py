"""Validation: a candidate becomes a `Fix` (perhaps flagged) or `Rejected` with every reason that fired.

Stateless rules live in ingest.rules. This module owns the per-device state the two stateful judgements
need: the newest accepted time (OUT_OF_ORDER) and a trusted reference position (IMPOSSIBLE_SPEED).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import msgspec

from geo.distance import haversine_m
from ingest.decode.model import Candidate
from ingest.decode.reasons import DECODE_REASONS
from ingest.device_info import DeviceInfo
from ingest.rules import FLAG_RULES, HARD_RULES, VALIDATE_REASONS, Facts
from ingest.settings import IngestSettings
from schemas.fix import NOT_FOR_DISPATCH, Fix, FixFlag

__all__ = ["REASONS", "DeviceInfo", "Rejected", "Validator", "implied_speed_mps"]

# Every reason a message can be dead-lettered for, so that metrics can pre-create their counters.
REASONS: tuple[str, ...] = tuple(dict.fromkeys(DECODE_REASONS + VALIDATE_REASONS))

# Many devices stamp fixes to the whole second: two fixes within one second are judged as 1 s apart
# rather than as infinitely fast.
MIN_SPEED_INTERVAL_S = 1.0
# Plain ints: IntFlag arithmetic costs about a microsecond per operation on the hot path.
_OUT_OF_ORDER = int(FixFlag.OUT_OF_ORDER)
_IMPOSSIBLE_SPEED = int(FixFlag.IMPOSSIBLE_SPEED)
_LOW_ACCURACY = int(FixFlag.LOW_ACCURACY)
# A fix the fleet would not move a unit with is no reference for the implied speed either.
_UNTRUSTED = NOT_FOR_DISPATCH


class Rejected(msgspec.Struct, gc=False):
    """A candidate that failed validation, with every reason that fired."""

    reasons: tuple[str, ...]
    device_id: str | None


@dataclass(slots=True)
class _Point:
    ts_s: float
    lon: float
    lat: float
    accuracy_m: float


@dataclass(slots=True)
class _Track:
    latest_ts_s: float  # newest accepted fix, whatever its flags
    reference: _Point | None = None  # newest trusted fix: the origin of the implied speed
    suspect: _Point | None = None  # the last fix flagged impossible


def implied_speed_mps(a: _Point, b: _Point) -> float:
    """Speed needed to get from a to b, allowing for both reported accuracies."""
    distance_m = haversine_m(a.lon, a.lat, b.lon, b.lat) - a.accuracy_m - b.accuracy_m
    return max(distance_m, 0.0) / max(abs(b.ts_s - a.ts_s), MIN_SPEED_INTERVAL_S)


class Validator:
    """Applies the rules; keeps per-device state to judge speed and order. Not thread-safe."""

    def __init__(self, settings: IngestSettings, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._tracks: dict[str, _Track] = {}

    def check(self, c: Candidate, device: DeviceInfo | None, received_at: datetime) -> Fix | Rejected:
        """Validate one candidate received at `received_at` (timezone-aware UTC)."""
        s = self._settings
        facts = Facts(c, device, c.ts.timestamp(), self._clock(), s)
        reasons = [reason for rule in HARD_RULES if (reason := rule(facts)) is not None]
        if reasons or device is None:
            return Rejected(reasons=tuple(reasons), device_id=c.device_id)
        flags = 0
        for flag_rule in FLAG_RULES:
            flags |= flag_rule(c, device, s)
        flags |= self._judge_track(c.device_id, _Point(facts.ts_s, c.lon, c.lat, c.accuracy_m or 0.0), flags)
        return Fix(
            device_id=c.device_id,
            ts=c.ts,
            lon=c.lon,
            lat=c.lat,
            received_at=received_at,
            unit_id=device.unit_id,
            accuracy_m=c.accuracy_m,
            speed_mps=c.speed_mps,
            heading_deg=c.heading_deg,
            altitude_m=c.altitude_m,
            battery_pct=c.battery_pct,
            seq=c.seq,
            flags=flags,
        )

    def seed(self, fixes: Iterable[Fix]) -> None:
        """Restore the per-device state from stored fixes (e.g. each device's latest) after a restart."""
        for fix in sorted(fixes, key=lambda f: f.ts):
            ts_s = fix.ts.timestamp()
            track = self._tracks.get(fix.device_id)
            if track is None:
                track = self._tracks[fix.device_id] = _Track(latest_ts_s=ts_s)
            track.latest_ts_s = max(track.latest_ts_s, ts_s)
            if not fix.flags & _UNTRUSTED:
                track.reference = _Point(ts_s, fix.lon, fix.lat, fix.accuracy_m or 0.0)

    def forget(self, device_id: str) -> None:
        """Drop a device's state (e.g. when it is deleted from the registry)."""
        self._tracks.pop(device_id, None)

    def _judge_track(self, device_id: str, point: _Point, flags: int) -> int:
        """OUT_OF_ORDER and IMPOSSIBLE_SPEED for this fix, and the device's state moved on."""
        track = self._tracks.get(device_id)
        if track is None:
            self._tracks[device_id] = _Track(
                latest_ts_s=point.ts_s, reference=None if flags & _UNTRUSTED else point
            )
            return 0
        found = 0
        in_order = point.ts_s >= track.latest_ts_s
        if not in_order:
            found |= _OUT_OF_ORDER
        else:
            track.latest_ts_s = point.ts_s
        if self._impossible(track, point, in_order):
            found |= _IMPOSSIBLE_SPEED
        elif in_order and not flags & _LOW_ACCURACY:
            track.reference, track.suspect = point, None
        return found

    def _impossible(self, track: _Track, point: _Point, in_order: bool) -> bool:
        """Too fast from the reference, unless the previous (flagged) fix agrees with this one.

        A single glitch is flagged and never becomes the reference. But a wrong reference (a bad fix after
        a restart, a long gap) must not lock a device out: two consecutive fixes that agree with each other
        outvote it.
        """
        limit = self._settings.max_speed_mps
        if track.reference is None or implied_speed_mps(track.reference, point) <= limit:
            return False
        suspect = track.suspect
        if in_order and suspect is not None and implied_speed_mps(suspect, point) <= limit:
            return False
        if in_order:
            track.suspect = point
        return True
