"""One unit, several devices (body cam, phone, radio): the position to trust, devices left behind."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from typing import NamedTuple

from geo.distance import haversine_m


class DeviceFix(NamedTuple):
    """The latest fix of one device of a unit."""

    device_id: str
    lon: float
    lat: float
    ts_s: float
    accuracy_m: float | None
    device_kind: str


def fuse(
    latest_by_device: Mapping[str, DeviceFix],
    now_s: float,
    priorities: Mapping[str, int],
    *,
    max_age_s: float = 60.0,
    recency_window_s: float = 15.0,
    max_accuracy_m: float = 100.0,
) -> DeviceFix | None:
    """The fix that best represents the unit now, or None when every fix is stale.

    The rule, applied in order:
    1. Stale fixes (now_s - ts_s > max_age_s) never win, whatever their device.
    2. Fixes with accuracy_m over max_accuracy_m only compete when no fresh fix is that accurate. Unknown
       accuracy counts as acceptable: many radios never report it.
    3. Only fixes within recency_window_s of the newest remaining one compete: a body cam fix 50 s old loses
       to a phone fix 1 s old, since the unit may have driven half a kilometre since.
    4. Among those, the higher priorities[device_kind] wins (a missing kind has priority 0), then the smaller
       accuracy_m (unknown last), then the newer fix, then the smaller device_id (so the choice is stable).

    Defaults: max_age_s 60 s (raising it lets a silent device's old position stand in longer);
    recency_window_s 15 s (raising it favours priority over freshness); max_accuracy_m 100 m (raising it
    lets coarse cell-tower fixes beat finer fixes of other devices).
    """
    fresh = [f for f in latest_by_device.values() if now_s - f.ts_s <= max_age_s]
    accurate = [f for f in fresh if f.accuracy_m is None or f.accuracy_m <= max_accuracy_m]
    pool = accurate or fresh
    if not pool:
        return None
    newest_s = max(f.ts_s for f in pool)
    recent = [f for f in pool if newest_s - f.ts_s <= recency_window_s]

    def rank(f: DeviceFix) -> tuple[int, float, float, str]:
        accuracy_m = math.inf if f.accuracy_m is None else f.accuracy_m
        return -priorities.get(f.device_kind, 0), accuracy_m, -f.ts_s, f.device_id

    return min(recent, key=rank)


def separation(
    latest_by_device: Mapping[str, DeviceFix],
    threshold_m: float,
    max_age_s: float,
    *,
    now_s: float | None = None,
) -> list[tuple[str, str, float]]:
    """Pairs of recent devices of one unit that are clearly apart: (device_a, device_b, distance_m).

    Recent means now_s - ts_s <= max_age_s, or, without now_s, within max_age_s of the newest fix. A pair
    is reported when distance_m exceeds threshold_m plus both accuracy radii (unknown accuracy counts as
    0), so two poor fixes of devices side by side raise no alarm. Keep max_age_s short next to
    threshold_m / speed: devices sample at different moments, and a moving unit spreads its fixes out.
    Ordered farthest first, device_a < device_b.
    """
    fixes = list(latest_by_device.values())
    if not fixes:
        return []
    reference_s = now_s if now_s is not None else max(f.ts_s for f in fixes)
    recent = sorted((f for f in fixes if reference_s - f.ts_s <= max_age_s), key=lambda f: f.device_id)
    pairs: list[tuple[str, str, float]] = []
    for a, b in itertools.combinations(recent, 2):
        distance_m = haversine_m(a.lon, a.lat, b.lon, b.lat)
        slack_m = (a.accuracy_m or 0.0) + (b.accuracy_m or 0.0)
        if distance_m > threshold_m + slack_m:
            pairs.append((a.device_id, b.device_id, distance_m))
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    return pairs
