"""The live picture: every unit's status and fused position, every device's latest fix, the nearest index.

Derived state: the database is the truth, and `load` replaces the whole picture with what was read from it.
From then on `apply` takes every accepted batch of fixes, and `track_unit`, `track_device`, `bind`, `unbind`
and `change_status` follow what the database already holds.

A unit's position is fused from its devices (`dispatch.live.fusion`). Fixes flagged LOW_ACCURACY,
IMPOSSIBLE_SPEED or OUT_OF_ORDER are recorded as the device's last fix but never move a unit, and an older
fix of a device never replaces a newer one. Units off duty or disabled keep their position here but are not
in the index, so nearest never sees them.

Every method that changes a unit's index entry returns the change record `geo.Change(old, new)` (old None:
the unit entered the index; new None: it left) and hands it to the `subscribe_changes` callbacks: one record
a unit and a move, even when the move took the entry out of the tree and back (a fusion switch, a binding),
and none when the entry stayed equal. `load` publishes none: it is a fresh start, read from `index`.
Everything runs on one thread (the index is not thread-safe).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import geo
from dispatch.live.events import FleetEvent, StatusChanged, UnitMoved
from dispatch.live.fusion import fused, separation_news
from dispatch.live.state import (
    BindingRecord,
    DeviceRecord,
    DeviceState,
    UnitRecord,
    UnitState,
)
from dispatch.settings import ApiSettings
from schemas.fix import NOT_FOR_DISPATCH, Fix

log = logging.getLogger(__name__)

T = TypeVar("T")


class Picture:
    """Units, devices and the position index, kept in step; see the module docstring."""

    def __init__(self, settings: ApiSettings) -> None:
        self._settings = settings
        self.index = geo.PositionIndex()
        self._units: dict[str, UnitState] = {}
        self._devices: dict[str, DeviceState] = {}
        self._subscribers: list[Callable[[FleetEvent], None]] = []
        self._change_subscribers: list[Callable[[geo.Change], None]] = []
        self._fix_subscribers: list[Callable[[Sequence[Fix]], None]] = []
        self.ready = False  # loaded once

    # ---- reading ---------------------------------------------------------------------------------------

    def position(self, unit_id: str) -> geo.UnitPosition | None:
        """The unit's fused position with its status, kind and skills (also when not indexed), or None."""
        unit = self._units.get(unit_id)
        if unit is None or unit.position is None:
            return None
        return unit.position._replace(status=unit.status, kind=unit.kind, skills=unit.skills)

    def unit(self, unit_id: str) -> UnitState | None:
        """The picture's state of a unit."""
        return self._units.get(unit_id)

    def device(self, device_id: str) -> DeviceState | None:
        """The picture's state of a device."""
        return self._devices.get(device_id)

    def device_enabled(self, device_id: str) -> bool:
        """Whether the device is registered and enabled (only those may answer offers or raise alarms)."""
        device = self._devices.get(device_id)
        return device is not None and device.enabled

    def __len__(self) -> int:
        return len(self._units)

    def counts(self) -> tuple[int, int, int]:
        """Units known, units indexed, devices known."""
        return len(self._units), len(self.index), len(self._devices)

    # ---- listeners -------------------------------------------------------------------------------------

    def subscribe(self, callback: Callable[[FleetEvent], None]) -> Callable[[], None]:
        """Call `callback` (synchronously) with every fleet event; returns the unsubscribe."""
        return _subscribe(self._subscribers, callback)

    def subscribe_changes(self, callback: Callable[[geo.Change], None]) -> Callable[[], None]:
        """Call `callback` (synchronously) with every change record of the index; returns the unsubscribe."""
        return _subscribe(self._change_subscribers, callback)

    def subscribe_fixes(self, callback: Callable[[Sequence[Fix]], None]) -> Callable[[], None]:
        """Call `callback` (synchronously) with every batch `apply` took; returns the unsubscribe."""
        return _subscribe(self._fix_subscribers, callback)

    def devices(self) -> Iterable[DeviceState]:
        """Every device the picture knows."""
        return self._devices.values()

    def _emit(self, event: FleetEvent) -> None:
        _notify(self._subscribers, event, event.type)

    def _record(self, before: geo.UnitPosition | None, after: geo.UnitPosition | None) -> geo.Change | None:
        """The change record from `before` to `after`, published; None when the entry stayed equal."""
        if after is before or after == before:
            return None
        change = geo.Change(before, after)
        if self._change_subscribers:
            _notify(self._change_subscribers, change, "change")
        return change

    # ---- fixes -----------------------------------------------------------------------------------------

    def apply(self, fixes: Sequence[Fix]) -> list[geo.Change]:
        """Take a batch of accepted fixes: record each device's latest, re-fuse and move the touched units."""
        touched: set[str] = set()
        for fix in fixes:
            unit_id = self._take(fix)
            if unit_id is not None:
                touched.add(unit_id)
        changes = []
        for unit_id in touched:
            change = self._refresh(self._units[unit_id])
            if change is not None:
                changes.append(change)
        if self._fix_subscribers:
            _notify(self._fix_subscribers, fixes, "fixes")
        return changes

    def _take(self, fix: Fix) -> str | None:
        """Record one fix; the id of the unit it may move, or None."""
        device = self._devices.get(fix.device_id)
        if device is None:
            device = self._devices[fix.device_id] = DeviceState(fix.device_id)
        if device.last_fix is None or fix.ts >= device.last_fix.ts:
            device.last_fix = fix
        if fix.flags & NOT_FOR_DISPATCH:
            return None
        ts_s = fix.ts.timestamp()
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

    def _refresh(self, unit: UnitState) -> geo.Change | None:
        """Re-fuse a unit's position and keep the index in step; its change record."""
        before = self.index.get(unit.id)
        return self._record(before, self._follow(unit, before))

    def _follow(self, unit: UnitState, current: geo.UnitPosition | None) -> geo.UnitPosition | None:
        """Re-fuse, keep the index in step, emit the move and separation events; the entry now.

        `current` is the unit's entry in the index before (looked up once by the caller: the hot path).
        """
        position, latest = fused(unit, self._devices, self._settings)
        if position is None:
            # No usable device left (disabled, unbound): nearest must stop answering with the old position,
            # as a rebuild would.
            unit.position = None
            self.index.remove(unit.id)
            return None
        moved = unit.position is None or (position.lon, position.lat, position.ts_s) != (
            unit.position.lon,
            unit.position.lat,
            unit.position.ts_s,
        )
        unit.position = position
        if not unit.indexable:
            return current  # off duty: kept for when the unit comes on duty, but neither indexed nor streamed
        entry = self._index_put(unit, position, current)
        if moved:
            p = position
            self._emit(UnitMoved(unit.id, p.lon, p.lat, p.ts_s, p.accuracy_m, p.device_id))
        if len(latest) > 1 or unit.apart_since_s is not None:
            self._separation(unit, latest)
        return entry

    def _index_put(
        self, unit: UnitState, p: geo.UnitPosition, current: geo.UnitPosition | None
    ) -> geo.UnitPosition | None:
        """Put the unit's fused position `p` into the index (`current`: its entry there); the entry now."""
        # The common case is a move: status, kind and skills are already in the entry (None keeps them).
        # Otherwise the unit is new to the index, or fusion switched to another device's slightly older fix:
        # that is a choice between devices, not a device going back in time, so the entry is replaced
        # rather than refused.
        fresh = current is None or p.ts_s < current.ts_s
        if fresh and current is not None:
            self.index.remove(unit.id)
        return self.index.upsert(
            unit.id,
            p.lon,
            p.lat,
            p.ts_s,
            accuracy_m=p.accuracy_m,
            speed_mps=p.speed_mps,
            heading_deg=p.heading_deg,
            device_id=p.device_id,
            status=unit.status if fresh else None,
            kind=unit.kind if fresh else None,
            skills=unit.skills if fresh else None,
        ).new

    def _separation(self, unit: UnitState, latest: dict[str, geo.DeviceFix]) -> None:
        news = separation_news(unit, latest, self._settings)
        if news is not None:
            self._emit(news)

    # ---- registry changes ------------------------------------------------------------------------------

    def track_unit(self, record: UnitRecord) -> geo.Change | None:
        """Take a unit's registry record (created or changed through the API) into the picture."""
        unit = self._units.get(record.id)
        if unit is None:
            unit = self._units[record.id] = UnitState(record.id)
        unit.name, unit.kind, unit.skills = record.name, record.kind, frozenset(record.skills)
        unit.status, unit.enabled = record.status, record.enabled
        return self._sync(unit)

    def follow_unit(self, record: UnitRecord, *, actor: str, at_s: float) -> bool:
        """Take a unit's record as another process stored it: nothing happens when the picture already
        says the same; a status change is told as one (by `actor`, at `at_s`). Whether anything changed."""
        unit = self._units.get(record.id)
        if unit is not None and (unit.name, unit.kind, unit.skills, unit.status, unit.enabled) == (
            record.name,
            record.kind,
            frozenset(record.skills),
            record.status,
            record.enabled,
        ):
            return False
        old = None if unit is None else unit.status
        self.track_unit(record)
        if old is not None and old != record.status:
            self._emit(StatusChanged(record.id, old, record.status, actor, at_s))
        return True

    def track_device(self, record: DeviceRecord) -> geo.Change | None:
        """Take a device's registry record into the picture (kind and priority steer fusion)."""
        device = self._devices.get(record.id)
        if device is None:
            device = self._devices[record.id] = DeviceState(record.id)
        device.kind, device.priority, device.enabled = record.kind, record.priority, record.enabled
        if device.unit_id is not None and device.unit_id in self._units:
            return self._refresh(self._units[device.unit_id])
        return None

    def bind(self, binding: BindingRecord) -> list[geo.Change]:
        """A device now belongs to a unit (the caller checked that the binding covers now)."""
        device = self._devices.get(binding.device_id) or DeviceState(binding.device_id)
        self._devices[device.id] = device
        old_unit = device.unit_id
        self._attach(device, binding.unit_id)
        changes = []
        for unit_id in {old_unit, binding.unit_id} - {None}:
            assert unit_id is not None
            change = self._reposition(self._units[unit_id])
            if change is not None:
                changes.append(change)
        return changes

    def unbind(self, unit_id: str, device_id: str) -> geo.Change | None:
        """A device no longer belongs to the unit."""
        device = self._devices.get(device_id)
        unit = self._units.get(unit_id)
        if device is None or unit is None or device.unit_id != unit_id:
            return None
        device.unit_id = None
        unit.devices.discard(device_id)
        return self._reposition(unit)

    def change_status(self, unit_id: str, status: str, *, actor: str, at_s: float) -> geo.Change | None:
        """The unit (known to the picture: KeyError otherwise) has this status now, as the database says."""
        unit = self._units[unit_id]
        before = self.index.get(unit_id)
        old, unit.status = unit.status, status
        self._sync_index(unit)
        if old != status:
            self._emit(StatusChanged(unit_id, old, status, actor, at_s))
        return self._record(before, self.index.get(unit_id))

    def _reposition(self, unit: UnitState) -> geo.Change | None:
        # The set of devices changed: the fused position may go to an older fix or vanish.
        before = self.index.get(unit.id)
        unit.position = None
        self.index.remove(unit.id)
        return self._record(before, self._follow(unit, None))

    def _sync(self, unit: UnitState) -> geo.Change | None:
        before = self.index.get(unit.id)
        self._sync_index(unit)
        return self._record(before, self.index.get(unit.id))

    def _sync_index(self, unit: UnitState) -> None:
        if not unit.indexable or unit.position is None:
            self.index.remove(unit.id)
        elif unit.id in self.index:
            self.index.set_status(unit.id, unit.status)
            self.index.set_attrs(unit.id, kind=unit.kind, skills=unit.skills)
        else:
            self._index_put(unit, unit.position, None)

    # ---- start -----------------------------------------------------------------------------------------

    def load(
        self,
        units: Iterable[UnitRecord],
        devices: Iterable[DeviceRecord],
        bindings: Iterable[BindingRecord],
        latest: Iterable[Fix],
    ) -> None:
        """Replace the whole picture with these records and fixes, bulk-loading the index (no records)."""
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
            unit.position, latest_by_device = fused(unit, self._devices, self._settings)
            if len(latest_by_device) > 1:
                self._separation(unit, latest_by_device)
            if unit.position is not None and unit.indexable:
                entries.append(unit.position)
        self.index.bulk_load(entries)
        self.ready = True


def _subscribe(callbacks: list[Callable[[T], None]], callback: Callable[[T], None]) -> Callable[[], None]:
    callbacks.append(callback)

    def unsubscribe() -> None:
        if callback in callbacks:
            callbacks.remove(callback)

    return unsubscribe


def _notify(callbacks: list[Callable[[T], None]], item: T, what: str) -> None:
    for callback in tuple(callbacks):
        try:
            callback(item)
        except Exception:
            # A broken listener must not stop ingest from updating the picture.
            log.exception("fleet subscriber failed on %s", what)
