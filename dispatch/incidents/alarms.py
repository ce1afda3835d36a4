"""A device's alarm (SOS) as an incident report, validated like an HTTP body.

Building `IncidentIn(...)` directly skips msgspec's constraints (a latitude of 500 would be stored and
break every nearest query later); `msgspec.convert` applies them.
"""

from __future__ import annotations

import logging
import math
import re
from typing import TYPE_CHECKING

import msgspec

from dispatch.incidents.models import IncidentIn
from dispatch.incidents.service import DeviceReply, IncidentService
from dispatch.patrol.messages import alarm_event
from dispatch.problems import InvalidParameter
from schemas.values import NOT_IN_TEXT

if TYPE_CHECKING:
    from dispatch.fleet import Fleet

log = logging.getLogger(__name__)

ALARM_CATEGORY = "officer_alarm"
ALARM_PRIORITY = "P1"
_DESCRIPTION_MAX = 4000  # IncidentIn.description's limit: a long alarm text is cut, never refused
_FIELD = re.compile(r"at `\$\.(\w+)")
_UNUSABLE = re.compile(f"[{NOT_IN_TEXT}]")


def alarm_report(device_id: str, lon: float, lat: float, description: str | None) -> IncidentIn:
    """The P1 officer-alarm report of `device_id` at (lon, lat); InvalidParameter names a bad field."""
    raw = {
        "lon": lon,
        "lat": lat,
        "category": ALARM_CATEGORY,
        "priority": ALARM_PRIORITY,
        "source": "device_alarm",
        "description": (description or "SOS")[:_DESCRIPTION_MAX],
        "reporter": f"device:{device_id}",
    }
    try:
        return msgspec.convert(raw, IncidentIn)
    except msgspec.ValidationError as exc:
        found = _FIELD.search(str(exc))
        raise InvalidParameter(found.group(1) if found else "alarm", str(exc)) from exc


class AlarmIn(msgspec.Struct):
    """What a device's alarm message may carry (all optional: an SOS button sends nothing)."""

    lon: float | None = None
    lat: float | None = None
    description: str = ""


def usable_text(text: str) -> str:
    """`text` without the control characters no record may hold (NUL above all); tabs and line breaks stay."""
    return _UNUSABLE.sub("", text)


def _usable_position(lon: float | None, lat: float | None) -> tuple[float, float] | None:
    if lon is None or lat is None or not (math.isfinite(lon) and math.isfinite(lat)):
        return None
    return (lon, lat) if -180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0 else None


async def raise_alarm(
    incidents: IncidentService, fleet: Fleet, device_id: str, payload: bytes
) -> DeviceReply:
    """A body camera's SOS button: a P1 incident at the alarm's position, or its unit's last position.

    An alarm is never lost to what is wrong in it: a malformed body, an unusable position or text are set
    aside (the text cleaned) and the incident raised from what is usable. With no position at all, sent or
    known, nobody can be sent, but the dispatchers still get the priority `device.alarm` event."""
    try:
        alarm = msgspec.json.decode(payload or b"{}", type=AlarmIn)
    except (msgspec.DecodeError, msgspec.ValidationError):
        alarm = AlarmIn()  # an SOS is never refused for a malformed body: the unit's position still counts
    description = usable_text(alarm.description)
    place = _usable_position(alarm.lon, alarm.lat)
    if place is None and (alarm.lon, alarm.lat) != (None, None):
        description = f"{description} (the alarm's own position was unusable: {alarm.lon}, {alarm.lat})"
    device = fleet.device(device_id)
    unit_id, now_s = device.unit_id if device else None, incidents.deps.clock.now()
    if place is None and unit_id is not None:
        position = fleet.position(unit_id)
        if position is not None:
            place = (position.lon, position.lat)
    if place is None:
        log.error("alarm without a position from device %s: nobody can be sent", device_id)
        incidents.deps.bus.publish(alarm_event(device_id, unit_id, None, None, description, None, now_s))
        return DeviceReply(False, "alarm without a position (none sent, none known for the unit)")
    report = alarm_report(device_id, *place, description)
    created = await incidents.create(report, actor=f"device:{device_id}")
    event = alarm_event(device_id, unit_id, *place, report.description, created.id, now_s)
    incidents.deps.bus.publish(event)  # the priority event `device.alarm` (dispatch.patrol.messages)
    return DeviceReply(True, f"incident {created.id} raised ({created.state})")
