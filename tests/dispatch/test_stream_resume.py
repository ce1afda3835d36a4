"""The stream loses nothing: ids increase across connections and restarts, a reconnect with Last-Event-ID
gets what it missed from the bounded buffer, and a gap too old (or from another run) gets `resync`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import ClientResponse

from dispatch.clock import ManualClock
from dispatch.events import RECONNECT_GRACE_S, EventBus
from tests.dispatch.conftest import START_S, LiveApi, fix


async def _next_message(response: ClientResponse) -> tuple[int | None, dict[str, Any] | None]:
    """The next SSE block: its id (None: no id line) and its data (None: no data)."""
    while True:
        # A guard against hanging the suite, not a timing assertion.
        block = (await asyncio.wait_for(response.content.readuntil(b"\n\n"), 30)).decode()
        ids = [int(line[4:]) for line in block.splitlines() if line.startswith("id: ")]
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if ids or data:
            return (ids[0] if ids else None), (dict(json.loads(data[0])) if data else None)


async def _status(api: LiveApi, unit_id: str, status: str) -> None:
    await api.json("POST", f"/v1/units/{unit_id}/status", role="dispatcher", json={"status": status})


async def _resume(api: LiveApi, last_event_id: str) -> ClientResponse:
    headers = {**api.headers("viewer"), "Last-Event-ID": last_event_id}
    return await api.client.request("GET", "/v1/stream", headers=headers)


async def _unit(api: LiveApi, unit_id: str) -> None:
    body = {"id": unit_id, "name": unit_id, "kind": "police", "status": "available"}
    await api.json("POST", "/v1/units", json=body, status=201)


def test_ids_increase_across_events_and_a_restart_starts_above_the_last_run() -> None:
    clock = ManualClock(START_S)
    bus = EventBus(clock)
    sub = bus.subscribe()
    for i in range(3):
        bus.publish({"type": "unit.status", "n": i})
    ids = [bus.replay(bus.last_id - 3)]
    assert ids[0] is not None and [e["n"] for _, e in ids[0]] == [0, 1, 2]
    first_run_last = bus.last_id
    assert [i for i, _ in ids[0]] == [first_run_last - 2, first_run_last - 1, first_run_last]
    sub.close()
    clock.advance(1.0)  # the process restarts a second later
    again = EventBus(clock)
    assert again.last_id > first_run_last
    assert again.replay(first_run_last) is None  # from the previous run: resync


def test_replay_is_bounded_and_coalesced_moves_replay_latest_only() -> None:
    bus = EventBus(ManualClock(0.0), replay_max=5)
    sub = bus.subscribe()
    start = bus.last_id
    for i in range(3):
        bus.publish({"type": "unit.moved", "unit_id": "u1", "n": i}, coalesce_key="u1")
        bus.flush()
    bus.publish({"type": "unit.status", "n": 3})
    got = bus.replay(start)
    assert got is not None and [e["n"] for _, e in got] == [2, 3]  # u1's older moves are superseded
    for i in range(4, 8):
        bus.publish({"type": "unit.status", "n": i})
    assert bus.replay(start) is None  # the oldest missed event fell out of the buffer
    tail = bus.replay(bus.last_id - 5)
    assert tail is not None and [e["n"] for _, e in tail] == [3, 4, 5, 6, 7]
    assert bus.replay(bus.last_id) == [] and bus.replay(bus.last_id + 1) is None
    sub.close()


def test_moves_are_kept_for_a_console_that_comes_back_within_the_grace() -> None:
    clock = ManualClock(0.0)
    bus = EventBus(clock)
    bus.subscribe().close()
    mark = bus.last_id
    bus.publish({"type": "unit.moved", "unit_id": "u1"}, coalesce_key="u1")
    bus.flush()
    assert [e["unit_id"] for _, e in bus.replay(mark) or []] == ["u1"]
    clock.advance(RECONNECT_GRACE_S)
    assert not bus.wanted
    bus.publish({"type": "unit.moved", "unit_id": "u2"}, coalesce_key="u2")
    assert bus.flush() == 0  # nobody watching for that long: nothing built for nobody


async def test_a_reconnecting_console_gets_what_it_missed_then_live_events(sqlite_api: LiveApi) -> None:
    api = sqlite_api
    for unit_id in ("u1", "u2"):
        await _unit(api, unit_id)
    first = await api.call("GET", "/v1/stream", role="viewer")
    opened_at, data = await _next_message(first)
    assert data is None and opened_at == api.bus.last_id  # where the stream stands, no event
    await _status(api, "u1", "busy")
    seen_id, seen = await _next_message(first)
    assert seen is not None and seen["new"] == "busy" and seen_id is not None and seen_id > opened_at
    first.close()

    await _status(api, "u1", "available")  # missed while away
    api.fleet.apply([fix("d2", "u2", 4.35, 50.85, START_S)])
    await api.clock.tick(api.settings.stream_coalesce_s)  # the missed move is flushed, with nobody connected
    again = await _resume(api, str(seen_id))
    missed = [await _next_message(again) for _ in range(2)]
    assert [(e or {}).get("type") for _, e in missed] == ["unit.status", "unit.moved"]
    ids = [seen_id] + [i for i, _ in missed]
    assert all(i is not None for i in ids) and ids == sorted(set(ids))  # type: ignore[type-var]
    await _status(api, "u2", "busy")
    live_id, live = await _next_message(again)
    assert live is not None and live["unit_id"] == "u2" and live_id == api.bus.last_id
    again.close()


async def test_a_gap_too_old_or_from_another_run_gets_resync(sqlite_api: LiveApi) -> None:
    api = sqlite_api
    response = await _resume(api, "12")
    event_id, data = await _next_message(response)
    assert data is not None and data["type"] == "resync" and event_id == api.bus.last_id == data["id"]
    response.close()


async def test_a_malformed_last_event_id_is_a_problem(sqlite_api: LiveApi) -> None:
    response = await _resume(sqlite_api, "x1")
    body = await response.json(content_type=None)
    assert response.status == 400 and response.headers["Content-Type"].startswith("application/problem+json")
    assert body["invalid_params"][0]["name"] == "Last-Event-ID"
