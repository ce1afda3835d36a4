"""Which status a unit's own device may give it, from which: pure rules, no I/O.

A device speaks for its officer's duty: coming on duty, a break, busy with something that is not an
incident, going off duty. It never speaks for the incident loop: a unit offered, assigned, en route or on
scene leaves that only by answering, resolving or a dispatcher (so a phone cannot make a unit on an
incident `available`), and `out_of_service` is a dispatcher's call.
"""

from __future__ import annotations

from typing import NamedTuple

ON_INCIDENT = frozenset({"offered", "assigned", "en_route", "on_scene"})
ON_DUTY = frozenset({"available", "busy", "break"})
# The unit status each reported status asks for.
TARGET = {
    "on_duty": "available",
    "off_duty": "off_duty",
    "available": "available",
    "busy": "busy",
    "break": "break",
}
# From each status a device may move its unit to these.
ALLOWED: dict[str, frozenset[str]] = {
    "off_duty": frozenset({"available"}),
    "available": frozenset({"off_duty", "busy", "break"}),
    "busy": frozenset({"available", "off_duty", "break"}),
    "break": frozenset({"available", "busy", "off_duty"}),
}

UNIT_ON_INCIDENT = "unit_on_incident"
UNIT_OUT_OF_SERVICE = "unit_out_of_service"
TRANSITION_NOT_ALLOWED = "transition_not_allowed"


class Verdict(NamedTuple):
    """The status to set (None: keep it as it is), or why not."""

    target: str | None
    refused: str | None
    detail: str


def judge(current: str, reported: str) -> Verdict:
    """What a device reporting `reported` (a DeviceStatus) does to a unit that is `current`."""
    if reported == "on_duty" and (current in ON_DUTY or current in ON_INCIDENT):
        return Verdict(None, None, f"already on duty ({current})")
    target = TARGET[reported]
    if target == current:
        return Verdict(None, None, f"already {current}")
    if current in ON_INCIDENT:
        return Verdict(None, UNIT_ON_INCIDENT, f"unit is {current}: resolve the incident first")
    if current == "out_of_service":
        return Verdict(None, UNIT_OUT_OF_SERVICE, "unit is out of service: a dispatcher brings it back")
    if target not in ALLOWED.get(current, frozenset()):
        return Verdict(None, TRANSITION_NOT_ALLOWED, f"{current} cannot go {target} from the device")
    return Verdict(target, None, f"{current} → {target}")
