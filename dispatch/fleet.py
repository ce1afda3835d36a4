"""The live picture: every unit's status and fused position, every device's latest fix, the nearest index.

Derived state: the database is the truth. `rebuild` loads units, devices, current bindings and the latest
fixes at start (one bulk load of the index); from then on ingest calls `apply` with every accepted batch,
and status changes go to the database first (`set_status`, `compare_and_set_status`) and to memory after.

A unit's position is fused from its devices (`geo.fusion.fuse`): the best recent fix by recency, accuracy
and device priority. Fusion is judged as of the unit's own newest fix, not the wall clock, so the same
fixes always give the same position, live or rebuilt after a restart; staleness is the nearest query's
business (`max_age_s`). Fixes flagged LOW_ACCURACY, IMPOSSIBLE_SPEED or OUT_OF_ORDER are recorded as the
device's last fix but never move a unit, and an older fix of a device never replaces a newer one.

Units off duty or disabled keep their position here but are not in the index, so nearest never sees them.
Everything runs on the event loop's thread (the index is not thread-safe); `apply` is synchronous.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine

import geo
from dispatch.blocking import run_db
from dispatch.clock import Clock
from dispatch.problems import NotFound
from dispatch.settings import ApiSettings
from schemas.fix import NOT_FOR_DISPATCH, Fix
from store import fixes as fix_store
from store import registry

log = logging.getLogger(__name__)

# Default device priority by kind: worn devices say where the officer is; a vehicle tracker stays in the car.
KIND_PRIORITY = {"body_cam": 40, "phone": 30, "radio": 20, "vehicle_tracker": 10, "other": 0}
OFF_INDEX_STATUSES = frozenset({"off_duty"})


@dataclass(frozen=True, slots=True)
class UnitMoved:
    """A unit's fused position changed."""

    unit_id: str
    lon: float
    lat: float
    ts_s: float
    accuracy_m: float | None
    device_id: str | None
    type: str = "unit.moved"


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """A unit's status changed (through the API or the incident workflow)."""

    unit_id: str
    old: str
    new: str
    actor: str
    at_s: float
    type: str = "unit.status"


@dataclass(frozen=True, slots=True)
class DevicesSeparated:
    """Two devices of one unit stayed far apart (`separated`), or came back together (not `separated`)."""

    unit_id: str
    device_a: str
    device_b: str
    distance_m: float
    ts_s: float
    separated: bool
    type: str = "unit.devices_separated"


FleetEvent = UnitMoved | StatusChanged | DevicesSeparated


@dataclass(slots=True)
class DeviceState:
    """What the fleet knows of one device."""

    id: str
    kind: str = "other"
    priority: int = 0
    enabled: bool = True
    unit_id: str | None = None  # the unit it is bound to now, as far as the fleet knows
    last_fix: Fix | None = None  # newest fix of any kind (shown to dispatchers)
    usable_fix: Fix | None = None  # newest fix allowed to move the unit
    usable_ts_s: float = float("-inf")


@dataclass(slots=True)
class UnitState:
    """What the fleet knows of one unit."""

    id: str
    name: str = ""
    kind: str = "police"
    skills: frozenset[str] = frozenset()
    status: str = "off_duty"
    enabled: bool = True
    devices: set[str] = field(default_factory=set)
    position: geo.UnitPosition | None = None  # fused, kept even when the unit is not indexed
    apart_since_s: float | None = None
    separated: bool = False

    @property
    def indexable(self) -> bool:
        """Whether nearest may see this unit (on duty and enabled)."""
        return self.enabled and self.status not in OFF_INDEX_STATUSES


def _ts_s(dt: datetime) -> float:
    return dt.timestamp()


class Fleet:
    """Units, devices and the position index, kept in step; see the module docstring."""

    def __init__(self, engine: Engine, clock: Clock, settings: ApiSettings) -> None:
        self._engine = engine
        self._clock = clock
        self._settings = settings
        self.index = geo.PositionIndex()
        self._units: dict[str, UnitState] = {}
        self._devices: dict[str, DeviceState] = {}
        self._subscribers: list[Callable[[FleetEvent], None]] = []
        self._status_lock = asyncio.Lock()
        self._apply_lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()  # batches scheduled by apply_soon, not yet applied
        self.ready = False

    # ---- reading ---------------------------------------------------------------------------------------

    def nearest(
        self,
        lon: float,
        lat: float,
        k: int,
        *,
        statuses: Collection[str] | None = ("available",),
        kinds: Collection[str] | None = None,
        skills: Collection[str] | None = None,
        max_age_s: float | None = None,
        radius_m: float | None = None,
        max_accuracy_m: float | None = None,
    ) -> geo.NearestResult:
        """The k nearest indexed units matching every filter, exactly by great-circle distance."""
        return self.index.nearest(
            lon,
            lat,
            k,
            statuses=statuses,
            kinds=kinds,
            skills=skills,
            max_age_s=max_age_s,
            now_s=self._clock.now(),
            radius_m=radius_m,
            max_accuracy_m=max_accuracy_m,
        )

    def position(self, unit_id: str) -> geo.UnitPosition | None:
        """The unit's fused position with its status, kind and skills (also when not indexed), or None."""
        unit = self._units.get(unit_id)
        if unit is None or unit.position is None:
            return None
        return unit.position._replace(status=unit.status, kind=unit.kind, skills=unit.skills)

    def in_bbox(
        self, min_lon: float, min_lat: float, max_lon: float, max_lat: float
    ) -> list[geo.UnitPosition]:
        """Indexed (on-duty, enabled) units inside the box."""
        return self.index.in_bbox(min_lon, min_lat, max_lon, max_lat)

    def unit(self, unit_id: str) -> UnitState | None:
        """The fleet's state of a unit."""
        return self._units.get(unit_id)

    def device(self, device_id: str) -> DeviceState | None:
        """The fleet's state of a device."""
        return self._devices.get(device_id)

    def device_enabled(self, device_id: str) -> bool:
        """Whether the device is registered and enabled (only those may answer offers or raise alarms)."""
        device = self._devices.get(device_id)
        return device is not None and device.enabled

    def indexed(self, unit_id: str) -> bool:
        """Whether the unit is in the nearest index now."""
        return unit_id in self.index

    def __len__(self) -> int:
        return len(self._units)

    # ---- events ----------------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[FleetEvent], None]) -> Callable[[], None]:
        """Call `callback` (synchronously, on the loop) with every fleet event; returns the unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _emit(self, event: FleetEvent) -> None:
        for callback in tuple(self._subscribers):
            try:
                callback(event)
            except Exception:
                # A broken listener must not stop ingest from updating the picture.
                log.exception("fleet subscriber failed on %s", event.type)

    # ---- the hot path ------------------------------------------------------------------------------------

    def apply(self, fixes: Sequence[Fix]) -> None:
        """Take a batch of accepted fixes: record each device's latest, re-fuse and move the touched units."""
        touched: set[str] = set()
        for fix in fixes:
            unit_id = self._take(fix)
            if unit_id is not None:
                touched.add(unit_id)
        for unit_id in touched:
            self._refresh(self._units[unit_id])

    # Fixes applied between two turns of the event loop. A fix costs ~35 µs at 100k units (most of it the
    # rtree's delete and insert), and a nearest request waits for the slice running when it arrives and for
    # one more between its own callbacks. bench_http_nearest (100k units, 2,000 fixes/s, 100 req/s): slices
    # of 16 (0.6 ms, p99 1.3 ms) gave p90 1.9-2.8 ms and p99 3.2-5.1 ms over HTTP; slices of 4 (0.15 ms,
    # p99 0.5 ms) gave p90 1.3 ms and p99 2.2 ms, and at 400 req/s p99 1.9 ms instead of 3.5-4.1 ms, for the
    # same CPU (the extra loop turns cost ~1% of one core).
    SLICE_FIXES = 4
    # A batch this small is applied at once; larger ones in slices (see SLICE_FIXES for why so few).
    APPLY_NOW_MAX_FIXES = SLICE_FIXES

    async def apply_gradually(self, fixes: Sequence[Fix], *, slice_fixes: int = SLICE_FIXES) -> None:
        """`apply` in slices, letting the event loop serve requests in between; batches stay in order.

        A 400-fix ingest batch applied at once holds the loop for ~14 ms, which is what a nearest request
        arriving meanwhile waits; in slices of SLICE_FIXES no turn takes more than a fraction of a
        millisecond. Use this from async code.
        """
        async with self._apply_lock:
            for start in range(0, len(fixes), slice_fixes):
                self.apply(fixes[start : start + slice_fixes])
                await asyncio.sleep(0)

    def apply_soon(self, fixes: Sequence[Fix]) -> None:
        """Ingest's `on_accepted`: `apply` a small batch now, schedule a larger one with `apply_gradually`.

        Ingest hands over chunks of up to thousands of fixes under bursts; applied at once they held the loop
        ~50 ms. A small batch arriving while larger ones are still pending is queued behind them too, so
        batches are applied in the order they arrived. Must be called on the event loop.
        """
        if len(fixes) <= self.APPLY_NOW_MAX_FIXES and not self._pending:
            self.apply(fixes)
            return
        task = asyncio.get_running_loop().create_task(self.apply_gradually(list(fixes)))
        self._pending.add(task)
        task.add_done_callback(self._applied)

    def _applied(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("applying a batch to the live picture failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until every batch scheduled by `apply_soon` has been applied."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _take(self, fix: Fix) -> str | None:
        """Record one fix; the id of the unit it may move, or None."""
        device = self._devices.get(fix.device_id)
        if device is None:
            device = self._devices[fix.device_id] = DeviceState(fix.device_id)
        if device.last_fix is None or fix.ts >= device.last_fix.ts:
            device.last_fix = fix
        if fix.flags & NOT_FOR_DISPATCH:
            return None
        ts_s = _ts_s(fix.ts)
        if ts_s <= device.usable_ts_s:
            return None  # an older (or repeated) fix never moves anything back
        device.usable_fix = fix
        device.usable_ts_s = ts_s
        unit_id = fix.unit_id or device.unit_id
        if unit_id is None:
            return None
        if device.unit_id != unit_id:
            self._attach(device, unit_id)
        return unit_id

    def _attach(self, device: DeviceState, unit_id: str) -> None:
        if device.unit_id is not None and device.unit_id in self._units:
            self._units[device.unit_id].devices.discard(device.id)
        device.unit_id = unit_id
        unit = self._units.get(unit_id)
        if unit is None:
            # Known to ingest (bound, or registered on first contact) before the fleet heard of it.
            # Registration on first contact creates the unit available (issue 3), so the placeholder says
            # the same; off_duty here kept every self-registered unit out of the index (found by loadtest).
            unit = self._units[unit_id] = UnitState(unit_id, name=unit_id, status="available")
        unit.devices.add(device.id)

    def _latest_by_device(self, unit: UnitState) -> dict[str, geo.DeviceFix]:
        latest: dict[str, geo.DeviceFix] = {}
        for device_id in unit.devices:
            device = self._devices[device_id]
            fix = device.usable_fix
            if fix is not None and device.enabled:
                # fuse ranks by priorities[device_kind]; priority is per device here (kind default plus the
                # device's own), so the device id is used as the ranking key.
                latest[device_id] = geo.DeviceFix(
                    device_id, fix.lon, fix.lat, device.usable_ts_s, fix.accuracy_m, device_id
                )
        return latest

    def _fused(self, unit: UnitState) -> tuple[geo.UnitPosition | None, dict[str, geo.DeviceFix]]:
        if len(unit.devices) == 1:
            # Most units carry one device: nothing to fuse, so skip building the fusion inputs.
            (device_id,) = unit.devices
            device = self._devices[device_id]
            f = device.usable_fix
            if f is None or not device.enabled:
                return None, {}
            position = geo.UnitPosition(
                unit.id,
                f.lon,
                f.lat,
                device.usable_ts_s,
                f.accuracy_m,
                unit.status,
                unit.kind,
                unit.skills,
                f.speed_mps,
                f.heading_deg,
                device_id,
            )
            return position, {}
        latest = self._latest_by_device(unit)
        if not latest:
            return None, latest
        if len(latest) == 1:
            (chosen,) = latest.values()
        else:
            s = self._settings
            priorities = {
                d: KIND_PRIORITY.get(self._devices[d].kind, 0) + self._devices[d].priority for d in latest
            }
            newest_s = max(f.ts_s for f in latest.values())
            chosen = geo.fuse(
                latest,
                newest_s,
                priorities,
                max_age_s=s.fusion_max_age_s,
                recency_window_s=s.fusion_recency_window_s,
                max_accuracy_m=s.fusion_max_accuracy_m,
            ) or max(latest.values(), key=lambda f: f.ts_s)
        fix = self._devices[chosen.device_id].usable_fix
        assert fix is not None
        return geo.UnitPosition(
            unit.id,
            chosen.lon,
            chosen.lat,
            chosen.ts_s,
            chosen.accuracy_m,
            unit.status,
            unit.kind,
            unit.skills,
            fix.speed_mps,
            fix.heading_deg,
            chosen.device_id,
        ), latest

    def _refresh(self, unit: UnitState) -> None:
        """Re-fuse a unit's position, keep the index in step, emit the move and separation events."""
        position, latest = self._fused(unit)
        if position is None:
            # No usable device left (disabled, unbound): nearest must stop answering with the old position,
            # as a rebuild would.
            unit.position = None
            self.index.remove(unit.id)
            return
        moved = unit.position is None or (position.lon, position.lat, position.ts_s) != (
            unit.position.lon,
            unit.position.lat,
            unit.position.ts_s,
        )
        unit.position = position
        if not unit.indexable:
            return  # off duty: kept for when the unit comes on duty, but neither indexed nor streamed
        self._index_put(unit)
        if moved:
            self._emit(
                UnitMoved(
                    unit.id,
                    position.lon,
                    position.lat,
                    position.ts_s,
                    position.accuracy_m,
                    position.device_id,
                )
            )
        if len(latest) > 1 or unit.apart_since_s is not None:
            self._check_separation(unit, latest)

    def _index_put(self, unit: UnitState) -> None:
        p = unit.position
        if p is None:
            return
        current = self.index.get(unit.id)
        if current is not None and p.ts_s >= current.ts_s:
            # The common case, a move: status, kind and skills are already in the entry.
            self.index.upsert(
                unit.id,
                p.lon,
                p.lat,
                p.ts_s,
                accuracy_m=p.accuracy_m,
                speed_mps=p.speed_mps,
                heading_deg=p.heading_deg,
                device_id=p.device_id,
            )
            return
        if current is not None:
            # Fusion switched to another device's slightly older fix: that is a choice between devices, not
            # a device going back in time, so the index entry is replaced rather than refused.
            self.index.remove(unit.id)
        self.index.upsert(
            unit.id,
            p.lon,
            p.lat,
            p.ts_s,
            accuracy_m=p.accuracy_m,
            speed_mps=p.speed_mps,
            heading_deg=p.heading_deg,
            device_id=p.device_id,
            status=unit.status,
            kind=unit.kind,
            skills=unit.skills,
        )

    def _check_separation(self, unit: UnitState, latest: dict[str, geo.DeviceFix]) -> None:
        s = self._settings
        pairs = (
            geo.separation(latest, s.separation_threshold_m, s.fusion_max_age_s) if len(latest) > 1 else []
        )
        newest_s = max((f.ts_s for f in latest.values()), default=0.0)
        if not pairs:
            if unit.separated:
                a, b = sorted(latest)[:2] if len(latest) > 1 else (next(iter(latest), ""), "")
                self._emit(DevicesSeparated(unit.id, a, b, 0.0, newest_s, separated=False))
            unit.apart_since_s = None
            unit.separated = False
            return
        if unit.apart_since_s is None:
            unit.apart_since_s = newest_s
        if not unit.separated and newest_s - unit.apart_since_s >= s.separation_hold_s:
            unit.separated = True
            a, b, distance_m = pairs[0]
            self._emit(DevicesSeparated(unit.id, a, b, distance_m, newest_s, separated=True))

    # ---- registry changes --------------------------------------------------------------------------------

    def track_unit(self, record: registry.Unit) -> None:
        """Take a unit's registry record (created or changed through the API) into the picture."""
        unit = self._units.get(record.id)
        if unit is None:
            unit = self._units[record.id] = UnitState(record.id)
        unit.name, unit.kind, unit.skills = record.name, record.kind, frozenset(record.skills)
        unit.status, unit.enabled = record.status, record.enabled
        self._sync_index(unit)

    def track_device(self, record: registry.Device) -> None:
        """Take a device's registry record into the picture (kind and priority steer fusion)."""
        device = self._devices.get(record.id)
        if device is None:
            device = self._devices[record.id] = DeviceState(record.id)
        device.kind, device.priority, device.enabled = record.kind, record.priority, record.enabled
        if device.unit_id is not None and device.unit_id in self._units:
            self._refresh(self._units[device.unit_id])

    def bind(self, binding: registry.Binding) -> None:
        """A device was bound to a unit; takes effect now if the binding covers now."""
        if not binding.active_at(datetime.fromtimestamp(self._clock.now(), UTC)):
            return
        device = self._devices.get(binding.device_id) or DeviceState(binding.device_id)
        self._devices[device.id] = device
        old_unit = device.unit_id
        self._attach(device, binding.unit_id)
        for unit_id in {old_unit, binding.unit_id} - {None}:
            assert unit_id is not None
            self._reposition(self._units[unit_id])

    def unbind(self, unit_id: str, device_id: str) -> None:
        """A device no longer belongs to the unit."""
        device = self._devices.get(device_id)
        unit = self._units.get(unit_id)
        if device is None or unit is None or device.unit_id != unit_id:
            return
        device.unit_id = None
        unit.devices.discard(device_id)
        self._reposition(unit)

    def _reposition(self, unit: UnitState) -> None:
        # The set of devices changed: the fused position may go to an older fix or vanish.
        unit.position = None
        self.index.remove(unit.id)
        self._refresh(unit)

    def _sync_index(self, unit: UnitState) -> None:
        if not unit.indexable or unit.position is None:
            self.index.remove(unit.id)
            return
        if unit.id in self.index:
            self.index.set_status(unit.id, unit.status)
            self.index.set_attrs(unit.id, kind=unit.kind, skills=unit.skills)
        else:
            self._index_put(unit)

    # ---- status ----------------------------------------------------------------------------------------

    async def set_status(self, unit_id: str, status: str, *, actor: str) -> None:
        """Set a unit's status (database first, then memory); NotFound for an unknown unit."""
        async with self._status_lock:
            now = datetime.fromtimestamp(self._clock.now(), UTC)
            if not await run_db(registry.set_unit_status, self._engine, unit_id, status, now=now):
                raise NotFound(f"no unit {unit_id}")
            await self._status_changed(unit_id, status, actor)

    async def compare_and_set_status(
        self, unit_id: str, expected: Collection[str], new: str, *, actor: str
    ) -> bool:
        """Set the status to `new` only if it is one of `expected`, atomically in the database.

        Two dispatchers racing for one unit get one True; the loser sees False. Memory follows the database.
        """
        async with self._status_lock:
            now = datetime.fromtimestamp(self._clock.now(), UTC)
            won = await run_db(
                registry.compare_and_set_unit_status, self._engine, unit_id, expected, new, now=now
            )
            if won:
                await self._status_changed(unit_id, new, actor)
            return won

    async def _status_changed(self, unit_id: str, status: str, actor: str) -> None:
        unit = self._units.get(unit_id)
        if unit is None:
            record = await run_db(registry.get_unit, self._engine, unit_id)
            if record is None:
                return
            self.track_unit(record)
            unit = self._units[unit_id]
        old, unit.status = unit.status, status
        self._sync_index(unit)
        if old != status:
            self._emit(StatusChanged(unit_id, old, status, actor, self._clock.now()))

    # ---- start -------------------------------------------------------------------------------------------

    async def rebuild(self, engine: Engine, lookback_s: float) -> None:
        """Load units, devices, current bindings and the latest usable fixes; bulk-load the index."""
        now = datetime.fromtimestamp(self._clock.now(), UTC)
        since = datetime.fromtimestamp(self._clock.now() - lookback_s, UTC)
        units = await run_db(registry.list_units, engine)
        devices = await run_db(registry.list_devices, engine)
        bindings = await run_db(registry.bindings_active_at, engine, now)
        latest = await run_db(fix_store.latest_fixes, engine, since, usable_only=True)
        self.load(units, devices, bindings, latest)
        fixes_read = len(latest)
        del units, devices, bindings, latest
        # The picture is a million long-lived objects at 100k units; a full collection walking them all
        # stalled the loop ~200 ms (bench_http_nearest). Frozen objects are skipped by the collector;
        # what ingest adds later is frozen by dispatch.collector's policy, which the app runs.
        gc.collect()
        gc.freeze()
        log.info(
            "live index rebuilt: %d units (%d indexed), %d devices, %d fixes since %s",
            len(self._units),
            len(self.index),
            len(self._devices),
            fixes_read,
            since.isoformat(),
        )

    def load(
        self,
        units: Iterable[registry.Unit],
        devices: Iterable[registry.Device],
        bindings: Iterable[registry.Binding],
        latest: Iterable[Fix],
    ) -> None:
        """Replace the whole picture with these records (what `rebuild` read), bulk-loading the index."""
        self._units = {
            u.id: UnitState(u.id, u.name, u.kind, frozenset(u.skills), u.status, u.enabled) for u in units
        }
        self._devices = {d.id: DeviceState(d.id, d.kind, d.priority, d.enabled) for d in devices}
        for b in bindings:
            self._attach(self._devices.setdefault(b.device_id, DeviceState(b.device_id)), b.unit_id)
        for fix in latest:
            self._take(fix)
        entries = []
        for unit in self._units.values():
            unit.position, latest_by_device = self._fused(unit)
            if len(latest_by_device) > 1:
                self._check_separation(unit, latest_by_device)
            if unit.position is not None and unit.indexable:
                entries.append(unit.position)
        self.index.bulk_load(entries)
        self.ready = True
