"""The demo's scenario, played against a running Outpost: the fleet on San Francisco's roads, the real calls
of 30 May 2008 at their places and times, the command room answering them, and a summary every 2 s.

Like any client it knows Outpost only by its addresses and a token (`Target`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from ingest.mqtt.publisher import Publisher
from schemas.config import redact_url
from sim.demo.patrol import PatrolDesk, PatrolPlan
from sim.demo.room import CommandRoom, DemoCall, snapshot, summary_line
from sim.simulate.incidents import feed_from_now
from sim.simulate.run import SimulateOptions, make_source, simulate
from sim.simulate.sample import Source

log = logging.getLogger(__name__)

# Seconds between two summary lines.
_SUMMARY_EVERY_S = 2.0


@dataclass(frozen=True)
class DemoOptions:
    """`outpost demo` options."""

    units: int = 30
    speedup: float = 10.0
    traces: str | None = None
    duration_s: float = 0.0  # 0: until Ctrl-C
    auxiliary_share: float = 0.3  # share of units that are auxiliaries (P1 needs police + auxiliary)
    rollcall_every_s: float = 180.0  # wall seconds between two roll calls of everyone on duty
    rollcall_deadline_s: float = 30.0  # wall seconds the officers have to answer one
    dead_spot_every_s: float = 90.0  # wall seconds between two units driving into a dead spot (0: never)
    dead_spot_s: float = 20.0  # wall seconds a unit in a dead spot sends nothing (its device goes offline)


@dataclass(frozen=True)
class Target:
    """The running Outpost the scenario plays against."""

    http_url: str
    mqtt_url: str
    storage: str
    token: str  # the simulator's own (its officers and dispatcher act with it, and the audit says so)
    user_token: str  # the one the banner gives the person watching


async def play(target: Target, options: DemoOptions, stop: asyncio.Event, out: Callable[[str], None]) -> None:
    """Play the scenario until `stop` is set or `options.duration_s` has passed."""
    sim_options = SimulateOptions(
        mqtt_url=target.mqtt_url,
        source="traces" if options.traces else "roads",
        devices=options.units,
        speedup=options.speedup,
        traces=Path(options.traces) if options.traces else None,
        client_id="outpost-demo-fleet",
    )
    source = make_source(sim_options)
    drive_to = getattr(source, "send_to", None)
    release = getattr(source, "release", None)
    print_banner(out, target, options)
    phones = Publisher(target.mqtt_url, "outpost-demo-phones")  # the officers' check-ins and answers
    await phones.connect()
    async with aiohttp.ClientSession() as http:
        room = CommandRoom(
            http,
            target.http_url,
            target.token,
            drive_to=drive_to or (lambda unit, lon, lat: False),
            release=release or (lambda unit: None),
            handling_s=120.0 / options.speedup,
            answer_s=4.0 / options.speedup,
        )
        plan = PatrolPlan(
            options.rollcall_every_s,
            options.rollcall_deadline_s,
            _auxiliary_every(options),
            expected_units=1 if options.traces else options.units,
        )
        send = phones.publish
        patrol = PatrolDesk(http, target.http_url, target.token, lambda t, p: send(t, p, 1), plan)
        room.listeners.append(patrol.on_event)
        background = [
            asyncio.create_task(simulate(sim_options, source=source), name="demo-fleet"),
            asyncio.create_task(room.respond(), name="demo-room"),
            asyncio.create_task(_calls(room, options.speedup), name="demo-calls"),
            asyncio.create_task(patrol.run(), name="demo-patrol"),
            asyncio.create_task(_dead_spots(source, options), name="demo-dead-spots"),
        ]
        try:
            await _summarise(http, target, room, patrol, options, stop, out)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await phones.close()


async def _calls(room: CommandRoom, speedup: float) -> None:
    async for call in feed_from_now(speedup).follow():
        rec = call.incident
        await room.report(DemoCall(call.ref, rec.lon, rec.lat, rec.category, rec.descript, rec.address))


def print_banner(out: Callable[[str], None], target: Target, options: DemoOptions) -> None:
    """Where to look, and the curl lines to try."""
    fleet = f"replaying {options.traces}" if options.traces else f"{options.units} patrol units on SF roads"
    token, base = target.user_token, target.http_url
    out(f"Outpost demo: {fleet}, real SFPD calls of 30 May 2008, {options.speedup:g}x faster than real time")
    out(f"  live map       {base}/map   (sign in with your token; wall screen: {base}/map?wall=1)")
    out(f"  your token     {token}   (admin; the simulated officers have their own)")
    out(f"  API            {base}   (storage: {target.storage})")
    out(f"  MQTT           {redact_url(target.mqtt_url)}   (point mosquitto_pub or OwnTracks here)")
    out(f"  OpenAPI        {base}/openapi.json")
    out(f"  live stream    curl -N -H 'Authorization: Bearer {token}' {base}/v1/stream")
    out(
        "  nearest unit   curl -H 'Authorization: Bearer " + token + "' "
        f"'{base}/v1/units/nearest?lon=-122.4194&lat=37.7793&k=3'"
    )
    out("Ctrl-C stops the demo; the data stays in ./outpost-data/.")


async def _dead_spots(source: Source, options: DemoOptions) -> None:
    """Now and then a unit drives into a dead spot: its device goes silent for a while, then comes back."""
    go_dark, units = getattr(source, "go_dark", None), list(getattr(source, "units", []))
    rng = random.Random(5)
    while go_dark is not None and units and options.dead_spot_every_s > 0:
        await asyncio.sleep(options.dead_spot_every_s)
        go_dark(rng.choice(units).device_id, options.dead_spot_s * options.speedup)


def _auxiliary_every(options: DemoOptions) -> int:
    """Every n-th unit (by id) is an auxiliary, as a community patrol mixes both (0: none)."""
    return max(1, round(1 / options.auxiliary_share)) if options.auxiliary_share > 0 else 0


async def _summarise(
    http: aiohttp.ClientSession,
    target: Target,
    room: CommandRoom,
    patrol: PatrolDesk,
    options: DemoOptions,
    stop: asyncio.Event,
    out: Callable[[str], None],
) -> None:
    started = datetime.now(UTC)
    last_fixes, last_t = 0.0, time.monotonic()
    deadline = time.monotonic() + options.duration_s if options.duration_s > 0 else None
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=_SUMMARY_EVERY_S)
        try:
            snap = await snapshot(http, target.http_url, target.token)
        except Exception as exc:  # the summary must never bring the demo down
            log.debug("summary failed: %s", exc)
            continue
        now_t = time.monotonic()
        rate = (snap.fixes_stored - last_fixes) / max(now_t - last_t, 1e-6)
        last_fixes, last_t = snap.fixes_stored, now_t
        out(summary_line(snap, room.stats, rate, started, datetime.now(UTC), patrol.stats))
