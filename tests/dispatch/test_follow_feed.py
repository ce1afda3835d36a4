"""The `api` role's feed follower: batches held while the snapshot loads, then applied as they come; a gap
in a worker's batch numbers sweeps the database at once; garbage is counted, never applied."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from dispatch.clock import ManualClock
from dispatch.fleet import Fleet
from dispatch.follow import FeedFollower
from dispatch.settings import ApiSettings
from schemas.feed import encode_batch
from store import registry
from store.engine import open_engine
from store.fixes import FixWriter
from tests.dispatch.conftest import START_S, fix
from tests.ingest.ingest_harness import wait_for

NOW = datetime.fromtimestamp(START_S, UTC)


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = open_engine(store_url, pool_size=2)
    for n in (1, 2):
        registry.insert_unit(engine, id=f"u{n}", name=f"u{n}", kind="police", status="available", now=NOW)
        registry.insert_device(engine, id=f"d{n}", kind="phone", now=NOW)
        registry.insert_binding(engine, device_id=f"d{n}", unit_id=f"u{n}", valid_from=NOW, valid_to=None)
    yield engine
    engine.dispose()


def _lon(fleet: Fleet, unit_id: str) -> float | None:
    position = fleet.position(unit_id)
    return None if position is None else position.lon


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _follower(engine: Engine, clock: ManualClock) -> tuple[Fleet, FeedFollower]:
    fleet = Fleet(engine, clock, ApiSettings())
    return fleet, FeedFollower(engine, fleet, clock, max_fix_age_s=300.0, sweep_every_s=3600.0)


async def test_batches_that_arrive_during_the_snapshot_are_applied_after_it(engine: Engine) -> None:
    clock = ManualClock(START_S)
    fleet, follower = _follower(engine, clock)
    FixWriter(engine).write([fix("d1", "u1", 4.30, 50.85, START_S - 5)])
    # Subscribed, the snapshot not loaded yet: a newer fix arrives (committed after the snapshot's query).
    follower.on_payload(encode_batch("w.1", 1, [fix("d1", "u1", 4.31, 50.85, START_S - 1)]))
    assert _lon(fleet, "u1") is None  # held, not applied to a picture the snapshot would replace
    await follower.load(86400.0)
    applying = asyncio.create_task(follower.apply_forever())
    await follower.settle()
    assert _lon(fleet, "u1") == 4.31  # the held batch wins over the older snapshot
    # The snapshot's own fix arriving late on the feed (committed just before the query) moves nothing back.
    follower.on_payload(encode_batch("w.1", 2, [fix("d1", "u1", 4.30, 50.85, START_S - 5)]))
    await follower.settle()
    assert _lon(fleet, "u1") == 4.31
    follower.on_payload(encode_batch("w.1", 3, [fix("d1", "u1", 4.32, 50.85, START_S)]))
    await follower.settle()
    assert _lon(fleet, "u1") == 4.32
    applying.cancel()
    assert (follower.batches, follower.gaps, follower.invalid) == (3, 0, 0)


async def test_a_gap_in_a_workers_batches_sweeps_the_database_at_once(engine: Engine) -> None:
    clock = ManualClock(START_S)
    fleet, follower = _follower(engine, clock)
    await follower.load(86400.0)
    sweeping = asyncio.create_task(follower.sweep_forever())
    applying = asyncio.create_task(follower.apply_forever())
    try:
        follower.on_payload(encode_batch("w.1", 1, [fix("d1", "u1", 4.31, 50.85, START_S - 2)]))
        # Batch 2 (d2's fix) was committed but its message lost while our broker connection was down.
        FixWriter(engine).write([fix("d2", "u2", 4.40, 50.85, START_S - 1)])
        follower.on_payload(encode_batch("w.1", 3, [fix("d1", "u1", 4.32, 50.85, START_S)]))
        await wait_for(lambda: follower.sweeps == 1, 10, "the sweep after the gap")
        await follower.settle()
    finally:
        sweeping.cancel()
        applying.cancel()
    assert follower.gaps == 1
    assert _lon(fleet, "u2") == 4.40  # read from the database, long before the periodic sweep (3600 s)
    assert _lon(fleet, "u1") == 4.32


async def test_a_new_worker_or_a_restart_is_not_a_gap_and_garbage_is_counted(engine: Engine) -> None:
    clock = ManualClock(START_S)
    fleet, follower = _follower(engine, clock)
    await follower.load(86400.0)
    applying = asyncio.create_task(follower.apply_forever())
    metrics = (
        "outpost_api_feed_batches_total",
        "outpost_api_feed_gaps_total",
        "outpost_api_feed_invalid_total",
    )
    before = [_metric(name) for name in metrics]
    follower.on_payload(encode_batch("w.1", 7, [fix("d1", "u1", 4.31, 50.85, START_S - 2)]))
    follower.on_payload(encode_batch("w.2", 1, [fix("d2", "u2", 4.41, 50.85, START_S - 2)]))
    follower.on_payload(encode_batch("w.1", 8, []))
    follower.on_payload(b"\x93not a batch")
    await follower.settle()
    applying.cancel()
    assert (follower.batches, follower.gaps, follower.invalid) == (3, 0, 1)
    assert [_metric(name) - b for name, b in zip(metrics, before, strict=True)] == [3, 0, 1]  # on /metrics
    assert (_lon(fleet, "u1"), _lon(fleet, "u2")) == (4.31, 4.41)


async def test_a_replica_behind_applies_each_devices_newest_fix_only(engine: Engine) -> None:
    clock = ManualClock(START_S)
    fleet, follower = _follower(engine, clock)
    await follower.load(86400.0)
    moves: list[float] = []
    fleet.subscribe(lambda event: moves.append(event.lon) if event.type == "unit.moved" else None)
    # Three batches arrive before the replica gets to apply any (it is behind): d1 moved three times.
    follower.on_payload(encode_batch("w.1", 1, [fix("d1", "u1", 4.31, 50.85, START_S - 3)]))
    follower.on_payload(encode_batch("w.1", 2, [fix("d1", "u1", 4.33, 50.85, START_S - 1)]))
    follower.on_payload(encode_batch("w.2", 1, [fix("d1", "u1", 4.32, 50.85, START_S - 2)]))  # late, older
    applying = asyncio.create_task(follower.apply_forever())
    await follower.settle()
    applying.cancel()
    assert _lon(fleet, "u1") == 4.33
    assert moves == [4.33]  # one move, to the newest position: no queue of stale ones
    assert follower.superseded == 2


async def test_the_lag_from_receipt_to_the_live_picture_is_observed_for_each_fix_applied(
    engine: Engine,
) -> None:
    clock = ManualClock(START_S)
    fleet, follower = _follower(engine, clock)
    await follower.load(86400.0)
    lag = "outpost_picture_lag_seconds"
    count, total = _metric(lag + "_count", via="feed"), _metric(lag + "_sum", via="feed")
    within_1s = _metric(lag + "_bucket", via="feed", le="1.0")
    superseded = _metric("outpost_api_feed_superseded_total")
    # Received 2 s and 0.5 s ago (the fixture's received_at is the fix's time); d1's older fix is superseded.
    older = fix("d1", "u1", 4.30, 50.85, START_S - 3)
    batch = [older, fix("d1", "u1", 4.31, 50.85, START_S - 2), fix("d2", "u2", 4.41, 50.85, START_S - 0.5)]
    follower.on_payload(encode_batch("w.1", 1, batch))
    clock.advance(0.25)  # the replica gets to it a quarter of a second later
    applying = asyncio.create_task(follower.apply_forever())
    await follower.settle()
    applying.cancel()
    assert (_lon(fleet, "u1"), _lon(fleet, "u2")) == (4.31, 4.41)
    assert _metric(lag + "_count", via="feed") - count == 2  # the two applied; the superseded never showed
    assert _metric(lag + "_sum", via="feed") - total == pytest.approx(2.25 + 0.75)
    assert _metric(lag + "_bucket", via="feed", le="1.0") - within_1s == 1
    assert _metric("outpost_api_feed_superseded_total") - superseded == 1
