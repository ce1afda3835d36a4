"""Arrival and departure detection from telemetry (pure: no I/O, no await).

The watch holds each engaged unit's incident location. On every move of a watched unit it answers one
question: did this move make the unit arrive (within `arrival_radius_m` of the incident) or leave (further
than `departure_distance_m` from where it accepted)? A unit already reported is not reported again until
the service confirms the step (`advance`) or gives up (`forget`).
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatch.incidents.states import Event
from geo.distance import haversine_m


@dataclass
class Watched:
    """One engaged unit being watched."""

    incident_id: str
    incident_lon: float
    incident_lat: float
    step: str  # the unit's engagement state: assigned or en_route
    from_lon: float | None = None  # where it accepted (departure is measured from here)
    from_lat: float | None = None
    reported: Event | None = None  # a detected step the service has not confirmed yet


@dataclass(frozen=True)
class Detection:
    """A unit's step detected from its position."""

    incident_id: str
    unit_id: str
    event: Event  # ARRIVE or EN_ROUTE
    distance_m: float
    reason: str


class ArrivalWatch:
    """Engaged units and where they are going."""

    def __init__(self, arrival_radius_m: float, departure_distance_m: float) -> None:
        self.arrival_radius_m = arrival_radius_m
        self.departure_distance_m = departure_distance_m
        self._units: dict[str, Watched] = {}

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self._units

    def watch(self, unit_id: str, watched: Watched) -> None:
        """Start (or restart) watching a unit that accepted an incident."""
        self._units[unit_id] = watched

    def forget(self, unit_id: str) -> None:
        """Stop watching (the unit arrived or was released)."""
        self._units.pop(unit_id, None)

    def advance(self, unit_id: str, step: str) -> None:
        """The service recorded the unit's step; keep watching for the next one."""
        watched = self._units.get(unit_id)
        if watched is not None:
            watched.step = step
            watched.reported = None

    def retry(self, unit_id: str) -> None:
        """The reported step could not be recorded; report it again on the next move."""
        watched = self._units.get(unit_id)
        if watched is not None:
            watched.reported = None

    def check(self, unit_id: str, lon: float, lat: float) -> Detection | None:
        """The step this position shows, if any and not yet reported."""
        watched = self._units.get(unit_id)
        if watched is None or watched.reported is not None:
            return None
        to_incident_m = haversine_m(lon, lat, watched.incident_lon, watched.incident_lat)
        if to_incident_m <= self.arrival_radius_m:
            watched.reported = Event.ARRIVE
            radius = f"{self.arrival_radius_m:g} m"
            reason = f"detected on scene: {to_incident_m:.0f} m from the incident (radius {radius})"
            return Detection(watched.incident_id, unit_id, Event.ARRIVE, to_incident_m, reason)
        if watched.step != "assigned" or self.departure_distance_m <= 0 or watched.from_lon is None:
            return None
        assert watched.from_lat is not None
        moved_m = haversine_m(lon, lat, watched.from_lon, watched.from_lat)
        if moved_m < self.departure_distance_m:
            return None
        watched.reported = Event.EN_ROUTE
        reason = f"detected en route: moved {moved_m:.0f} m from where it accepted"
        return Detection(watched.incident_id, unit_id, Event.EN_ROUTE, moved_m, reason)
