"""A unit's position fused from its devices (`geo.fuse`), and whether its devices have come apart.

Fusion is judged as of the unit's own newest fix, not the wall clock, so the same fixes always give the same
position, live or rebuilt after a restart; staleness is the nearest query's business (`max_age_s`).
"""

from __future__ import annotations

from collections.abc import Mapping

import geo
from dispatch.live.events import DevicesSeparated
from dispatch.live.state import KIND_PRIORITY, DeviceState, UnitState
from dispatch.settings import ApiSettings
from schemas.fix import Fix


def fused(
    unit: UnitState, devices: Mapping[str, DeviceState], settings: ApiSettings
) -> tuple[geo.UnitPosition | None, dict[str, geo.DeviceFix]]:
    """The unit's fused position (None without a usable fix) and each enabled device's usable fix."""
    if len(unit.devices) == 1:
        # Most units carry one device: nothing to fuse, so skip building the fusion inputs.
        (device_id,) = unit.devices
        device = devices[device_id]
        f = device.usable_fix
        if f is None or not device.enabled:
            return None, {}
        return _position(unit, f, f.lon, f.lat, device.usable_ts_s, f.accuracy_m, device_id), {}
    latest = _latest_by_device(unit, devices)
    if not latest:
        return None, latest
    if len(latest) == 1:
        (chosen,) = latest.values()
    else:
        s = settings
        priorities = {d: KIND_PRIORITY.get(devices[d].kind, 0) + devices[d].priority for d in latest}
        newest_s = max(f.ts_s for f in latest.values())
        chosen = geo.fuse(
            latest,
            newest_s,
            priorities,
            max_age_s=s.fusion_max_age_s,
            recency_window_s=s.fusion_recency_window_s,
            max_accuracy_m=s.fusion_max_accuracy_m,
        ) or max(latest.values(), key=lambda f: f.ts_s)
    fix = devices[chosen.device_id].usable_fix
    assert fix is not None
    c = chosen
    return _position(unit, fix, c.lon, c.lat, c.ts_s, c.accuracy_m, c.device_id), latest


def _position(
    unit: UnitState, fix: Fix, lon: float, lat: float, ts_s: float, accuracy_m: float | None, device_id: str
) -> geo.UnitPosition:
    return geo.UnitPosition(
        unit.id,
        lon,
        lat,
        ts_s,
        accuracy_m,
        unit.status,
        unit.kind,
        unit.skills,
        fix.speed_mps,
        fix.heading_deg,
        device_id,
    )


def _latest_by_device(unit: UnitState, devices: Mapping[str, DeviceState]) -> dict[str, geo.DeviceFix]:
    latest: dict[str, geo.DeviceFix] = {}
    for device_id in unit.devices:
        device = devices[device_id]
        fix = device.usable_fix
        if fix is not None and device.enabled:
            # fuse ranks by priorities[device_kind]; priority is per device here (kind default plus the
            # device's own), so the device id is used as the ranking key.
            latest[device_id] = geo.DeviceFix(
                device_id, fix.lon, fix.lat, device.usable_ts_s, fix.accuracy_m, device_id
            )
    return latest


def separation_news(
    unit: UnitState, latest: dict[str, geo.DeviceFix], settings: ApiSettings
) -> DevicesSeparated | None:
    """Follow the unit's devices apart and together (updating `unit`); the event when that changed."""
    s = settings
    pairs = geo.separation(latest, s.separation_threshold_m, s.fusion_max_age_s) if len(latest) > 1 else []
    newest_s = max((f.ts_s for f in latest.values()), default=0.0)
    if not pairs:
        was_separated = unit.separated
        unit.apart_since_s = None
        unit.separated = False
        if was_separated:
            a, b = sorted(latest)[:2] if len(latest) > 1 else (next(iter(latest), ""), "")
            return DevicesSeparated(unit.id, a, b, 0.0, newest_s, separated=False)
        return None
    if unit.apart_since_s is None:
        unit.apart_since_s = newest_s
    if not unit.separated and newest_s - unit.apart_since_s >= s.separation_hold_s:
        unit.separated = True
        a, b, distance_m = pairs[0]
        return DevicesSeparated(unit.id, a, b, distance_m, newest_s, separated=True)
    return None
