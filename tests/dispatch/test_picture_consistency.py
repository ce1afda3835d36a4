"""Live and rebuilt pictures agree: vanished positions, flags; bounded feeding; one vocabulary."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine

import geo
from dispatch.clock import ManualClock
from dispatch.fleet import Fleet
from dispatch.incidents import policy
from dispatch.live import KIND_PRIORITY, UnitMoved
from dispatch.routes import models
from dispatch.settings import ApiSettings
from ingest import validate
from schemas.fix import NOT_FOR_DISPATCH, Fix, FixFlag
from schemas.tables.registry import DEVICE_KINDS, UNIT_KINDS, UNIT_STATUSES
from store import registry
from store.engine import open_engine
from store.fixes import FixWriter, latest_fixes
from tests.dispatch.conftest import START_S, fix

NOW = datetime.fromtimestamp(START_S, UTC)


@pytest.fixture
def engine(store_url: str) -> typing.Iterator[Engine]:
    engine = open_engine(store_url, pool_size=2)
    yield engine
    engine.dispose()


def _unit_with_device(engine: Engine, unit_id: str, device_id: str) -> None:
    registry.insert_unit(engine, id=unit_id, name=unit_id, kind="police", status="available", now=NOW)
    registry.insert_device(engine, id=device_id, kind="phone", now=NOW)
    registry.insert_binding(engine, device_id=device_id, unit_id=unit_id, valid_from=NOW, valid_to=None)


async def _fleet(engine: Engine) -> Fleet:
    fleet = Fleet(engine, ManualClock(START_S), ApiSettings())
    await fleet.rebuild(engine, lookback_s=3600)
    return fleet


def _picture(fleet: Fleet, unit_ids: list[str]) -> tuple[object, ...]:
    return (
        sorted(fleet.index),
        [fleet.position(u) for u in unit_ids],
        fleet.nearest(4.35, 50.85, 10),
    )


async def test_disabling_a_units_only_device_takes_it_out_of_nearest_as_a_restart_would(
    engine: Engine,
) -> None:
    _unit_with_device(engine, "u1", "d1")
    _unit_with_device(engine, "u2", "d2")
    fleet = await _fleet(engine)
    batch = [fix("d1", "u1", 4.35, 50.85, START_S - 5), fix("d2", "u2", 4.36, 50.86, START_S - 5)]
    FixWriter(engine).write(batch)
    fleet.apply(batch)
    assert [n.entry.unit_id for n in fleet.nearest(4.35, 50.85, 10).neighbors] == ["u1", "u2"]

    record = registry.update_device(engine, "d1", enabled=False)
    assert record is not None
    fleet.track_device(record)

    assert [n.entry.unit_id for n in fleet.nearest(4.35, 50.85, 10).neighbors] == ["u2"]
    assert fleet.position("u1") is None and not fleet.indexed("u1")
    restarted = await _fleet(engine)
    assert _picture(restarted, ["u1", "u2"]) == _picture(fleet, ["u1", "u2"])


async def test_a_late_fix_after_a_flagged_one_rebuilds_the_picture_the_fleet_had_live(engine: Engine) -> None:
    # P (ts 8) usable, A (ts 10) impossible speed, B (ts 9) older than A, so flagged out of order.
    _unit_with_device(engine, "u1", "d1")
    fleet = await _fleet(engine)
    p = fix("d1", "u1", 4.35, 50.85, START_S - 12)
    a = fix("d1", "u1", 9.0, 45.0, START_S - 10, flags=FixFlag.IMPOSSIBLE_SPEED)
    b = fix("d1", "u1", 4.40, 50.90, START_S - 11, flags=FixFlag.OUT_OF_ORDER)
    writer = FixWriter(engine)
    for one in (p, a, b):
        writer.write([one])
        fleet.apply([one])
    position = fleet.position("u1")
    assert position is not None and (position.lon, position.lat) == (4.35, 50.85)

    usable = latest_fixes(engine, datetime.fromtimestamp(START_S - 3600, UTC), usable_only=True)
    assert [(f.device_id, f.ts) for f in usable] == [("d1", p.ts)]
    restarted = await _fleet(engine)
    assert _picture(restarted, ["u1"]) == _picture(fleet, ["u1"])


def test_one_mask_says_what_never_moves_a_unit() -> None:
    never = FixFlag.LOW_ACCURACY | FixFlag.IMPOSSIBLE_SPEED | FixFlag.MOCK | FixFlag.OUT_OF_ORDER
    assert never == NOT_FOR_DISPATCH  # a spoofed position included (issue 15)
    assert type(NOT_FOR_DISPATCH) is int  # plain int: IntFlag arithmetic is slow on the hot path
    assert validate._UNTRUSTED == NOT_FOR_DISPATCH


def _lag(sample: str) -> float:
    return REGISTRY.get_sample_value(f"outpost_picture_lag_seconds_{sample}", {"via": "ingest"}) or 0.0


def _batch(n: int, ts_s: float) -> list[Fix]:
    return [fix("d1", "u1", 4.35 + i * 1e-5, 50.85, ts_s + i * 0.1) for i in range(n)]


async def test_apply_soon_applies_small_batches_now_and_large_ones_gradually_in_order(
    sqlite_url: str,
) -> None:
    engine = open_engine(sqlite_url, pool_size=2)
    try:
        _unit_with_device(engine, "u1", "d1")
        fleet = await _fleet(engine)
        moves: list[float] = []
        fleet.subscribe(lambda e: moves.append(e.ts_s) if isinstance(e, UnitMoved) else None)
        lag_count, lag_sum = _lag("count"), _lag("sum")

        first = _batch(1, START_S - 100)
        fleet.apply_soon(first)
        assert moves == [START_S - 100]  # small: applied before returning

        large = _batch(5 * Fleet.APPLY_NOW_MAX_FIXES, START_S - 90)
        fleet.apply_soon(large)
        last = _batch(1, START_S - 1)
        fleet.apply_soon(last)  # small, but behind a large one: queued, not applied first
        assert moves == [START_S - 100]
        await fleet.drain()
        assert moves == sorted(moves) and len(moves) > 2  # every slice moved the unit, in arrival order
        assert moves[-1] == START_S - 1
        # Each fix's receipt-to-picture lag is on /metrics (the manual clock stood still at START_S).
        handed = first + large + last
        assert _lag("count") - lag_count == len(handed)
        assert _lag("sum") - lag_sum == pytest.approx(
            sum(START_S - f.received_at.timestamp() for f in handed)
        )
    finally:
        engine.dispose()


def test_unit_statuses_and_kinds_have_one_source() -> None:
    assert typing.get_args(models.UnitStatus) == UNIT_STATUSES
    assert typing.get_args(models.UnitKind) == UNIT_KINDS
    assert typing.get_args(models.DeviceKind) == DEVICE_KINDS
    assert geo.units.STATUS_ORDER == UNIT_STATUSES
    assert frozenset(UNIT_STATUSES) == geo.STATUSES and frozenset(UNIT_KINDS) == geo.KINDS
    assert vars(policy)["UNIT_KINDS"] is UNIT_KINDS  # imported, not spelled out again
    assert set(KIND_PRIORITY) == set(DEVICE_KINDS)
