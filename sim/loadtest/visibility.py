"""Publish → visible probes: how long until a published fix shows in the nearest-unit query.

A few probe devices live just outside the fleet's area. Each probe moves one of them by 30 m (a plausible
15 m/s at most, so no impossible-speed flag), publishes the fix, and asks `GET /v1/units/nearest` at the new
position every `poll_interval_s` until a unit of that device answers within 1 m. The figure is an upper
bound: it includes up to one poll interval and the answering request's duration. Probes run one at a time,
so they add one request per poll interval to the API load at most.
"""

from __future__ import annotations

import random
from typing import Any

import aiohttp

from geo.distance import destination
from sim.loadtest.crew import Crew
from sim.loadtest.messages import VALID, build
from sim.loadtest.motion import Sample
from sim.loadtest.transport import Transport

STEP_M = 30.0
VISIBLE_WITHIN_M = 1.0


def probe_name(j: int) -> str:
    """The fleet name of probe device j."""
    return f"p{j:06d}"


def shows_unit_at(body: Any, name: str) -> bool:
    """Whether a nearest answer lists a unit of device `name` within VISIBLE_WITHIN_M of the query point."""
    units = body.get("units") if isinstance(body, dict) else None
    if not isinstance(units, list):
        return False
    for unit in units:
        if not isinstance(unit, dict):
            continue
        distance = unit.get("distance_m")
        if (
            name in str(unit.get("id", ""))
            and isinstance(distance, int | float)
            and distance < VISIBLE_WITHIN_M
        ):
            return True
    return False


class VisibilityProbe:
    """Sequential probes at up to `plan.probe_rate_hz`, through their own transport."""

    def __init__(
        self,
        crew: Crew,
        transport: Transport,
        session: aiohttp.ClientSession,
        poll_interval_s: float = 0.005,
        timeout_s: float = 5.0,
    ) -> None:
        plan = crew.plan
        self.plan, self.ledger, self.recorder = plan, crew.ledger, crew.recorder
        self.clock, self.sleep = crew.clock, crew.sleep
        self.transport = transport
        self.session = session
        self.poll_interval_s = poll_interval_s
        self.timeout_s = timeout_s
        self.timeouts = 0
        self.probes = 0
        self.last_ts_ms = [0] * plan.probe_devices
        self._rng = random.Random(plan.seed + 1)
        self.positions = [self._home(j) for j in range(plan.probe_devices)]
        self._nearest_url = plan.http_url.rstrip("/") + "/v1/units/nearest"

    def _home(self, j: int) -> tuple[float, float]:
        min_lon, min_lat, max_lon, max_lat = self.plan.area
        lat = max_lat + 0.02 if max_lat < 89.0 else min_lat - 0.02
        return (min_lon + (max_lon - min_lon) * (j + 0.5) / self.plan.probe_devices, lat)

    async def warm_up(self) -> int:
        """Publish each probe device's first fix (it registers the device) and wait until it shows.

        Returns how many became visible (0 as soon as the first does not: the endpoint or the registration
        is missing, and waiting for the others would only waste the timeout). The time this takes is not
        recorded: registration is not freshness.
        """
        visible = 0
        for j in range(self.plan.probe_devices):
            if await self._probe(j, record=False) is not None:
                visible += 1
            elif visible == 0:
                return 0
        return visible

    async def run(self, until_s: float) -> None:
        """Probe round robin until `until_s` (wall time)."""
        interval_s = 1.0 / self.plan.probe_rate_hz
        j = 0
        while self.clock() + interval_s <= until_s:
            started_s = self.clock()
            await self._probe(j % self.plan.probe_devices, record=True)
            j += 1
            await self.sleep(max(0.0, started_s + interval_s - self.clock()))

    async def _probe(self, j: int, *, record: bool) -> float | None:
        lon, lat = self.positions[j]
        if self.last_ts_ms[j]:
            lon, lat = destination(lon, lat, self._rng.uniform(0.0, 360.0), STEP_M)
        self.positions[j] = (lon, lat)
        name = probe_name(j)
        device_id = self.plan.device_prefix + name
        now_s = self.clock()
        step_ms = 1 if self.plan.format == "outpost" else 1000
        ts_ms = max(int(now_s * 1000) // step_ms * step_ms, self.last_ts_ms[j] + step_ms)
        self.last_ts_ms[j] = ts_ms
        seq = self.ledger.next_seq(name, device_id)
        msg = build(
            self.plan.format,
            name,
            device_id,
            seq,
            ts_ms,
            Sample(lon, lat, 5.0, 0.0),
            VALID,
            self.plan.http_ingest_path,
        )
        published_s = self.clock()
        self.transport.send(msg)
        self.ledger.record(msg, published_s)
        seen_s = await self._poll(name, lon, lat, published_s + self.timeout_s)
        if not record:
            return seen_s
        self.probes += 1
        if seen_s is None:
            self.timeouts += 1
            return None
        self.recorder.latency("publish_to_visible", seen_s, (seen_s - published_s) * 1000.0)
        return seen_s

    async def _poll(self, name: str, lon: float, lat: float, deadline_s: float) -> float | None:
        params = {"lon": f"{lon:.7f}", "lat": f"{lat:.7f}", "k": "3"}
        while self.clock() < deadline_s:
            try:
                async with self.session.get(self._nearest_url, params=params) as resp:
                    body = await resp.json(content_type=None) if resp.status == 200 else None
            except (aiohttp.ClientError, TimeoutError, ValueError):
                body = None
            if body is not None and shows_unit_at(body, name):
                return self.clock()
            await self.sleep(self.poll_interval_s)
        return None
