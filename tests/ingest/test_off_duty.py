"""Fixes taken while their unit is off duty, on PostgreSQL and SQLite: stored restricted (the default) and
kept out of the live picture, or dropped, counted and acknowledged (OUTPOST_OFF_DUTY_FIXES=drop); a unit
back on duty is recorded normally again; reads leave restricted fixes out unless asked for them."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import REGISTRY
from sqlalchemy import Engine

from ingest.decode import decode_mqtt
from ingest.duty import DROPPED
from ingest.pipeline import Pipeline
from ingest.runner import build_pipeline
from schemas.topics import FIX, device_topic
from store import registry
from store.fixes import count_rejected, fetch_fixes, latest_fixes
from store.snapshot import snapshot
from store.tracks import TrackQuery, track_page
from tests.ingest.ingest_harness import Accepted, Acks, ingest_settings, register


def payload(ts_s: float, lon: float = -122.42, lat: float = 37.77) -> bytes:
    return json.dumps({"ts": int(ts_s * 1000), "lat": lat, "lon": lon, "acc_m": 5}).encode()


async def send(pipeline: Pipeline, device_id: str, token: int, ts_s: float) -> None:
    """One MQTT message through the pipeline and its batch flushed (stored, then acknowledged)."""
    pipeline.on_messages([(device_topic(device_id, FIX), payload(ts_s), token)], time.time())
    await pipeline._flush(pipeline._batcher.take())


def ignored(kind: str) -> float:
    return REGISTRY.get_sample_value("outpost_ingest_ignored_total", {"kind": kind}) or 0.0


async def started(engine: Engine, tmp_path: Path, **overrides: object) -> tuple[Pipeline, Accepted, Acks]:
    accepted, acks = Accepted(), Acks()
    settings = ingest_settings("", tmp_path / "spool", **overrides)
    pipeline = build_pipeline(settings, engine, on_accepted=accepted)
    pipeline.attach(acks)
    await pipeline.directory.load()
    return pipeline, accepted, acks


def set_status(engine: Engine, unit_id: str, status: str) -> None:
    registry.change_unit_status(engine, unit_id, status, actor="test", now=datetime.now(UTC))


async def test_off_duty_fixes_are_stored_restricted_out_of_the_picture_and_of_reads(
    store_engine: Engine, tmp_path: Path
) -> None:
    register(store_engine, "d1", unit_id="u1")
    set_status(store_engine, "u1", "off_duty")
    pipeline, accepted, acks = await started(store_engine, tmp_path)
    t0 = float(int(time.time()) - 60)
    await send(pipeline, "d1", 1, t0)
    assert acks.tokens == [1]
    assert accepted.fixes == []  # never handed to the live picture
    (stored,) = fetch_fixes(store_engine, device_id="d1")
    assert stored.restricted and stored.unit_id == "u1"
    # No read of positions sees it unless it asks: tracks, the picture's rebuild, snapshots.
    start, end = datetime.fromtimestamp(t0 - 1, UTC), datetime.fromtimestamp(t0 + 1, UTC)
    assert track_page(store_engine, TrackQuery(start, end, unit_id="u1"), None, 10) == ([], None)
    both = TrackQuery(start, end, unit_id="u1", with_restricted=True)
    assert [p.ts_s for p in track_page(store_engine, both, None, 10)[0]] == [stored.ts.timestamp()]
    assert latest_fixes(store_engine, start) == []
    at = datetime.fromtimestamp(t0 + 1, UTC)
    (unit,) = snapshot(store_engine, at, timedelta(minutes=5))
    assert unit.ts is None
    (seen,) = snapshot(store_engine, at, timedelta(minutes=5), with_restricted=True)
    assert seen.ts == stored.ts

    # Back on duty (the directory reloaded, as the API's status change does): recorded normally again.
    set_status(store_engine, "u1", "available")
    await pipeline.directory.load()
    await send(pipeline, "d1", 2, t0 + 10)
    assert acks.tokens == [1, 2]
    assert [f.ts.timestamp() for f in accepted.fixes] == [t0 + 10]
    assert [f.restricted for f in fetch_fixes(store_engine, device_id="d1")] == [True, False]
    assert [f.ts.timestamp() for f in latest_fixes(store_engine, start)] == [t0 + 10]


async def test_drop_mode_stores_nothing_counts_and_acknowledges(store_engine: Engine, tmp_path: Path) -> None:
    register(store_engine, "d1", unit_id="u1")
    register(store_engine, "d2", unit_id="u2")
    set_status(store_engine, "u1", "off_duty")
    pipeline, accepted, acks = await started(store_engine, tmp_path, off_duty_fixes="drop")
    before = ignored(DROPPED)
    t0 = float(int(time.time()) - 60)
    await send(pipeline, "d1", 1, t0)
    await send(pipeline, "d2", 2, t0)  # a unit on duty beside it is untouched
    assert acks.tokens == [1, 2]  # the dropped fix is acknowledged: deliberately not kept, not lost
    assert ignored(DROPPED) - before == 1
    assert fetch_fixes(store_engine, device_id="d1") == []
    assert count_rejected(store_engine) == 0  # not a dead letter: its position is kept nowhere
    assert [f.device_id for f in accepted.fixes] == ["d2"]
    assert [f.restricted for f in fetch_fixes(store_engine, device_id="d2")] == [False]

    set_status(store_engine, "u1", "available")
    await pipeline.directory.load()
    await send(pipeline, "d1", 3, t0 + 10)
    assert [f.ts.timestamp() for f in fetch_fixes(store_engine, device_id="d1")] == [t0 + 10]
    assert ignored(DROPPED) - before == 1


async def test_an_http_fix_stored_restricted_is_answered_once_durable(
    store_engine: Engine, tmp_path: Path
) -> None:
    register(store_engine, "d1", unit_id="u1")
    set_status(store_engine, "u1", "off_duty")
    pipeline, accepted, _ = await started(store_engine, tmp_path)
    body = payload(float(int(time.time()) - 60))
    decoded = decode_mqtt(device_topic("d1", FIX), body)
    answer = asyncio.create_task(pipeline.submit("http:/ingest/fix", body, decoded, time.time()))
    await asyncio.sleep(0)  # the request waits for its fix to be durable, as for any stored fix
    assert not answer.done()
    await pipeline._flush(pipeline._batcher.take())
    outcome = await answer
    assert (outcome.accepted, outcome.rejected, outcome.durable) == (1, [], True)
    assert accepted.fixes == [] and [f.restricted for f in fetch_fixes(store_engine, device_id="d1")] == [
        True
    ]
