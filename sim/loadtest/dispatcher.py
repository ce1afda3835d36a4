"""The dispatcher load: nearest-unit queries and incident creation at fixed rates, from concurrent clients.

Open loop like the fleet: a scheduler releases jobs on time into a small queue and `clients` workers take
them. Latency is the duration of each successful request (service time); a job that finds the queue full
is dropped and counted, because every client was busy: the sign the API (or the generator) cannot keep up.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from sim.loadtest.crew import Crew
from sim.loadtest.pacer import Pacer

NEAREST = "nearest"
CREATE_INCIDENT = "create_incident"


@dataclass
class CallStats:
    """Outcomes of one kind of API call."""

    status: Counter[int] = field(default_factory=Counter)
    errors: int = 0  # no HTTP answer (connection refused, reset, timeout)
    dropped: int = 0  # released while every client was busy

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        ok = sum(n for s, n in self.status.items() if 200 <= s < 300)
        return {
            "ok": ok,
            "status": {str(k): v for k, v in sorted(self.status.items())},
            "errors": self.errors,
            "dropped": self.dropped,
        }


def incident_body(lon: float, lat: float, run_tag: str) -> dict[str, Any]:
    """A low-priority incident (P4 is never auto-dispatched, so the load does not move units around)."""
    return {
        "lon": lon,
        "lat": lat,
        "category": "loadtest",
        "priority": "P4",
        "source": "dispatcher",
        "description": f"load test {run_tag}",
    }


class DispatcherLoad:
    """Runs the scheduled API calls against `plan.http_url` until the plan's duration has passed."""

    def __init__(self, crew: Crew, session: aiohttp.ClientSession) -> None:
        plan = crew.plan
        self.plan, self.recorder, self.clock, self.sleep = plan, crew.recorder, crew.clock, crew.sleep
        self.session = session
        self.stats = {NEAREST: CallStats(), CREATE_INCIDENT: CallStats()}
        self.base_url = plan.http_url.rstrip("/")
        self._rng = random.Random(plan.seed + 2)
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=plan.dispatch_clients * 2)

    async def run(self) -> None:
        """Schedule and serve every call, then stop the workers."""
        workers = [asyncio.create_task(self._worker()) for _ in range(self.plan.dispatch_clients)]
        try:
            await self._schedule()
        finally:
            for _ in workers:
                await self._queue.put(None)
            await asyncio.gather(*workers, return_exceptions=True)

    async def _schedule(self) -> None:
        start_s = self.clock()
        pacers = {}
        if self.plan.dispatch_rate_qps > 0:
            limit = int(self.plan.dispatch_rate_qps * self.plan.duration_s)
            pacers[NEAREST] = Pacer(self.plan.dispatch_rate_qps, start_s, limit)
        if self.plan.incident_rate_per_s > 0:
            limit = int(self.plan.incident_rate_per_s * self.plan.duration_s)
            pacers[CREATE_INCIDENT] = Pacer(self.plan.incident_rate_per_s, start_s, limit)
        while any(not p.done for p in pacers.values()):
            now_s = self.clock()
            for kind, pacer in pacers.items():
                for _ in range(pacer.due(now_s)):
                    try:
                        self._queue.put_nowait(kind)
                    except asyncio.QueueFull:
                        self.stats[kind].dropped += 1
            next_s = min(p.next_due_s() for p in pacers.values())
            await self.sleep(min(0.05, max(0.001, next_s - self.clock())))

    async def _worker(self) -> None:
        while (kind := await self._queue.get()) is not None:
            await self._call(kind)

    async def _call(self, kind: str) -> None:
        lon, lat = self._point()
        started_s = self.clock()
        try:
            if kind == NEAREST:
                params = {"lon": f"{lon:.6f}", "lat": f"{lat:.6f}", "k": "5"}
                request = self.session.get(f"{self.base_url}/v1/units/nearest", params=params)
            else:
                body = incident_body(lon, lat, self.plan.run_tag)
                request = self.session.post(f"{self.base_url}/v1/incidents", json=body)
            async with request as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            self.stats[kind].errors += 1
            return
        done_s = self.clock()
        self.stats[kind].status[status] += 1
        if not 200 <= status < 300:
            return  # a fast 4xx would flatter the latency figures: counted above, not timed
        self.recorder.latency(f"api.{kind}", done_s, (done_s - started_s) * 1000.0)
        self.recorder.count(f"api.{kind}", done_s)

    def _point(self) -> tuple[float, float]:
        min_lon, min_lat, max_lon, max_lat = self.plan.area
        return self._rng.uniform(min_lon, max_lon), self._rng.uniform(min_lat, max_lat)
