"""A device's alarm (SOS) as an incident report, validated like an HTTP body.

Building `IncidentIn(...)` directly skips msgspec's constraints (a latitude of 500 would be stored and
break every nearest query later); `msgspec.convert` applies them.
"""

from __future__ import annotations

import re

import msgspec

from dispatch.incidents.models import IncidentIn
from dispatch.problems import InvalidParameter

ALARM_CATEGORY = "officer_alarm"
ALARM_PRIORITY = "P1"
_DESCRIPTION_MAX = 4000  # IncidentIn.description's limit: a long alarm text is cut, never refused
_FIELD = re.compile(r"at `\$\.(\w+)")


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
