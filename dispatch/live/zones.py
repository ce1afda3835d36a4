"""Which grids and geofences each unit is in, followed from the index's change records.

`ZoneTracker.observe(change)` turns one `geo.Change(old, new)` into the unit's enter and exit events
(`geo.transitions`, on the segment between the two positions) and keeps, per unit, its police and community
grid and what it is inside since when. The hot path is one comparison: after every full look-up the tracker
keeps a disc around the unit's position that no border crosses (`clearance_deg`); while the next position
stays inside that disc, so does the whole segment to it, and nothing can have changed. Only a unit leaving
its disc costs a look-up. Pure: no I/O; `dispatch.patrol` feeds it and publishes what it returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import geo
from geo.fences import Fence
from geo.grids import GridIndex, Location
from geo.transitions import transitions
from geo.zones import Crossing, ZoneSet

# The largest disc kept around a unit (lon/lat degrees, ≈ 330 m north-south): a bigger one would be crossed
# less often but computing it reads more borders; units far from every border pay one look-up per 330 m.
CLEARANCE_CAP_DEG = 0.003

Area = Literal["grid", "fence"]


class ZoneEvent(NamedTuple):
    """A unit entered or left a grid or a geofence, at `at_s` (interpolated along the segment), there."""

    unit_id: str
    area: Area
    zone_id: str
    kind: Literal["enter", "exit", "dwell"]
    at_s: float
    lon: float
    lat: float


@dataclass(slots=True)
class Seen:
    """What the tracker knows of one unit: where it was last looked up, its disc, what it is inside."""

    lon: float
    lat: float
    r2: float  # squared radius of the disc no border crosses (degrees²)
    location: Location
    since: dict[tuple[Area, str], float] = field(default_factory=dict)  # (area, id) -> inside since (s)
    dwelt: set[str] = field(default_factory=set)  # fences whose dwell was told for this stay


class ZoneTracker:
    """Each unit's grids and geofences, from the change records; see the module docstring."""

    def __init__(self, grids: GridIndex, fences: ZoneSet[Fence]) -> None:
        self.grids, self.fences = grids, fences
        self._seen: dict[str, Seen] = {}

    @property
    def empty(self) -> bool:
        """Whether there is nothing to be inside (no grid, no fence): then nothing need be followed."""
        return len(self.grids) == 0 and len(self.fences) == 0

    def seen(self, unit_id: str) -> Seen | None:
        """What is known of the unit (None: not in the index)."""
        return self._seen.get(unit_id)

    def units(self) -> Iterator[tuple[str, Seen]]:
        """Every unit followed, with what is known of it."""
        return iter(self._seen.items())

    def location(self, unit_id: str, lon: float, lat: float) -> Location:
        """The unit's police and community grid at (lon, lat): from its disc if inside it, else looked up."""
        seen = self._seen.get(unit_id)
        if seen is not None and (lon - seen.lon) ** 2 + (lat - seen.lat) ** 2 < seen.r2:
            return seen.location
        return self.grids.locate(lon, lat)

    def observe(self, change: geo.Change) -> list[ZoneEvent]:
        """The enters and exits of one change record, in order; the unit's state follows."""
        old, new = change
        if new is None:
            gone = self._seen.pop(old.unit_id, None) if old is not None else None
            if old is None or gone is None:
                return []
            return [
                ZoneEvent(old.unit_id, area, zone_id, "exit", old.ts_s, old.lon, old.lat)
                for area, zone_id in sorted(gone.since)
            ]
        seen = self._seen.get(new.unit_id)
        if seen is not None and (new.lon - seen.lon) ** 2 + (new.lat - seen.lat) ** 2 < seen.r2:
            return []  # the hot path: still inside the disc no border crosses
        start = (old.lon, old.lat) if old is not None and seen is not None else None
        events = self._events(new, old if start is not None else None, start)
        self._seen[new.unit_id] = self._look_up(new.lon, new.lat, seen, events, new.ts_s)
        return events

    def _events(
        self, new: geo.UnitPosition, old: geo.UnitPosition | None, start: tuple[float, float] | None
    ) -> list[ZoneEvent]:
        end = (new.lon, new.lat)
        found: list[tuple[Area, Crossing]] = [("grid", c) for c in transitions(self.grids, start, end)]
        found += [("fence", c) for c in transitions(self.fences, start, end)]
        found.sort(key=lambda ac: (ac[1].fraction, ac[1].kind != "exit", ac[0], ac[1].grid_id))
        out = []
        for area, c in found:
            if old is None:
                at_s, lon, lat = new.ts_s, new.lon, new.lat
            else:
                f = c.fraction
                at_s = old.ts_s + (new.ts_s - old.ts_s) * f
                lon, lat = old.lon + (new.lon - old.lon) * f, old.lat + (new.lat - old.lat) * f
            out.append(ZoneEvent(new.unit_id, area, c.grid_id, c.kind, at_s, lon, lat))
        return out

    def _look_up(
        self, lon: float, lat: float, before: Seen | None, events: list[ZoneEvent], now_s: float
    ) -> Seen:
        since = dict(before.since) if before is not None else {}
        for e in events:
            if e.kind == "enter":
                since[(e.area, e.zone_id)] = e.at_s
            else:
                since.pop((e.area, e.zone_id), None)
        inside: set[tuple[Area, str]] = {("grid", g) for g in self.grids.covering_ids(lon, lat)}
        inside |= {("fence", f) for f in self.fences.covering_ids(lon, lat)}
        # What the point says wins over what the segment said (they agree but for borders' last digits).
        since = {key: since.get(key, now_s) for key in inside}
        dwelt = {f for f in before.dwelt if ("fence", f) in since} if before is not None else set()
        r = min(
            self.grids.clearance_deg(lon, lat, CLEARANCE_CAP_DEG),
            self.fences.clearance_deg(lon, lat, CLEARANCE_CAP_DEG),
        )
        return Seen(lon, lat, r * r, self.grids.locate(lon, lat), since, dwelt)

    def reload(self, grids: GridIndex, fences: ZoneSet[Fence], now_s: float) -> list[ZoneEvent]:
        """Use new grids and fences: every unit followed is looked up again where it is, and what it is now
        inside (or no longer) is an enter (or exit) at `now_s`."""
        self.grids, self.fences = grids, fences
        events = []
        for unit_id, seen in list(self._seen.items()):
            fresh = self._look_up(seen.lon, seen.lat, None, [], now_s)
            for key in sorted(seen.since.keys() - fresh.since.keys()):
                events.append(ZoneEvent(unit_id, key[0], key[1], "exit", now_s, seen.lon, seen.lat))
            for key in sorted(fresh.since.keys() - seen.since.keys()):
                events.append(ZoneEvent(unit_id, key[0], key[1], "enter", now_s, seen.lon, seen.lat))
            fresh.since.update({k: v for k, v in seen.since.items() if k in fresh.since})
            fresh.dwelt = {f for f in seen.dwelt if ("fence", f) in fresh.since}
            self._seen[unit_id] = fresh
        return events

    def dwells(self, now_s: float) -> list[ZoneEvent]:
        """A `dwell` event for each unit inside a geofence for its dwell time or longer, once a stay."""
        events = []
        for unit_id, seen in self._seen.items():
            for (area, zone_id), since_s in seen.since.items():
                if area != "fence" or zone_id in seen.dwelt or zone_id not in self.fences:
                    continue
                if now_s - since_s >= self.fences.get(zone_id).dwell_s:
                    seen.dwelt.add(zone_id)
                    events.append(ZoneEvent(unit_id, area, zone_id, "dwell", now_s, seen.lon, seen.lat))
        return events
