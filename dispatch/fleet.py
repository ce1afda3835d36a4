"""The fleet: the live picture (`dispatch.live.Picture`) loaded from the store, persisted and scheduled.

Derived state: the database is the truth. `rebuild` loads units, devices, current bindings and the latest
fixes at start (one bulk load of the index); from then on ingest calls `apply_soon` with every accepted
batch, which this module slices so the event loop keeps serving requests, and status changes go to the
database first (`set_status`, `compare_and_set_status`) and to the picture after. What the picture decides
(fusion, the index, events and change records) lives in `dispatch.live`; this module only does the I/O.
Everything runs on the event loop's thread (the index is not thread-safe); `apply` is synchronous.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Unpack

from prometheus_client import Histogram
from sqlalchemy import Engine

import geo
from dispatch.blocking import run_db
from dispatch.clock import Clock
from dispatch.live import DeviceState, FleetEvent, Picture, UnitState
from dispatch.live.zones import ZoneTracker
from dispatch.problems import NotFound
from dispatch.settings import ApiSettings
from geo.grids import GridIndex, Location
from geo.zones import ZoneSet
from schemas.fix import Fix
from store import fixes as fix_store
from store import registry

log = logging.getLogger(__name__)

_OFF_DUTY = "off_duty"  # the status whose fixes ingest keeps private (ingest.duty)

PICTURE_LAG = Histogram(
    "outpost_picture_lag_seconds",
    "From ingest's receipt of a fix to the live picture holding it, each fix handed over live: via ingest "
    "in the same process (outpost run), via the feed on an api replica (by its clock against the worker's).",
    ["via"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)


def observe_lag(fixes: Sequence[Fix], via: str, now_s: float) -> None:
    """Record how long each fix took from its receipt to the picture (about 1 µs a fix)."""
    observe = PICTURE_LAG.labels(via).observe
    for fix in fixes:
        observe(max(0.0, now_s - fix.received_at.timestamp()))


ELSEWHERE = "another replica"  # the actor of a status change this replica heard of (dispatch events)


class Fleet:
    """The live picture behind the API: reads and events delegate to it, writes reach the database first."""

    def __init__(self, engine: Engine, clock: Clock, settings: ApiSettings) -> None:
        self._engine = engine
        self._clock = clock
        self.picture = Picture(settings)
        self.index = self.picture.index  # the same object for the picture's life (`load` refills it)
        # Each unit's grids and geofences; dispatch.patrol loads them and feeds it the change records.
        self.zones = ZoneTracker(GridIndex(()), ZoneSet(()))
        self._status_lock = asyncio.Lock()
        self._apply_lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()  # batches scheduled by apply_soon, not yet applied
        # Tells the device gateway of this process that a unit went off duty or came back, and returns once
        # it knows (its fixes are then private, or recorded again); the root sets it where ingest runs here.
        self.duty_changed: Callable[[], Awaitable[object]] | None = None

    @property
    def ready(self) -> bool:
        """Whether the picture has been loaded."""
        return self.picture.ready

    # ---- reading ---------------------------------------------------------------------------------------

    def nearest(self, lon: float, lat: float, k: int, **filters: Unpack[geo.Filters]) -> geo.NearestResult:
        """The k nearest indexed units matching every filter (statuses: available unless said), exactly by
        great-circle distance."""
        query = geo.Filters(statuses=("available",))
        query.update(filters)
        return self.index.nearest(lon, lat, k, now_s=self._clock.now(), **query)

    def position(self, unit_id: str) -> geo.UnitPosition | None:
        """The unit's fused position with its status, kind and skills (also when not indexed), or None."""
        return self.picture.position(unit_id)

    def location(self, p: geo.UnitPosition) -> Location:
        """The police and community grid at a unit's position (from its tracker when it is followed)."""
        return self.zones.location(p.unit_id, p.lon, p.lat)

    def in_bbox(
        self, min_lon: float, min_lat: float, max_lon: float, max_lat: float
    ) -> list[geo.UnitPosition]:
        """Indexed (on-duty, enabled) units inside the box."""
        return self.index.in_bbox(min_lon, min_lat, max_lon, max_lat)

    def unit(self, unit_id: str) -> UnitState | None:
        """The fleet's state of a unit."""
        return self.picture.unit(unit_id)

    def device(self, device_id: str) -> DeviceState | None:
        """The fleet's state of a device."""
        return self.picture.device(device_id)

    def device_enabled(self, device_id: str) -> bool:
        """Whether the device is registered and enabled (only those may answer offers or raise alarms)."""
        return self.picture.device_enabled(device_id)

    def indexed(self, unit_id: str) -> bool:
        """Whether the unit is in the nearest index now."""
        return unit_id in self.index

    def __len__(self) -> int:
        return len(self.picture)

    def subscribe(self, callback: Callable[[FleetEvent], None]) -> Callable[[], None]:
        """Call `callback` (synchronously, on the loop) with every fleet event; returns the unsubscribe."""
        return self.picture.subscribe(callback)

    def subscribe_changes(self, callback: Callable[[geo.Change], None]) -> Callable[[], None]:
        """Call `callback` (synchronously, on the loop) with every change record; returns the unsubscribe."""
        return self.picture.subscribe_changes(callback)

    def subscribe_fixes(self, callback: Callable[[Sequence[Fix]], None]) -> Callable[[], None]:
        """Call `callback` (synchronously, on the loop) with every batch applied; returns the unsubscribe."""
        return self.picture.subscribe_fixes(callback)

    # ---- the hot path ------------------------------------------------------------------------------------

    def apply(self, fixes: Sequence[Fix]) -> list[geo.Change]:
        """Take a batch of accepted fixes into the picture now; the change records it made."""
        return self.picture.apply(fixes)

    # Fixes are applied in slices of SLICE_FIXES, and between two turns of the event loop for SLICE_S. A fix
    # costs ~35 µs at 100k units (most of it the rtree's delete and insert), and a nearest request waits for
    # the slice running when it arrives. bench_http_nearest (100k units, 2,000 fixes/s, 100 req/s): slices of
    # 16 (0.6 ms) gave p99 3.2-5.1 ms over HTTP, slices of 4 (0.15 ms) p99 2.2 ms for the same CPU.
    SLICE_FIXES = 4
    # A fixed count a turn starved the picture under load: with 64 requests in flight a turn of the loop
    # serves many of them, 4 fixes a turn fell below a 5,000 fixes/s stream and the backlog grew without
    # bound (bench_http_designs, 100k units: 41 % of answers stale by over 0.5 s at 64 in flight). So a turn
    # applies slices for SLICE_S, and for CATCH_UP_S once a batch has waited LAG_S: requests still get most
    # turns, and the picture's lag stays bounded by how far the CPU is behind, not by the loop's turn rate.
    SLICE_S = 0.0003
    CATCH_UP_S = 0.002
    LAG_S = 0.05
    # A batch this small is applied at once; larger ones in slices.
    APPLY_NOW_MAX_FIXES = SLICE_FIXES

    async def apply_gradually(self, fixes: Sequence[Fix], *, slice_fixes: int = SLICE_FIXES) -> None:
        """`apply` in slices, letting the event loop serve requests in between; batches stay in order.

        A 400-fix ingest batch applied at once holds the loop for ~14 ms, which is what a nearest request
        arriving meanwhile waits; a turn here applies slices for SLICE_S (CATCH_UP_S once the batch has
        waited LAG_S). Use this from async code.
        """
        clock = time.perf_counter
        queued = clock()
        async with self._apply_lock:
            start, end = 0, len(fixes)
            while start < end:
                began = clock()
                budget = self.CATCH_UP_S if began - queued > self.LAG_S else self.SLICE_S
                while start < end:
                    self.picture.apply(fixes[start : start + slice_fixes])
                    start += slice_fixes
                    if clock() - began >= budget:
                        break
                await asyncio.sleep(0)

    def apply_soon(self, fixes: Sequence[Fix]) -> None:
        """Ingest's `on_accepted`: `apply` a small batch now, schedule a larger one with `apply_gradually`.

        Ingest hands over chunks of up to thousands of fixes under bursts; applied at once they held the loop
        ~50 ms. A small batch arriving while larger ones are still pending is queued behind them too, so
        batches are applied in the order they arrived. Must be called on the event loop.
        """
        if len(fixes) <= self.APPLY_NOW_MAX_FIXES and not self._pending:
            self.picture.apply(fixes)
            observe_lag(fixes, "ingest", self._clock.now())
            return
        task = asyncio.get_running_loop().create_task(self._apply_later(list(fixes)))
        self._pending.add(task)
        task.add_done_callback(self._applied)

    async def _apply_later(self, fixes: list[Fix]) -> None:
        await self.apply_gradually(fixes)
        observe_lag(fixes, "ingest", self._clock.now())

    def _applied(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("applying a batch to the live picture failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until every batch scheduled by `apply_soon` has been applied."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    # ---- registry changes (already stored by the caller) ---------------------------------------------------

    def track_unit(self, record: registry.Unit) -> None:
        """Take a unit's registry record (created or changed through the API) into the picture."""
        self.picture.track_unit(record)

    def track_device(self, record: registry.Device) -> None:
        """Take a device's registry record into the picture (kind and priority steer fusion)."""
        self.picture.track_device(record)

    def bind(self, binding: registry.Binding) -> None:
        """A device was bound to a unit; takes effect now if the binding covers now."""
        if binding.active_at(datetime.fromtimestamp(self._clock.now(), UTC)):
            self.picture.bind(binding)

    def unbind(self, unit_id: str, device_id: str) -> None:
        """A device no longer belongs to the unit."""
        self.picture.unbind(unit_id, device_id)

    # ---- status ----------------------------------------------------------------------------------------

    async def set_status(self, unit_id: str, status: str, *, actor: str, why: str = "") -> None:
        """Set a unit's status (database first, then memory); NotFound for an unknown unit."""
        if not (await self.change_status(unit_id, status, actor=actor, why=why)).found:
            raise NotFound(f"no unit {unit_id}")

    async def compare_and_set_status(
        self, unit_id: str, expected: Collection[str], new: str, *, actor: str, why: str = ""
    ) -> bool:
        """Set the status to `new` only if it is one of `expected`, atomically in the database.

        Two dispatchers racing for one unit get one True; the loser sees False. Memory follows the database.
        """
        return (await self.change_status(unit_id, new, expected=expected, actor=actor, why=why)).written

    async def change_status(
        self,
        unit_id: str,
        new: str,
        *,
        expected: Collection[str] | None = None,
        actor: str,
        why: str = "",
    ) -> registry.StatusOutcome:
        """Set the status (only from one of `expected`, when given), recorded in the status history with
        `actor` and `why`; what the database found and did. Memory follows the database."""
        async with self._status_lock:
            now = datetime.fromtimestamp(self._clock.now(), UTC)
            outcome = await run_db(
                registry.change_unit_status,
                self._engine,
                unit_id,
                new,
                expected=expected,
                actor=actor,
                why=why,
                now=now,
            )
            if outcome.written:
                await self._status_changed(unit_id, new, actor)
                if self.duty_changed is not None and (outcome.before == _OFF_DUTY) != (new == _OFF_DUTY):
                    await self.duty_changed()
            return outcome

    async def _status_changed(self, unit_id: str, status: str, actor: str) -> None:
        if self.picture.unit(unit_id) is None:
            record = await run_db(registry.get_unit, self._engine, unit_id)
            if record is None:
                return
            self.picture.track_unit(record)
        self.picture.change_status(unit_id, status, actor=actor, at_s=self._clock.now())

    async def follow_units(self, unit_ids: set[str] | None) -> int:
        """Re-read these units (None: every unit) from the database into the picture: what another
        replica changed (store.notify's `outpost_units`). Under the status lock, so that a change this
        replica is storing lands first and is then read back, not overwritten. How many changed here."""
        async with self._status_lock:
            if unit_ids is None:
                records = await run_db(registry.list_units, self._engine)
            else:
                records = await run_db(registry.get_units, self._engine, unit_ids)
            changed = 0
            for i, record in enumerate(records):
                at_s = record.status_changed_at.timestamp()
                changed += self.picture.follow_unit(record, actor=ELSEWHERE, at_s=at_s)
                if i % 5000 == 4999:
                    await asyncio.sleep(0)  # a full re-read of 100k units: let requests through
        if changed:
            log.debug("%d units changed by another replica taken into the live picture", changed)
        return changed

    # ---- start -------------------------------------------------------------------------------------------

    async def rebuild(self, engine: Engine, lookback_s: float) -> None:
        """Load units, devices, current bindings and the latest usable fixes; bulk-load the index."""
        now = datetime.fromtimestamp(self._clock.now(), UTC)
        since = datetime.fromtimestamp(self._clock.now() - lookback_s, UTC)
        units = await run_db(registry.list_units, engine)
        devices = await run_db(registry.list_devices, engine)
        bindings = await run_db(registry.bindings_active_at, engine, now)
        latest = await run_db(fix_store.latest_fixes, engine, since, usable_only=True)
        self.picture.load(units, devices, bindings, latest)
        fixes_read = len(latest)
        del units, devices, bindings, latest
        # The picture is a million long-lived objects at 100k units; a full collection walking them all
        # stalled the loop ~200 ms (bench_http_nearest). Frozen objects are skipped by the collector;
        # what ingest adds later is frozen by dispatch.collector's policy, which the app runs.
        gc.collect()
        gc.freeze()
        log.info(
            "live index rebuilt: %d units (%d indexed), %d devices, %d fixes since %s",
            *self.picture.counts(),
            fixes_read,
            since.isoformat(),
        )
