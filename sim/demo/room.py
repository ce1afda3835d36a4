"""The demo's command room: a dispatcher and the officers' answers, played over the real HTTP API.

Everything here goes through the API as a console and the officers' phones would: incidents are reported with
POST /v1/incidents (P1/P2 are offered by policy, P3/P4 by this dispatcher asking for the recommended unit),
an offered unit accepts after a moment and drives there (`drive_to`, the simulator's road network), arrival is
detected from its telemetry, and after a handling time the incident is resolved, fed back and evaluated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import msgspec

from schemas.sfpd import priority_of
from sim.demo.patrol import PatrolStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoCall:
    """A call for service from the replayed incident sample."""

    ref: str
    lon: float
    lat: float
    category: str
    description: str
    address: str


@dataclass
class RoomStats:
    """What the terminal summary shows."""

    reported: int = 0
    offered: int = 0
    arrived: int = 0
    resolved: int = 0
    failed_calls: int = 0
    response_s: list[float] = field(default_factory=list)  # reported → first unit on scene

    @property
    def median_response_s(self) -> float | None:
        return statistics.median(self.response_s) if self.response_s else None


class CommandRoom:
    """Reports calls, offers the unurgent ones, answers offers for the units and closes handled incidents."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str,
        *,
        drive_to: Callable[[str, float, float], bool],
        release: Callable[[str], None],
        handling_s: float = 20.0,
        answer_s: float = 2.0,
        silent_share: float = 0.15,
        rng: random.Random | None = None,
    ) -> None:
        self._http = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._drive_to = drive_to
        self._release = release
        self._handling_s = handling_s
        self._answer_s = answer_s
        # Some officers do not answer in time: the offer times out and goes to the next nearest unit.
        self._silent_share = silent_share
        self._rng = rng or random.Random(7)
        self._reported_at: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = RoomStats()
        self.listeners: list[Callable[[dict[str, Any]], None]] = []  # every stream event (the patrol's)

    async def report(self, call: DemoCall) -> None:
        """POST the call as an incident; offer P3/P4 to the recommended unit (P1/P2 go by policy)."""
        priority = priority_of(call.category)
        body = {
            "lon": call.lon,
            "lat": call.lat,
            "category": call.category.lower(),
            "priority": priority,
            "source": "call",
            "description": call.description[:900],
            "reporter": "demo caller",
            "address": call.address[:400] or None,
        }
        created = await self._post("/v1/incidents", body)
        if created is None:
            return
        self.stats.reported += 1
        self._reported_at[created["id"]] = time.monotonic()
        if priority in ("P3", "P4"):
            await self._post(f"/v1/incidents/{created['id']}/offers", {})

    async def respond(self) -> None:
        """Follow the live stream and play each offered unit's part until cancelled."""
        async for event in self._events():
            for listener in self.listeners:
                listener(event)
            kind = event.get("type")
            if kind == "incident.offered":
                self.stats.offered += 1
                self._spawn(self._answer(event))
            elif kind == "incident.arrived":
                self.stats.arrived += 1
                started = self._reported_at.pop(str(event.get("incident_id")), None)
                if started is not None:
                    self.stats.response_s.append(time.monotonic() - started)
                self._spawn(self._handle(event))

    async def _answer(self, event: dict[str, Any]) -> None:
        if self._rng.random() < self._silent_share:
            return  # this officer stays silent; the offer times out
        await asyncio.sleep(self._answer_s * self._rng.uniform(0.5, 1.5))
        incident, offer, unit = event["incident_id"], event["offer_id"], event.get("unit_id")
        if await self._post(f"/v1/incidents/{incident}/offers/{offer}/accept", {}) is None or unit is None:
            return
        if self._drive_to(str(unit), float(event["lon"]), float(event["lat"])):
            await self._post(f"/v1/incidents/{incident}/en_route", {"unit_id": unit})

    async def _handle(self, event: dict[str, Any]) -> None:
        await asyncio.sleep(self._handling_s * self._rng.uniform(0.5, 1.5))
        incident, unit = event["incident_id"], event.get("unit_id")
        if await self._post(f"/v1/incidents/{incident}/resolve", {"reason": "handled on scene"}) is None:
            return
        self.stats.resolved += 1
        await self._post(
            f"/v1/incidents/{incident}/feedback",
            {"outcome": "resolved", "notes": "demo: handled on scene", "officer": unit or "demo"},
        )
        await self._post(
            f"/v1/incidents/{incident}/evaluation",
            {"score": self._rng.randint(3, 5), "evaluator": "demo supervisor", "comments": "timely"},
        )
        if unit is not None:
            self._release(str(unit))

    async def _events(self) -> AsyncIterator[dict[str, Any]]:
        """The SSE stream as dicts; reconnects when the server closes it."""
        while True:
            try:
                async with self._http.get(
                    f"{self._base}/v1/stream",
                    headers=self._headers,
                    timeout=aiohttp.ClientTimeout(total=None),
                ) as resp:
                    async for raw in resp.content:
                        line = raw.decode("utf-8", "replace").strip()
                        if line.startswith("data:"):
                            with contextlib.suppress(msgspec.DecodeError):
                                yield msgspec.json.decode(line[5:].strip())
            except aiohttp.ClientError as exc:
                log.warning("live stream interrupted (%s); reconnecting", exc)
            await asyncio.sleep(1.0)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        try:
            async with self._http.post(self._base + path, json=body, headers=self._headers) as resp:
                if resp.status >= 400:
                    self.stats.failed_calls += 1
                    log.debug("demo call %s answered %s: %s", path, resp.status, await resp.text())
                    return None
                data: dict[str, Any] = await resp.json()
                return data
        except aiohttp.ClientError as exc:
            self.stats.failed_calls += 1
            log.debug("demo call %s failed: %s", path, exc)
            return None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@dataclass(frozen=True)
class Snapshot:
    """One line of the demo's terminal summary."""

    units_online: int
    fixes_stored: float
    incidents_open: int


async def snapshot(session: aiohttp.ClientSession, base_url: str, token: str) -> Snapshot:
    """Units online, fixes stored so far and open incidents, read from the API like a console would."""
    headers = {"Authorization": f"Bearer {token}"}
    base = base_url.rstrip("/")
    async with session.get(f"{base}/v1/units", params={"bbox": "-180,-90,180,90"}, headers=headers) as r:
        units = (await r.json()).get("units", []) if r.status == 200 else []
    async with session.get(f"{base}/v1/incidents", params={"limit": "500"}, headers=headers) as r:
        incidents = (await r.json()).get("incidents", []) if r.status == 200 else []
    async with session.get(f"{base}/metrics", headers=headers) as r:
        metrics = await r.text() if r.status == 200 else ""
    closed = {"resolved", "feedback_recorded", "evaluated", "closed", "cancelled", "transferred", "merged"}
    return Snapshot(
        units_online=len(units),
        fixes_stored=_metric(metrics, "outpost_ingest_fixes_stored_total"),
        incidents_open=sum(1 for i in incidents if i.get("state") not in closed),
    )


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def summary_line(
    snap: Snapshot,
    stats: RoomStats,
    fixes_per_s: float,
    started: datetime,
    now: datetime,
    patrol: PatrolStats | None = None,
) -> str:
    """The demo's one-line live summary."""
    median = stats.median_response_s
    response = f"{median:5.1f} s" if median is not None else "    –"
    elapsed = int((now - started).total_seconds())
    line = (
        f"[{elapsed // 60:02d}:{elapsed % 60:02d}] units online {snap.units_online:4d} | "
        f"fixes/s {fixes_per_s:7.1f} | incidents open {snap.incidents_open:3d} (all runs) | "
        f"this run: reported {stats.reported}, resolved {stats.resolved}, median response {response}"
    )
    return line if patrol is None else f"{line} | {patrol_summary(patrol)}"


def patrol_summary(p: PatrolStats) -> str:
    """The patrol watch's part of the summary: check-ins, alerts raised (up now), the last roll call."""
    if p.last_rollcall is None:
        rollcall = "open" if p.rollcalls else "none yet"
    else:
        rollcall = ", ".join(f"{n} {result}" for result, n in sorted(p.last_rollcall.items()) if n)
    return (
        f"check-ins {p.checkins} | out of grid {p.alerts('out_of_grid')} | "
        f"coverage gaps {p.alerts('coverage_gap')} | device health {p.alerts('health')} | "
        f"roll calls {p.rollcalls} (last: {rollcall})"
    )
