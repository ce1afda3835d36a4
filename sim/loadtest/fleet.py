"""The device fleet: N devices publishing at a paced rate, with bad messages and redeliveries mixed in."""

from __future__ import annotations

import math
import random
from collections import deque

from sim.loadtest.crew import Crew
from sim.loadtest.messages import BAD_KINDS, VALID, Message, build
from sim.loadtest.motion import Motion
from sim.loadtest.pacer import Pacer
from sim.loadtest.plan import SECOND_RESOLUTION_FORMATS
from sim.loadtest.transport import Transport

# A redelivery goes out this long after the original: late enough that the original is usually committed,
# so the store's idempotence is what prevents the duplicate, not a batch that dedupes in memory.
REDELIVER_DELAY_S = 1.0
_MAX_TICK_S = 0.05


def device_name(i: int) -> str:
    """The fleet's name for device i (the oracle reads it back from the end of the device id)."""
    return f"d{i:06d}"


class Fleet:
    """Publishes `plan.fleet_messages` messages round robin over the devices, on an open-loop schedule."""

    def __init__(self, crew: Crew, transport: Transport, motions: list[Motion]) -> None:
        plan = crew.plan
        self.plan, self.ledger, self.recorder = plan, crew.ledger, crew.recorder
        self.clock, self.sleep = crew.clock, crew.sleep
        self.transport = transport
        self.motions = motions
        self.names = [device_name(i) for i in range(plan.devices)]
        self.ids = [plan.device_prefix + n for n in self.names]
        self.last_ts_ms = [0] * plan.devices
        self.pacer = Pacer(plan.devices * plan.rate_hz, crew.clock(), plan.fleet_messages)
        self._rng = random.Random(plan.seed)
        self._sent_first = 0
        self._bad_count = 0
        self._cursor = 0
        self._redeliveries: deque[tuple[float, Message]] = deque()
        self._ts_step_ms = 1000 if plan.format in SECOND_RESOLUTION_FORMATS else 1

    async def run(self) -> None:
        """Send the whole schedule, then the redeliveries still waiting; returns when all are queued."""
        while not self.pacer.done:
            now_s = self.clock()
            for _ in range(self.pacer.due(now_s)):
                self._send_next(now_s)
            self._redeliver(now_s)
            await self.transport.room()
            await self.sleep(min(_MAX_TICK_S, max(0.001, self.pacer.next_due_s() - self.clock())))
        while self._redeliveries:
            await self.sleep(max(0.0, min(_MAX_TICK_S, self._redeliveries[0][0] - self.clock())))
            self._redeliver(self.clock())

    def _send_next(self, now_s: float) -> None:
        i = self._cursor % self.plan.devices
        self._cursor += 1
        name, device_id = self.names[i], self.ids[i]
        kind = self._next_kind()
        sample = self.motions[i].at(now_s - self.pacer.start_s)
        # Strictly increasing per device: (device_id, ts) is the store's key; two fixes must never share it.
        ts_ms = max(
            int(now_s * 1000) // self._ts_step_ms * self._ts_step_ms, self.last_ts_ms[i] + self._ts_step_ms
        )
        self.last_ts_ms[i] = ts_ms
        seq = self.ledger.next_seq(name, device_id)
        msg = build(self.plan.format, name, device_id, seq, ts_ms, sample, kind, self.plan.http_ingest_path)
        self.transport.send(msg)
        self.ledger.record(msg, now_s)
        self.recorder.count("sent", now_s)
        if kind == VALID and self._rng.random() < self.plan.redeliver_share:
            self._redeliveries.append((now_s + REDELIVER_DELAY_S, msg))

    def _next_kind(self) -> str:
        # Message n is bad when floor(n × share) steps up: the share is exact (not just on average) and the
        # kinds take turns, so even a short run injects each kind in known numbers.
        n = self._sent_first
        self._sent_first += 1
        share = self.plan.bad_share
        if math.floor((n + 1) * share + 1e-9) == math.floor(n * share + 1e-9):
            return VALID
        kind = BAD_KINDS[self._bad_count % len(BAD_KINDS)]
        self._bad_count += 1
        return kind

    def _redeliver(self, now_s: float) -> None:
        while self._redeliveries and self._redeliveries[0][0] <= now_s:
            _, msg = self._redeliveries.popleft()
            self.transport.send(msg)
            self.ledger.record_redelivery()
            self.recorder.count("redelivered", now_s)
