"""The patrol watch's events as the event bus carries them, and as MQTT messages on `outpost/v1/events/…`.

Every event is a dict with its `type`, an `id` (a UUID naming it, the same on the stream and on MQTT, so a
client hearing both can tell one event from two), the `at` time (ISO 8601 UTC) it happened and what it is
about; on the stream it also has the bus's increasing `id:` line like every other event:

- `grid.entered`, `grid.exited`: `unit_id`, `grid_id`, `grid_name`, `level`, `lon`, `lat` (where along
  the segment between two fixes the border was crossed, and `at` interpolated between their times).
- `geofence.entered`, `geofence.exited`, `geofence.dwell`: `unit_id`, `fence_id`, `fence_name`, `lon`, `lat`.
- `out_of_grid.raised`, `out_of_grid.cleared`: `unit_id`, `grid_id`, `distance_m`, `reason`.
- `coverage_gap.raised`, `coverage_gap.cleared`: `grid_id`, `unit_id` (its holder), `reason`.
- `device_offline.raised`, `device_offline.cleared`: `device_id`, `unit_id`, `reason`, `last_fix_at`,
  `limit_s`, `usual_interval_s`, `battery_pct`.
- `battery_low.raised`, `battery_low.cleared`: `device_id`, `unit_id`, `reason`, `battery_pct`.
- `device.alarm` (`priority` P1): `device_id`, `unit_id`, `incident_id`, `lon`, `lat`, `description`.
- `alert.acknowledged`: `alert_id` (the raise event's `id`), `alert_type`, `by`
  (`POST /v1/alerts/{id}/acknowledge`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from dispatch.live.coverage import Gap
from dispatch.live.health import HealthAlert
from dispatch.live.out_of_grid import Alert
from dispatch.live.zones import ZoneEvent, ZoneTracker
from dispatch.patrol.alerts import RaisedAlert
from schemas.topics import event_topic

Event = dict[str, Any]

_ZONE_TYPES = {
    ("grid", "enter"): "grid.entered",
    ("grid", "exit"): "grid.exited",
    ("fence", "enter"): "geofence.entered",
    ("fence", "exit"): "geofence.exited",
    ("fence", "dwell"): "geofence.dwell",
}
PATROL_EVENT_TYPES = frozenset(
    [
        *_ZONE_TYPES.values(),
        "out_of_grid.raised",
        "out_of_grid.cleared",
        "coverage_gap.raised",
        "coverage_gap.cleared",
        "device_offline.raised",
        "device_offline.cleared",
        "battery_low.raised",
        "battery_low.cleared",
        "device.alarm",
        "alert.acknowledged",
    ]
)


def utc_of(ts_s: float) -> datetime:
    """An epoch time as an aware UTC datetime."""
    return datetime.fromtimestamp(ts_s, UTC)


def _head(kind: str, at_s: float) -> Event:
    return {"type": kind, "id": str(uuid.uuid4()), "at": utc_of(at_s)}


def zone_event(e: ZoneEvent, zones: ZoneTracker) -> Event:
    """A grid or geofence event for the bus."""
    body = _head(_ZONE_TYPES[(e.area, e.kind)], e.at_s) | {"unit_id": e.unit_id}
    if e.area == "grid":
        known = e.zone_id in zones.grids
        grid = zones.grids.get(e.zone_id) if known else None
        body.update(grid_id=e.zone_id, grid_name=grid.name if grid else None, level=grid and grid.level)
    else:
        fence = zones.fences.get(e.zone_id) if e.zone_id in zones.fences else None
        body.update(fence_id=e.zone_id, fence_name=fence.name if fence else None)
    body.update(lon=e.lon, lat=e.lat)
    return body


def alert_event(a: Alert) -> Event:
    """An out-of-grid alert for the bus."""
    return _head(f"out_of_grid.{a.kind}", a.at_s) | {
        "unit_id": a.unit_id,
        "grid_id": a.grid_id,
        "distance_m": None if a.distance_m is None else round(a.distance_m, 1),
        "reason": a.reason,
    }


def acknowledged_event(alert: RaisedAlert, at_s: float) -> Event:
    """A dispatcher acknowledged a raised alert (every console marks it seen)."""
    return _head("alert.acknowledged", at_s) | {
        "alert_id": alert.event["id"],
        "alert_type": alert.event["type"],
        "by": alert.acknowledged_by,
    }


def gap_event(g: Gap) -> Event:
    """A coverage gap for the bus."""
    return _head(f"coverage_gap.{g.kind}", g.at_s) | {
        "grid_id": g.grid_id,
        "unit_id": g.unit_id,
        "reason": g.reason,
    }


def health_event(a: HealthAlert) -> Event:
    """A device health alert (offline, low battery) for the bus."""
    body = _head(f"{a.kind}.{a.change}", a.at_s) | {
        "device_id": a.device_id,
        "unit_id": a.unit_id,
        "reason": a.reason,
        "battery_pct": a.battery_pct,
    }
    if a.kind == "device_offline":
        usual = a.usual_interval_s
        body.update(
            last_fix_at=None if a.last_fix_s is None else utc_of(a.last_fix_s),
            limit_s=a.limit_s,
            usual_interval_s=None if usual is None else round(usual, 1),
        )
    return body


def alarm_event(
    device_id: str,
    unit_id: str | None,
    lon: float | None,
    lat: float | None,
    description: str,
    incident_id: str | None,
    at_s: float,
) -> Event:
    """A device's alarm (SOS) for the bus: a priority event for the dispatchers, beside its P1 incident
    (none, and no position, when the alarm had no position and none was known for its unit)."""
    return _head("device.alarm", at_s) | {
        "priority": "P1",
        "device_id": device_id,
        "unit_id": unit_id,
        "incident_id": incident_id,
        "lon": lon,
        "lat": lat,
        "description": description or "SOS",
    }


def event_messages(event: Event) -> list[tuple[str, bytes]]:
    """(topic, payload) of a bus event for MQTT `outpost/v1/events/{type}`; empty for other events."""
    kind = event.get("type")
    if kind not in PATROL_EVENT_TYPES:
        return []
    return [(event_topic(str(kind)), msgspec.json.encode(event))]
