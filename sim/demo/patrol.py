"""The demo's patrol: both levels of SF grids loaded, the units assigned to grids on a shift, the officers
checking in on arriving in their grid and answering roll calls, and what the patrol watch says about it.

A client like the rest of the demo: grids, the shift, assignments and roll calls go through the HTTP API
with the simulator's token; the officers' phones check in and answer over MQTT
(`outpost/v1/devices/{id}/checkin`, `…/answer`), as real devices do. They learn that they arrived in their
grid and that the roll is called from the live stream (`grid.entered`, the roll call's answer), which a
phone app with the grid's boundary would know by itself. Each demo device is its unit (registered on first
contact), so a device id is its unit id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgspec
from shapely.geometry import shape

from geo import haversine_m
from sim.simulate.build_demo_data import DISTRICTS_PATH, NEIGHBORHOODS_PATH

log = logging.getLogger(__name__)

GRID_FILES = (("police", DISTRICTS_PATH, "district"), ("community", NEIGHBORHOODS_PATH, "neighborhood"))
_NEAR_M = 3000.0  # a unit is given a free grid at most this far (its centre) when its own is taken
_SLUG = re.compile(r"[^a-z0-9]+")
Publish = Callable[[str, bytes], None]


@dataclass
class PatrolStats:
    """What the summary line shows of the patrol watch (this run)."""

    checkins: int = 0  # accepted (a refused one is counted by Outpost: outpost_field_refused)
    raised: dict[str, int] = field(default_factory=dict)  # out_of_grid, coverage_gap, health: raised
    up: dict[str, set[str]] = field(default_factory=dict)  # ... and what is up now
    rollcalls: int = 0
    last_rollcall: dict[str, int] | None = None  # counts of the last closed roll call

    def note(self, family: str, key: str, change: str) -> None:
        """An alert of `family` about `key` raised or cleared."""
        up = self.up.setdefault(family, set())
        if change == "raised":
            self.raised[family] = self.raised.get(family, 0) + 1
            up.add(key)
        else:
            up.discard(key)

    def alerts(self, family: str) -> str:
        """`raised (up now)` for the summary."""
        return f"{self.raised.get(family, 0)} ({len(self.up.get(family, ()))} now)"


@dataclass(frozen=True)
class PatrolPlan:
    """How the demo's patrol goes: roll calls (wall seconds), who is an auxiliary, who stays silent."""

    rollcall_every_s: float
    rollcall_deadline_s: float
    auxiliary_every: int  # every n-th unit by id is an auxiliary (0: none)
    expected_units: int = 1  # assignments wait (a while) for this many units to report
    silent_share: float = 0.1  # of the officers called, this share does not answer


_FAMILIES = {"out_of_grid": "out_of_grid", "coverage_gap": "coverage_gap"}
_HEALTH = ("device_offline", "battery_low")


def grid_id_for(level: str, name: str) -> str:
    """The id `outpost grids import` gives a grid (level and name in lower-case words joined by hyphens)."""
    return f"{level}-{_SLUG.sub('-', name.lower()).strip('-')}"


class PatrolDesk:
    """Loads the grids, assigns the units, plays the officers' check-ins and roll-call answers."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str,
        publish: Publish,
        plan: PatrolPlan,
        rng: random.Random | None = None,
    ) -> None:
        self._http, self._base, self._publish = session, base_url.rstrip("/"), publish
        self._headers = {"Authorization": f"Bearer {token}"}
        self.plan = plan
        self._rng = rng or random.Random(11)
        self._centres: dict[str, tuple[str, float, float]] = {}  # grid id -> (level, lon, lat)
        self.assignments: dict[str, str] = {}  # unit id -> grid id
        self._checked: set[str] = set()
        self._seen: set[Any] = set()  # units considered for an assignment
        self._shift_id: Any = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = PatrolStats()

    async def run(self) -> None:
        """Grids, the shift's assignments, then a roll call every `rollcall_every_s`, until cancelled."""
        await self.load_grids()
        await self.assign(wait_s=60.0)
        while True:
            await asyncio.sleep(self.plan.rollcall_every_s)
            await self.assign()  # units that began reporting since (replayed traces come and go)
            await self.call_the_roll()

    # ---- grids and assignments -------------------------------------------------------------------------

    async def load_grids(self) -> None:
        """POST both levels of SF grids (police first: a community grid's parent is found among them)."""
        for level, path, name_property in GRID_FILES:
            for feature in json.loads(path.read_text(encoding="utf-8"))["features"]:
                name = str(feature["properties"][name_property]).title()
                grid_id = grid_id_for(level, name)
                body = {"id": grid_id, "level": level, "name": name, "geometry": feature["geometry"]}
                status, _ = await self._call("POST", "/v1/grids", body)
                if status in (201, 409):  # 409: kept from an earlier run in ./outpost-data
                    centre = shape(feature["geometry"]).representative_point()
                    self._centres[grid_id] = (level, centre.x, centre.y)
        log.info("demo patrol: %d grids", len(self._centres))

    async def assign(self, *, wait_s: float = 0.0) -> None:
        """Units not yet seen join the shift (eight hours from the first call): each holds the grid of its
        level it is in (or a free one near), police officers police grids, auxiliaries community grids.
        `wait_s`: wait up to this long for the expected units to report (they register on their first fix)."""
        units = [u for u in await self._units() if u.get("position")]
        for _ in range(int(wait_s)):
            if len(units) >= self.plan.expected_units:
                break
            await asyncio.sleep(1.0)
            units = [u for u in await self._units() if u.get("position")]
        if self._shift_id is None:
            now = datetime.now(UTC)
            ends = now + timedelta(hours=8)
            shift = {"name": f"demo {now:%H:%M}", "starts_at": now.isoformat(), "ends_at": ends.isoformat()}
            _, made = await self._call("POST", "/v1/shifts", shift)
            if made is None:
                return
            self._shift_id = made["id"]
        every = self.plan.auxiliary_every
        for unit in sorted((u for u in units if u["id"] not in self._seen), key=lambda u: str(u["id"])):
            n = len(self._seen)  # the n-th unit seen: every `every`-th is an auxiliary
            self._seen.add(unit["id"])
            await self._assign_one(unit, auxiliary=every > 0 and n % every == every - 1)
        log.info("demo patrol: %d units assigned on shift %s", len(self.assignments), self._shift_id)

    async def _assign_one(self, unit: dict[str, Any], *, auxiliary: bool) -> None:
        unit_id, position = str(unit["id"]), unit["position"]
        level, kind = ("community", "auxiliary") if auxiliary else ("police", "police")
        if unit.get("kind") != kind:
            await self._call("PATCH", f"/v1/units/{unit_id}", {"kind": kind})
        here = (position.get(f"{level}_grid") or {}).get("id")
        grid_id = here if here not in self.assignments.values() else self._free_near(level, position)
        if grid_id is None:
            return
        body = {"unit_id": unit_id, "grid_id": grid_id, "shift_id": self._shift_id, "replace": True}
        status, _ = await self._call("POST", "/v1/assignments", body)
        if status == 201:
            self.assignments[unit_id] = grid_id
            if grid_id == here:
                self._check_in(unit_id)

    def _free_near(self, level: str, position: dict[str, Any]) -> str | None:
        taken = set(self.assignments.values())
        near = [
            (haversine_m(position["lon"], position["lat"], lon, lat), gid)
            for gid, (lvl, lon, lat) in self._centres.items()
            if lvl == level and gid not in taken
        ]
        best = min(near, default=None)
        return best[1] if best is not None and best[0] <= _NEAR_M else None

    # ---- the officers ----------------------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        """A live stream event: count the patrol watch's, check a unit in on arriving in its grid."""
        kind = str(event.get("type", ""))
        family, _, change = kind.partition(".")
        unit_id = str(event.get("unit_id"))
        if kind == "grid.entered" and self.assignments.get(unit_id) == event.get("grid_id"):
            self._check_in(unit_id)
        elif kind == "unit.checkin":
            self.stats.checkins += 1 if event.get("accepted") else 0
        elif family in _FAMILIES:
            self.stats.note(family, str(event.get("unit_id") or event.get("grid_id")), change)
        elif family in _HEALTH:
            self.stats.note("health", f"{family}:{event.get('device_id')}", change)
        elif kind == "rollcall.closed":
            self.stats.last_rollcall = dict(event.get("counts") or {})

    def _check_in(self, unit_id: str) -> None:
        if unit_id in self._checked:
            return  # once a shift
        self._checked.add(unit_id)
        body = {"checkin_id": str(uuid.uuid4())}
        self._publish(f"outpost/v1/devices/{unit_id}/checkin", msgspec.json.encode(body))

    async def call_the_roll(self) -> None:
        """Call the roll of everyone on duty; each officer answers after a while, a few stay silent."""
        body = {"scope": {"kind": "on_duty"}, "deadline_s": self.plan.rollcall_deadline_s}
        _, made = await self._call("POST", "/v1/rollcalls", body)
        if made is None:
            return
        self.stats.rollcalls += 1
        for unit in made.get("units", []):
            if self._rng.random() >= self.plan.silent_share:
                for device_id in unit.get("devices") or [unit["unit_id"]]:
                    self._spawn(self._answer(str(device_id), str(made["id"])))

    async def _answer(self, device_id: str, rollcall_id: str) -> None:
        await asyncio.sleep(self.plan.rollcall_deadline_s * self._rng.uniform(0.1, 0.7))
        payload = msgspec.json.encode({"rollcall_id": rollcall_id})
        self._publish(f"outpost/v1/devices/{device_id}/answer", payload)

    # ---- HTTP ------------------------------------------------------------------------------------------

    async def _units(self) -> list[dict[str, Any]]:
        _, body = await self._call("GET", "/v1/units?limit=1000", None)
        return list((body or {}).get("units", []))

    async def _call(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        try:
            async with self._http.request(method, self._base + path, json=body, headers=self._headers) as r:
                data = await r.json(content_type=None)
                if r.status >= 400 and r.status != 409:
                    log.debug("demo patrol %s %s answered %s: %s", method, path, r.status, data)
                return r.status, data if r.status < 400 else None
        except (aiohttp.ClientError, ValueError) as exc:
            log.debug("demo patrol %s %s failed: %s", method, path, exc)
            return 0, None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
