"""The dispatcher load and the visibility probes against a small stand-in API on a real socket.

The stand-in answers like Outpost's routes (same paths and body shapes); these tests check the tool's own
pacing, counting and timing logic. The real API is exercised by test_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from sim.loadtest.crew import Crew
from sim.loadtest.dispatcher import CREATE_INCIDENT, NEAREST, DispatcherLoad
from sim.loadtest.ledger import Ledger
from sim.loadtest.metrics import Recorder
from sim.loadtest.plan import Plan
from sim.loadtest.visibility import VisibilityProbe, shows_unit_at
from tests.sim.support import RecordingTransport


def stand_in(transport: RecordingTransport | None = None, hidden_polls: int = 0) -> web.Application:
    """nearest: each probe fix becomes visible after `hidden_polls` polls; incidents: every 3rd is a 409."""
    seen: Counter[str] = Counter()
    calls = Counter[str]()

    async def nearest(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer t0k"
        units = []
        if transport is not None and transport.messages:
            last = transport.messages[-1]
            body = json.loads(last.payload)
            key = f"{last.device_id}#{last.seq}"
            seen[key] += 1
            lon, lat = float(request.query["lon"]), float(request.query["lat"])
            if seen[key] > hidden_polls and (lon, lat) == (round(body["lon"], 7), round(body["lat"], 7)):
                units.append({"id": last.device_id, "distance_m": 0.0})
            else:
                units.append({"id": last.device_id, "distance_m": 30.0})
        return web.json_response({"units": units, "excluded": {}})

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        assert body["priority"] == "P4" and body["category"] == "loadtest"
        calls["incident"] += 1
        if calls["incident"] % 3 == 0:
            return web.json_response({"status": 409}, status=409)
        return web.json_response({"id": "i1", "state": "new"}, status=201)

    app = web.Application()
    app.router.add_get("/v1/units/nearest", nearest)
    app.router.add_post("/v1/incidents", create)
    return app


async def test_dispatcher_load_paces_calls_and_counts_outcomes() -> None:
    server = TestServer(stand_in())
    await server.start_server()
    plan = Plan(
        devices=1,
        rate_hz=1.0,
        duration_s=1.0,
        mqtt_url="mqtt://x:1",
        http_url=str(server.make_url("")),
        token="t0k",
        dispatch_rate_qps=40.0,
        incident_rate_per_s=6.0,
        dispatch_clients=4,
    )
    recorder = Recorder(0.0)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer t0k"}) as session:
            load = DispatcherLoad(Crew(plan, Ledger(), recorder, time.time, asyncio.sleep), session)
            await load.run()
    finally:
        await server.close()
    nearest, incidents = load.stats[NEAREST], load.stats[CREATE_INCIDENT]
    assert sum(nearest.status.values()) + nearest.dropped + nearest.errors == 40
    assert nearest.status[200] > 30 and nearest.errors == 0
    assert incidents.status == {201: 4, 409: 2}
    assert recorder.summary("api.nearest")["count"] == nearest.status[200]
    assert recorder.summary("api.create_incident")["count"] == 4  # the 409s are counted, not timed


async def test_probes_time_publish_to_visible() -> None:
    transport = RecordingTransport()
    server = TestServer(stand_in(transport, hidden_polls=3))
    await server.start_server()
    plan = Plan(
        devices=1,
        rate_hz=1.0,
        duration_s=1.0,
        mqtt_url="mqtt://x:1",
        http_url=str(server.make_url("")),
        token="t0k",
        probe_rate_hz=10.0,
        probe_devices=2,
    )
    ledger = Ledger()
    recorder = Recorder(time.time())
    try:
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer t0k"}) as session:
            probe = VisibilityProbe(
                Crew(plan, ledger, recorder, time.time, asyncio.sleep),
                transport,
                session,
                poll_interval_s=0.001,
                timeout_s=2.0,
            )
            assert await probe.warm_up() == 2
            await probe.run(until_s=time.time() + 0.5)
    finally:
        await server.close()
    assert probe.probes >= 3 and probe.timeouts == 0
    assert recorder.summary("publish_to_visible")["count"] == probe.probes
    assert ledger.sent_valid == len(transport.messages) == probe.probes + 2
    # Consecutive probe fixes of one device are 30 m apart (plausible speed, distinct positions).
    p0 = [json.loads(m.payload) for m in transport.messages if m.device == "p000000"]
    assert len(p0) >= 2 and p0[0]["lat"] != p0[1]["lat"]


def test_shows_unit_at_needs_the_device_and_a_distance_under_a_metre() -> None:
    assert shows_unit_at({"units": [{"id": "lt-a-p000001", "distance_m": 0.2}]}, "p000001")
    assert not shows_unit_at({"units": [{"id": "lt-a-p000001", "distance_m": 3.0}]}, "p000001")
    assert not shows_unit_at({"units": [{"id": "lt-a-p000002", "distance_m": 0.0}]}, "p000001")
    assert not shows_unit_at({"type": "about:blank", "status": 401}, "p000001")
    assert not shows_unit_at([], "p000001")
