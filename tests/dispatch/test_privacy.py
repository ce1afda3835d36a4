"""Privacy by duty over the real API and a real ingest pipeline in one process, on PostgreSQL and SQLite: a
status change to off_duty reaches ingest before the API answers (as the root wires it), the unit leaves the
live picture and its fixes are stored restricted and never move it; tracks and snapshots leave them out,
except for an admin who states a reason, whose read is audited with it; a dispatcher who asks is refused;
back on duty the unit is recorded and shown again."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from dispatch.clock import ManualClock
from ingest.pipeline import Pipeline
from ingest.runner import build_pipeline
from schemas.topics import FIX, device_topic
from store import access
from store.engine import open_engine
from store.fixes import fetch_fixes
from tests.dispatch.conftest import LiveApi, running_api
from tests.ingest.ingest_harness import Acks, ingest_settings, register

HOME = (-122.40, 37.78)  # where the officer goes off duty
AWAY = (-122.45, 37.75)  # where the officer is while off duty
T0 = float(int(time.time()) - 120)
REASON = "inquiry 2024-17: complaint against unit u1"


@pytest.fixture
async def wired(store_url: str, tmp_path: Path) -> AsyncIterator[tuple[LiveApi, Pipeline, Acks]]:
    engine = open_engine(store_url)
    register(engine, "d1", unit_id="u1")  # available
    engine.dispose()
    async with running_api(store_url, clock=ManualClock(T0 + 60)) as api:
        pipeline = build_pipeline(
            ingest_settings("", tmp_path / "spool"), api.engine, on_accepted=api.fleet.apply
        )
        acks = Acks()
        pipeline.attach(acks)
        await pipeline.directory.load()
        api.fleet.duty_changed = pipeline.directory.load  # as outpost.root wires the `all` role
        yield api, pipeline, acks


async def send(pipeline: Pipeline, token: int, ts_s: float, where: tuple[float, float]) -> None:
    body = json.dumps({"ts": int(ts_s * 1000), "lon": where[0], "lat": where[1], "acc_m": 5}).encode()
    pipeline.on_messages([(device_topic("d1", FIX), body, token)], time.time())
    await pipeline._flush(pipeline._batcher.take())


def iso(ts_s: float) -> str:
    return datetime.fromtimestamp(ts_s, UTC).isoformat().replace("+00:00", "Z")


async def nearest_ids(api: LiveApi) -> list[str]:
    query = f"lon={HOME[0]}&lat={HOME[1]}&status=available,off_duty"
    body = await api.json("GET", f"/v1/units/nearest?{query}", role="dispatcher")
    return [u["id"] for u in body["units"]]


async def test_off_duty_unit_leaves_the_picture_and_its_fixes_are_private(
    wired: tuple[LiveApi, Pipeline, Acks],
) -> None:
    api, pipeline, acks = wired
    await send(pipeline, 1, T0, HOME)
    assert await nearest_ids(api) == ["u1"]

    await api.json("POST", "/v1/units/u1/status", json={"status": "off_duty"}, role="dispatcher")
    assert await nearest_ids(api) == []  # not dispatchable, under any status filter
    await send(pipeline, 2, T0 + 10, AWAY)  # ingest knew at once: no reload period waited for
    assert acks.tokens == [1, 2]
    assert [f.restricted for f in fetch_fixes(api.engine, device_id="d1")] == [False, True]
    position = api.fleet.position("u1")
    assert position is not None and (position.lon, position.lat) == HOME  # the private fix never moved it

    span = f"from={iso(T0 - 1)}&to={iso(T0 + 30)}"
    track = f"/v1/units/u1/track?{span}"
    shown = await api.json("GET", track, role="viewer")
    assert [f["geometry"]["coordinates"] for f in shown["features"]] == [list(HOME)]
    refused = await api.call("GET", f"{track}&reason={quote(REASON)}", role="dispatcher")
    assert refused.status == 403
    short = await api.call("GET", f"{track}&reason=x", role="admin")
    assert short.status == 400
    full = await api.json("GET", f"{track}&reason={quote(REASON)}", role="admin")
    assert [f["geometry"]["coordinates"] for f in full["features"]] == [list(HOME), list(AWAY)]
    # Written to the audit log before the answer, with the reason (no flush asked for here).
    (entry,) = [e for e in access.read_audit(api.engine) if e.detail and "reason" in e.detail]
    assert entry.action == "read_track" and entry.subject == "unit:u1"
    assert entry.detail is not None and entry.detail["reason"] == REASON and entry.detail["restricted"]

    snap = f"/v1/units/snapshot?at={iso(T0 + 20)}"
    (then,) = (await api.json("GET", snap, role="viewer"))["units"]
    assert (then["lon"], then["lat"]) == HOME
    assert (await api.call("GET", f"{snap}&reason={quote(REASON)}", role="viewer")).status == 403
    (seen,) = (await api.json("GET", f"{snap}&reason={quote(REASON)}", role="admin"))["units"]
    assert (seen["lon"], seen["lat"]) == AWAY

    # Back on duty: recorded, shown and dispatchable again.
    await api.json("POST", "/v1/units/u1/status", json={"status": "available"}, role="dispatcher")
    await send(pipeline, 3, T0 + 20, AWAY)
    assert [f.restricted for f in fetch_fixes(api.engine, device_id="d1")] == [False, True, False]
    assert await nearest_ids(api) == ["u1"]
    position = api.fleet.position("u1")
    assert position is not None and (position.lon, position.lat) == AWAY
