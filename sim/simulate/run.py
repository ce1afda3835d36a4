"""`simulate`: publish a fleet (road network, random walk or replayed traces) to an MQTT broker.

Time: the fleet lives in simulated time, which runs `speedup` times faster than the wall clock (`SimClock`).
Each fix is stamped with the wall-clock moment its simulated time maps to, never with a time in the
future (ingest rejects those), so with speedup > 1 units appear to move `speedup` times faster: their implied
speed is multiplied by the factor (ingest flags implied speeds above OUTPOST_MAX_SPEED_MPS).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ingest.mqtt.publisher import Publisher
from sim.simulate.driving import RoadFleet
from sim.simulate.messages import Faults, Format, encode, topic_for
from sim.simulate.roads import shipped_graph
from sim.simulate.sample import Source
from sim.simulate.traces import TraceReplay
from sim.simulate.walk import WalkFleet

SourceName = Literal["roads", "walk", "traces"]
_IDLE_SLEEP_MAX_S = 0.25  # longest sleep between checks, so progress and cancellation stay responsive
# Samples due within this many wall seconds go out now: a sleep that short is below the timer resolution
# (and below a float's resolution of an epoch timestamp, which would make an injected clock loop forever).
_EARLY_S = 0.001
_CANCEL_FLUSH_S = 2.0


class SimClock:
    """Simulated seconds since the start, running `speedup` times faster than `wall` (injectable)."""

    def __init__(self, speedup: float = 1.0, wall: Callable[[], float] = time.time) -> None:
        if speedup <= 0:
            raise ValueError("speedup must be positive")
        self.speedup = speedup
        self._wall = wall
        self.start_wall_s = wall()

    def sim_s(self) -> float:
        """Simulated seconds elapsed."""
        return (self._wall() - self.start_wall_s) * self.speedup

    def wall_at(self, sim_s: float) -> float:
        """The wall-clock time (epoch s) that simulated second `sim_s` maps to."""
        return self.start_wall_s + sim_s / self.speedup


@dataclass(frozen=True)
class SimulateOptions:
    """What to simulate and where to publish it (the `outpost simulate` options)."""

    mqtt_url: str = "mqtt://127.0.0.1:1883"
    source: SourceName = "roads"
    devices: int = 20  # traces: at most this many objects (0: all)
    rate_hz: float = 0.2  # fixes per device per simulated second (roads, walk)
    duration_s: float = 0.0  # wall-clock seconds; 0: until the source ends (traces) or cancelled
    speedup: float = 1.0
    fmt: Format = "outpost"
    qos: int = 1
    traces: Path | None = None
    bad_share: float = 0.0
    redeliver_share: float = 0.0
    seed: int = 0
    client_id: str = "outpost-simulator"
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    max_pending: int = 20_000  # unacknowledged messages before the simulator waits for the broker


@dataclass
class SimulateStats:
    """Counters of a run; `last_seq` per device is the loss oracle (each device sent seq 1..last_seq)."""

    devices: int = 0
    fixes: int = 0  # valid fixes published (each with its own seq)
    sent: int = 0  # every message, including bad ones and redeliveries
    acked: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)
    sim_s: float = 0.0
    elapsed_s: float = 0.0
    flushed: bool = False


def make_source(options: SimulateOptions) -> Source:
    """The fleet the options describe."""
    if options.rate_hz <= 0:
        raise ValueError("--rate must be positive")
    interval_s = 1.0 / options.rate_hz
    if options.source == "roads":
        return RoadFleet(shipped_graph(), options.devices, interval_s, seed=options.seed)
    if options.source == "walk":
        return WalkFleet(options.devices, interval_s, seed=options.seed)
    if options.traces is None:
        raise ValueError(
            "--source traces needs --traces FILE (a Cabspotting CSV: object_id,ts_iso8601_utc,lat,lon)"
        )
    return TraceReplay(options.traces, max_devices=options.devices)


class _Emitter:
    """Turns samples into messages (seq per device, faults) and hands them to the publisher."""

    def __init__(self, options: SimulateOptions, publisher: Publisher, clock: SimClock, stats: SimulateStats):
        self.fmt = options.fmt
        self.qos = options.qos
        self.publisher = publisher
        self.clock = clock
        self.stats = stats
        self.faults = Faults(options.bad_share, options.redeliver_share, options.seed, stats.faults)

    def emit(self, source: Source, sim_s: float) -> None:
        for sample in source.due(sim_s):
            seq = self.stats.last_seq.get(sample.device_id, 0) + 1
            self.stats.last_seq[sample.device_id] = seq
            ts_ms = math.floor(self.clock.wall_at(sample.sim_s) * 1000)
            topic = topic_for(self.fmt, sample.device_id)
            payload = encode(self.fmt, sample, ts_ms, seq)
            self.publisher.publish(topic, payload, self.qos)
            self.stats.fixes += 1
            for extra in self.faults.extra(self.fmt, sample, ts_ms, payload):
                self.publisher.publish(topic, extra, self.qos)
        self.stats.devices = len(self.stats.last_seq)


async def simulate(
    options: SimulateOptions,
    *,
    publisher: Publisher | None = None,
    clock: SimClock | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_progress: Callable[[SimulateStats], None] | None = None,
    flush_timeout_s: float = 60.0,
    source: Source | None = None,
) -> SimulateStats:
    """Publish the fleet until `duration_s` (or the end of the traces); returns the counters.

    `publisher`: an already connected Publisher to reuse (else one is made from `mqtt_url` and closed after).
    `source`: a fleet made by `make_source(options)` the caller keeps a handle on (the demo sends its units
    to incidents); default: a new one.
    Cancellation stops the run; the publisher is still flushed and closed.
    """
    source = source or make_source(options)
    own = publisher is None
    pub = publisher or Publisher(options.mqtt_url, options.client_id, protocol=options.protocol)
    if own:
        await pub.connect()
    clock = clock or SimClock(options.speedup)
    stats = SimulateStats()
    emitter = _Emitter(options, pub, clock, stats)
    end_sim_s = options.duration_s * options.speedup if options.duration_s > 0 else math.inf
    sent0, acked0 = pub.sent, pub.acked
    flush_s = flush_timeout_s
    try:
        while (next_s := source.next_due_s()) is not None and next_s <= end_sim_s:
            stats.sim_s = clock.sim_s()
            wait_s = (next_s - stats.sim_s) / options.speedup
            if wait_s > _EARLY_S:
                await sleep(min(wait_s, _IDLE_SLEEP_MAX_S))
            else:
                emitter.emit(source, min(max(stats.sim_s, next_s), end_sim_s))
                await pub.wait_pending_below(options.max_pending)
            stats.sent, stats.acked = pub.sent - sent0, pub.acked - acked0
            stats.elapsed_s = stats.sim_s / options.speedup
            if on_progress:
                on_progress(stats)
    except asyncio.CancelledError:
        flush_s = min(flush_timeout_s, _CANCEL_FLUSH_S)  # asked to stop: do not hang on a dead broker
        raise
    finally:
        stats.flushed = await _flush(pub, flush_s)
        stats.sent, stats.acked = pub.sent - sent0, pub.acked - acked0
        if on_progress:
            on_progress(stats)
        if own:
            await pub.close()
    return stats


async def _flush(pub: Publisher, timeout_s: float) -> bool:
    try:
        await pub.flush(timeout_s)
    except TimeoutError:
        return False
    return True
