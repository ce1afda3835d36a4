"""The live stream: SSE over HTTP, moves coalesced per unit, status at once, slow consoles dropped."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import ClientResponse

from dispatch.clock import ManualClock
from dispatch.events import EventBus
from dispatch.settings import ApiSettings
from tests.dispatch.conftest import START_S, LiveApi, fix, running_api


async def _next_event(response: ClientResponse) -> dict[str, Any]:
    while True:
        # A guard against hanging the suite, not a timing assertion.
        block = (await asyncio.wait_for(response.content.readuntil(b"\n\n"), 30)).decode()
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if data:
            return dict(json.loads(data[0]))


async def test_sse_stream_coalesces_moves_and_sends_status_at_once(sqlite_api: LiveApi) -> None:
    api = sqlite_api
    for unit_id in ("u1", "u2"):
        await api.json(
            "POST",
            "/v1/units",
            json={"id": unit_id, "name": unit_id, "kind": "police", "status": "available"},
            status=201,
        )
    api.fleet.apply([fix("d1", "u1", 4.35, 50.85, START_S - 1)])
    response = await api.call("GET", "/v1/stream?bbox=4.3,50.8,4.4,50.9", role="viewer")
    assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
    snapshot = await _next_event(response)
    assert snapshot["type"] == "unit.snapshot" and snapshot["unit_id"] == "u1"

    for step in range(10):  # ten moves of u1 within one coalescing window
        api.fleet.apply([fix("d1", "u1", 4.35 + step * 1e-4, 50.85, START_S + step)])
    api.fleet.apply([fix("d2", "u2", 9.0, 45.0, START_S)])  # outside the box: not sent
    await api.json("POST", "/v1/units/u2/status", role="dispatcher", json={"status": "busy"})
    status = await _next_event(response)  # status changes do not wait for the window
    assert status["type"] == "unit.status" and (status["unit_id"], status["old"], status["new"]) == (
        "u2",
        "available",
        "busy",
    )
    assert status["actor"].endswith(":test-dispatcher")

    await api.clock.tick(api.settings.stream_coalesce_s)
    moved = await _next_event(response)
    assert moved["type"] == "unit.moved" and moved["unit_id"] == "u1" and moved["lon"] == 4.35 + 9e-4
    api.fleet.apply([fix("d1", "u1", 4.36, 50.85, START_S + 20)])
    await api.clock.tick(api.settings.stream_coalesce_s)
    assert (await _next_event(response))["lon"] == 4.36  # the ten moves above came as one
    response.close()


async def test_a_slow_console_is_dropped_not_the_server() -> None:
    bus = EventBus(ManualClock(0.0), max_queued=3)
    slow, fast = bus.subscribe(), bus.subscribe()
    for i in range(5):
        bus.publish({"type": "unit.status", "n": i})
        assert fast.get_nowait() is not None  # the fast reader keeps up
    assert bus.subscribers == 1 and slow.closed
    got = [e async for e in slow]
    assert [e["n"] for e in got] == [0, 1, 2]  # then the iterator ends (stream.closed)


async def test_moves_are_coalesced_per_unit_and_never_sent_to_devices() -> None:
    sent: list[dict[str, Any]] = []
    bus = EventBus(ManualClock(0.0), coalesce_s=0.25, device_sink=sent.append)
    sub = bus.subscribe()
    for i in range(100):
        bus.publish({"type": "unit.moved", "unit_id": f"u{i % 3}", "n": i}, coalesce_key=f"u{i % 3}")
    bus.publish({"type": "incident.offered", "unit_id": "u1"})
    assert bus.flush() == 3
    got = [sub.get_nowait() for _ in range(4)]
    assert [e["type"] for e in got] == ["incident.offered"] + ["unit.moved"] * 3
    assert sorted(e["n"] for e in got[1:]) == [97, 98, 99]
    assert sent == [{"type": "incident.offered", "unit_id": "u1"}]


async def test_open_streams_are_limited_per_token_and_in_all_with_retry_after(sqlite_url: str) -> None:
    settings = ApiSettings(stream_max_per_token=2, stream_max_total=3)
    async with running_api(sqlite_url, settings=settings) as api:
        first = await api.call("GET", "/v1/stream", role="viewer")
        second = await api.call("GET", "/v1/stream", role="viewer")
        assert (first.status, second.status) == (200, 200)
        refused = await api.call("GET", "/v1/stream", role="viewer")
        problem = await refused.json(content_type=None)
        assert refused.status == 429 and refused.headers["Retry-After"] == "5"
        assert "OUTPOST_STREAM_MAX_PER_TOKEN" in problem["detail"]
        third = await api.call("GET", "/v1/stream", role="dispatcher")  # another token: its own slots
        assert third.status == 200
        full = await api.call("GET", "/v1/stream", role="admin")
        assert full.status == 503 and full.headers["Retry-After"] == "5"
        assert "OUTPOST_STREAM_MAX_TOTAL" in (await full.json(content_type=None))["detail"]
        first.close()  # a closed stream gives its slot back
        for _ in range(600):  # the server notices the close at its next write; a guard, not a timing
            again = await api.call("GET", "/v1/stream", role="viewer")
            if again.status == 200:
                break
            again.release()
            await api.clock.tick(api.settings.stream_keepalive_s)
            await asyncio.sleep(0.05)
        assert again.status == 200
        for response in (second, third, again):
            response.close()
