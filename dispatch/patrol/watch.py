"""The patrol watch's adapter: store reads, the fleet's change records, the app clock, the event bus.

It holds the grids, the geofences and who holds which grid now; the fleet's `ZoneTracker` follows every
change record (only while there is a grid or a fence: otherwise it does not even subscribe, so the hot
path is what it was). `check` runs every `patrol_check_s` on the app clock: it re-reads the assignments,
judges every assigned unit (out of grid) and grid (coverage) at the clock's time, tells fence dwells and
has `health` (`dispatch.patrol.health`: devices offline, low batteries) judge; tests call it after moving a
manual clock. `reload` re-reads grids and fences: at once after a change
through the API, every `zones_refresh_s` for imports made by another process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

import geo
from dispatch.blocking import run_db
from dispatch.clock import Clock
from dispatch.events import EventBus
from dispatch.fleet import Fleet
from dispatch.live.coverage import Coverage
from dispatch.live.out_of_grid import INCIDENT_STATUSES, OFF_DUTY_STATUSES, OutOfGrid
from dispatch.patrol.alerts import RaisedAlert, RaisedAlerts
from dispatch.patrol.health import HealthWatch
from dispatch.patrol.messages import acknowledged_event, alert_event, gap_event, health_event, zone_event
from dispatch.problems import Unavailable
from dispatch.settings import ApiSettings
from geo.grids import GridIndex
from geo.zones import ZoneSet
from store import duty, fences, grids

log = logging.getLogger(__name__)


class Patrol:
    """Grid and fence events, out-of-grid alerts and coverage gaps; see the module docstring."""

    def __init__(
        self, engine: Engine, fleet: Fleet, bus: EventBus, clock: Clock, settings: ApiSettings
    ) -> None:
        self._engine, self.fleet, self._bus, self._clock = engine, fleet, bus, clock
        self._settings = settings
        self.out_of_grid = OutOfGrid(settings.grid_tolerance_m, settings.out_of_grid_dwell_s)
        self.coverage = Coverage(settings.coverage_gap_s)
        self.held: dict[str, duty.Assignment] = {}  # unit id -> the assignment it holds now
        self._unsubscribe: Callable[[], None] | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self.health = HealthWatch(fleet, clock, settings, lambda a: self._publish(map(health_event, a)))
        self.alerts = RaisedAlerts()  # what is raised now, for GET /v1/alerts and acknowledgements

    # ---- reading the store -------------------------------------------------------------------------------

    async def reload(self) -> None:
        """Re-read grids and geofences; when they changed, follow them (enter and exit where units are)."""
        records = await run_db(grids.list_grids, self._engine)
        fence_records = await run_db(fences.list_fences, self._engine)
        fingerprint = (
            tuple((r.id, r.version) for r in records),
            tuple((r.id, r.updated_at) for r in fence_records),
        )
        if fingerprint == self._fingerprint:
            return
        self._fingerprint = fingerprint
        index = GridIndex(r.as_grid() for r in records)
        fence_set = ZoneSet(r.as_fence(self._settings.fence_dwell_s) for r in fence_records)
        tracker = self.fleet.zones
        events = tracker.reload(index, fence_set, self._clock.now())
        if tracker.empty and self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        elif not tracker.empty and self._unsubscribe is None:
            self._unsubscribe = self.fleet.subscribe_changes(self._on_change)
            for p in list(self.fleet.index):
                if tracker.seen(p.unit_id) is None:
                    events += tracker.observe(geo.Change(None, p))
        self._publish(zone_event(e, tracker) for e in events)
        log.info("patrol zones loaded: %d grids, %d geofences", len(index), len(fence_set))

    async def _read_assignments(self) -> None:
        now = datetime.fromtimestamp(self._clock.now(), UTC)
        held = await run_db(duty.assignments_at, self._engine, now)
        self.held = {a.unit_id: a for a in held}

    # ---- judging -----------------------------------------------------------------------------------------

    def _on_change(self, change: geo.Change) -> None:
        tracker = self.fleet.zones
        events = tracker.observe(change)
        if events:
            self._publish(zone_event(e, tracker) for e in events)
        p = change.new or change.old
        if p is not None and p.unit_id in self.held:
            self._judge_unit(p.unit_id, self._clock.now())

    def distance_outside_m(self, unit_id: str, grid_id: str, now_s: float) -> float | None:
        """Metres the unit is outside the grid (0 inside); None without a fresh position or a known grid."""
        p = self.fleet.position(unit_id)
        index = self.fleet.zones.grids
        if p is None or grid_id not in index or now_s - p.ts_s > self._settings.max_fix_age_s:
            return None
        return index.distance_outside_m(grid_id, p.lon, p.lat)

    def _judge_unit(self, unit_id: str, now_s: float) -> None:
        held = self.held.get(unit_id)
        grid_id = held.grid_id if held is not None else None
        unit = self.fleet.unit(unit_id)
        distance = self.distance_outside_m(unit_id, grid_id, now_s) if grid_id is not None else None
        alerts = self.out_of_grid.judge(
            unit_id, now_s, grid_id=grid_id, status=unit.status if unit else None, distance_m=distance
        )
        self._publish(alert_event(a) for a in alerts)

    def uncovered(self, a: duty.Assignment, now_s: float) -> str | None:
        """Why the holder of an assignment is not covering its grid now (None: it is)."""
        unit = self.fleet.unit(a.unit_id)
        if unit is None or unit.status in OFF_DUTY_STATUSES:
            return "off duty"
        distance = self.distance_outside_m(a.unit_id, a.grid_id, now_s)
        if distance is None:
            return "absent (no recent position)"
        if distance <= self._settings.grid_tolerance_m:
            return None
        if unit.status in INCIDENT_STATUSES or unit.status == "busy":
            return f"busy elsewhere (status {unit.status})"
        return f"absent ({distance:.0f} m outside)"

    async def check(self) -> None:
        """Judge device health and tell fence dwells (both from memory), re-read who holds what, judge every
        holder and grid at the clock's time. A database away keeps the holders last read: an outage must
        not silence the alerts (a phone dying while PostgreSQL is down is still reported)."""
        now_s = self._clock.now()
        self.health.check()
        tracker = self.fleet.zones
        self._publish(zone_event(e, tracker) for e in tracker.dwells(now_s))
        try:
            await self._read_assignments()
        except Unavailable as exc:
            log.warning("patrol check on the holders last read: %s", exc.detail)
        self._publish(alert_event(a) for a in self.out_of_grid.forget_others(set(self.held), now_s))
        for unit_id in self.held:
            self._judge_unit(unit_id, now_s)
        gaps = self.coverage.forget_others({a.grid_id for a in self.held.values()}, now_s)
        for a in self.held.values():
            gaps += self.coverage.judge(a.grid_id, a.unit_id, now_s, uncovered=self.uncovered(a, now_s))
        self._publish(gap_event(g) for g in gaps)

    async def run(self) -> None:
        """`check` every patrol_check_s and `reload` every zones_refresh_s, forever (failures logged)."""
        since_reload_s = 0.0
        while True:
            await self._clock.sleep(self._settings.patrol_check_s)
            since_reload_s += self._settings.patrol_check_s
            try:
                if since_reload_s >= self._settings.zones_refresh_s:
                    since_reload_s = 0.0
                    await self.reload()
            except Exception:
                log.exception("grids not reloaded; the ones held stay in force")
            try:
                await self.check()
            except Exception:
                log.exception("patrol check failed; trying again in %.0f s", self._settings.patrol_check_s)

    def stop(self) -> None:
        """Stop following the fleet."""
        self.health.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _publish(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            self.alerts.note(event)
            self._bus.publish(event)

    def acknowledge(self, alert_id: str, actor: str) -> RaisedAlert | None:
        """A dispatcher has seen the alert: marked, and told to every console (`alert.acknowledged`)."""
        now_s = self._clock.now()
        alert, first = self.alerts.acknowledge(alert_id, actor, datetime.fromtimestamp(now_s, UTC))
        if alert is not None and first:
            self._bus.publish(acknowledged_event(alert, now_s))
        return alert
