"""The alerts raised now, and who acknowledged them: what `GET /v1/alerts` lists and
`POST /v1/alerts/{id}/acknowledge` marks, for every screen at once.

An alert is a patrol or health event `<kind>.raised` (out of grid, coverage gap, device offline, low
battery), named by its event id; the `<kind>.cleared` of the same subject (the unit, the grid, the device)
takes it off the list. Acknowledging says a dispatcher has seen it: the alert stays raised until the watch
clears it, and the acknowledgement goes out as an `alert.acknowledged` event so that every console shows it.
Pure bookkeeping, no I/O: the patrol watch feeds it the events it publishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Each alert kind and the field naming what it is about (one alert of a kind per subject at a time).
SUBJECT_OF: dict[str, str] = {
    "out_of_grid": "unit_id",
    "coverage_gap": "grid_id",
    "device_offline": "device_id",
    "battery_low": "device_id",
}


@dataclass
class RaisedAlert:
    """One alert raised now: its event, and its acknowledgement once given."""

    event: dict[str, Any]
    acknowledged_by: str | None = None
    acknowledged_at: Any = None


class RaisedAlerts:
    """Alerts by event id, following the raised and cleared events it is given."""

    def __init__(self) -> None:
        self._by_id: dict[str, RaisedAlert] = {}
        self._by_subject: dict[tuple[str, Any], str] = {}

    def note(self, event: dict[str, Any]) -> None:
        """Follow one published event (anything but an alert's raise or clear is ignored)."""
        kind, _, change = str(event.get("type", "")).partition(".")
        field = SUBJECT_OF.get(kind)
        if field is None or change not in ("raised", "cleared"):
            return
        subject = (kind, event.get(field))
        previous = self._by_subject.pop(subject, None)
        if previous is not None:
            self._by_id.pop(previous, None)
        if change == "raised":
            self._by_id[event["id"]] = RaisedAlert(event)
            self._by_subject[subject] = event["id"]

    def raised(self) -> list[RaisedAlert]:
        """Every alert raised now, oldest first."""
        return sorted(self._by_id.values(), key=lambda a: a.event["at"])

    def acknowledge(self, alert_id: str, actor: str, at: Any) -> tuple[RaisedAlert | None, bool]:
        """Mark the alert seen by `actor`: the alert (None when it is not raised) and whether this was its
        first acknowledgement (a later one changes nothing)."""
        alert = self._by_id.get(alert_id)
        if alert is None or alert.acknowledged_by is not None:
            return alert, False
        alert.acknowledged_by, alert.acknowledged_at = actor, at
        return alert, True
