"""One load test run, start to finish: connect, drive the load, drain, ask the oracle, collect the figures."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import Engine

from sim.loadtest.crew import Crew
from sim.loadtest.dispatcher import DispatcherLoad
from sim.loadtest.fleet import Fleet
from sim.loadtest.ledger import Ledger
from sim.loadtest.metrics import Recorder
from sim.loadtest.motion import build_motions, load_traces
from sim.loadtest.oracle import Verdict, reconcile
from sim.loadtest.plan import Plan
from sim.loadtest.procstats import ProcWatch, listening_pid
from sim.loadtest.report import print_progress, progress_line
from sim.loadtest.result import RunResult
from sim.loadtest.store import RunStore
from sim.loadtest.transport import HttpTransport, MqttTransport, Transport
from sim.loadtest.visibility import VisibilityProbe
from sim.loadtest.watcher import CommitWatcher

_PROGRESS_EVERY_S = 1.0
_SETTLE_POLL_S = 0.5
_SETTLE_STABLE_POLLS = 4  # counts unchanged this many polls in a row: nothing more is coming


@dataclass(frozen=True)
class Tools:
    """Time and output, injectable for tests."""

    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    watch_interval_s: float = 0.1  # commit watcher poll interval (0: no watcher)


async def run(plan: Plan, engine: Engine | None, out: TextIO, tools: Tools | None = None) -> RunResult:
    """Run `plan` against the Outpost at its URLs; `engine` (optional) is the store the oracle reads."""
    plan.check()
    tools = tools or Tools()
    headers = {"Authorization": f"Bearer {plan.token}"} if plan.token else {}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as session:
        transport, probe_transport = await _transports(plan, session)
        try:
            return await _Run(plan, engine, out, tools, session, transport, probe_transport).go()
        finally:
            await transport.close()
            if probe_transport is not None:
                await probe_transport.close()


async def _transports(plan: Plan, session: aiohttp.ClientSession) -> tuple[Transport, Transport | None]:
    probe: Transport | None = None
    if plan.format == "http":
        transport: Transport = HttpTransport(session, plan.http_url)
        if plan.http_url and plan.probe_rate_hz > 0:
            probe = HttpTransport(session, plan.http_url, concurrency=1)
        return transport, probe
    mqtt = MqttTransport(plan.mqtt_url, plan.run_id, plan.connections, plan.qos)
    await mqtt.connect()
    if plan.http_url and plan.probe_rate_hz > 0:
        # Probes get their own connection, so they time Outpost, not the queue behind the fleet's messages.
        probe_mqtt = MqttTransport(plan.mqtt_url, plan.run_id + "-probe", 1, plan.qos)
        await probe_mqtt.connect()
        probe = probe_mqtt
    return mqtt, probe


class _Run:
    """The parts of one run, wired together: set up, warm up, drive, drain, judge, sum up."""

    def __init__(
        self,
        plan: Plan,
        engine: Engine | None,
        out: TextIO,
        tools: Tools,
        session: aiohttp.ClientSession,
        transport: Transport,
        probe_transport: Transport | None,
    ) -> None:
        self.plan, self.out, self.tools = plan, out, tools
        self.transport, self.probe_transport = transport, probe_transport
        clock, sleep = tools.clock, tools.sleep
        self.notes: list[str] = []
        self.ledger = Ledger(plan.format)
        self.recorder = Recorder(clock())
        crew = Crew(plan, self.ledger, self.recorder, clock, sleep)
        self.procs = ProcWatch(_processes(plan, self.notes), clock)
        self.store = RunStore(engine, plan.run_tag) if engine is not None else None
        self.watcher = None
        if self.store is not None and tools.watch_interval_s > 0:
            self.watcher = CommitWatcher(crew, self.store, tools.watch_interval_s)
        self.probe = None
        if probe_transport is not None:
            self.probe = VisibilityProbe(crew, probe_transport, session)
        traces = load_traces(plan.traces) if plan.traces else None
        motions = build_motions(plan.devices, plan.area, plan.seed, traces)
        self.fleet = Fleet(crew, transport, motions)
        self.dispatcher = DispatcherLoad(crew, session)
        self.fleet_done_s = 0.0
        self.drained = False

    async def go(self) -> RunResult:
        """The whole run; background tasks never outlive it."""
        background: list[asyncio.Task[None]] = []
        try:
            if self.watcher is not None:
                # Watching from before the probes' warm-up, so their first fixes are timed like every other.
                background.append(asyncio.create_task(self.watcher.run()))
            await self._warm_up()
            background.append(
                asyncio.create_task(
                    _ticker(self.plan, self.fleet, self.recorder, self.procs, self.out, self.tools)
                )
            )
            await self._drive()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        self.procs.sample()
        return self._result(await self._judge())

    async def _warm_up(self) -> None:
        if self.probe is not None and await self.probe.warm_up() == 0:
            self.notes.append(
                "probes never became visible in GET /v1/units/nearest: publish → visible not measured"
            )
            self.probe = None
        # Second 0 of the run: the fleet's pacer starts now too.
        self.recorder.start_s = self.fleet.pacer.start_s = self.tools.clock()

    async def _drive(self) -> None:
        plan = self.plan
        load: list[Awaitable[Any]] = [self.fleet.run()]
        if plan.dispatch_rate_qps > 0 or plan.incident_rate_per_s > 0:
            load.append(self.dispatcher.run())
        if self.probe is not None:
            load.append(self.probe.run(until_s=self.recorder.start_s + plan.duration_s))
        await asyncio.gather(*load)
        self.fleet_done_s = self.tools.clock()
        self.drained = await _drain(
            plan,
            self.transport,
            self.probe_transport,
            self.store,
            self.ledger,
            self.tools.clock,
            self.tools.sleep,
        )

    async def _judge(self) -> Verdict | None:
        store = self.store
        if store is None:
            return None
        observed_s = self.tools.clock() if self.watcher is not None else None
        return await asyncio.to_thread(
            lambda: reconcile(
                self.ledger, store.stored_fixes(), store.rejected_reasons(), self.recorder, observed_s
            )
        )

    def _result(self, verdict: Verdict | None) -> RunResult:
        rec, probe, watcher = self.recorder, self.probe, self.watcher
        seconds = max(rec.seconds, int(self.fleet_done_s - rec.start_s) + 1)
        return RunResult(
            plan=self.plan,
            started_s=rec.start_s,
            fleet_done_s=self.fleet_done_s,
            ended_s=self.tools.clock(),
            ledger=self.ledger,
            recorder=rec,
            verdict=verdict,
            delivery=self.transport.counters(),
            generator_behind_s=self.fleet.pacer.behind_s,
            drained=self.drained,
            dispatch={
                k: s.as_dict() for k, s in self.dispatcher.stats.items() if s.status or s.errors or s.dropped
            },
            probes={"probes": probe.probes, "timeouts": probe.timeouts} if probe is not None else {},
            watcher={"polls": watcher.polls, "gave_up": watcher.gave_up, "interval_s": watcher.interval_s}
            if watcher is not None
            else {},
            processes=self.procs.summary(),
            cpu_series={name: self.procs.cpu_series(name, rec.start_s, seconds) for name in self.procs.pids},
            notes=self.notes,
        )


def _processes(plan: Plan, notes: list[str]) -> dict[str, int]:
    pids = {f"outpost{'' if i == 0 else f'-{i + 1}'}": pid for i, pid in enumerate(plan.outpost_pids)}
    if not pids and plan.http_url:
        parts = urlsplit(plan.http_url)
        if parts.hostname in ("127.0.0.1", "localhost", "::1") and parts.port:
            pid = listening_pid(parts.port)
            if pid is not None:
                pids["outpost"] = pid
    if not pids:
        notes.append("Outpost's CPU and memory not measured: pass --outpost-pid (or run it on this machine)")
    pids["loadtest"] = os.getpid()
    return pids


async def _ticker(
    plan: Plan, fleet: Fleet, recorder: Recorder, procs: ProcWatch, out: TextIO, tools: Tools
) -> None:
    while True:
        procs.sample()
        elapsed_s = tools.clock() - recorder.start_s
        stored = recorder.total("stored")
        last = recorder.per_second_ms.get("publish_to_stored", {}).get(recorder.second(tools.clock()) - 1)
        p99 = sorted(last)[int(0.99 * (len(last) - 1))] if last else None
        acked = fleet.transport.counters().get("acked", 0)
        sent = fleet.ledger.messages
        line = progress_line(
            elapsed_s, plan.duration_s, sent, acked if isinstance(acked, int) else 0, stored, p99
        )
        print_progress(out, line, final=False)
        await tools.sleep(_PROGRESS_EVERY_S)


async def _drain(
    plan: Plan,
    transport: Transport,
    probe_transport: Transport | None,
    store: RunStore | None,
    ledger: Ledger,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
) -> bool:
    """Wait (bounded by plan.drain_timeout_s) until everything sent is acknowledged and the store settles."""
    deadline_s = clock() + plan.drain_timeout_s
    flushed = await transport.flush(max(0.0, deadline_s - clock()))
    if probe_transport is not None:
        flushed = await probe_transport.flush(max(0.0, deadline_s - clock())) and flushed
    if store is None:
        return flushed
    expected = (ledger.sent_valid, ledger.injected_total)
    last: tuple[int, int] | None = None
    stable = 0
    while clock() < deadline_s:
        counts = await asyncio.to_thread(store.counts)
        if counts[0] >= expected[0] and counts[1] >= expected[1]:
            return flushed
        stable = stable + 1 if counts == last else 0
        if stable >= _SETTLE_STABLE_POLLS:
            return False  # nothing moves any more: the oracle will say what is missing
        last = counts
        await sleep(_SETTLE_POLL_S)
    return False
