"""The fleet: fixes move units (never backwards, never when flagged), fusion, separation, status races."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from dispatch.clock import ManualClock
from dispatch.fleet import Fleet
from dispatch.live import DevicesSeparated, FleetEvent, StatusChanged, UnitMoved
from dispatch.settings import ApiSettings
from schemas.fix import FixFlag
from store import registry
from tests.dispatch.conftest import START_S, fix

NOW = datetime.fromtimestamp(START_S, UTC)


def _unit(engine: Engine, unit_id: str, status: str = "available", kind: str = "police") -> None:
    registry.insert_unit(engine, id=unit_id, name=unit_id, kind=kind, status=status, now=NOW)


def _device(engine: Engine, device_id: str, kind: str, unit_id: str, priority: int = 0) -> None:
    registry.insert_device(engine, id=device_id, kind=kind, priority=priority, now=NOW)
    registry.insert_binding(engine, device_id=device_id, unit_id=unit_id, valid_from=NOW, valid_to=None)


async def _fleet(engine: Engine, settings: ApiSettings | None = None) -> tuple[Fleet, list[FleetEvent]]:
    fleet = Fleet(engine, ManualClock(START_S), settings or ApiSettings())
    await fleet.rebuild(engine, lookback_s=3600)
    events: list[FleetEvent] = []
    fleet.subscribe(events.append)
    return fleet, events


async def test_fixes_move_units_forwards_only_and_flags_never_move_them(pg_engine: Engine) -> None:
    _unit(pg_engine, "u1")
    _device(pg_engine, "d1", "phone", "u1")
    fleet, events = await _fleet(pg_engine)
    fleet.apply([fix("d1", "u1", 4.35, 50.85, START_S)])
    assert fleet.index.get("u1") is not None
    fleet.apply([fix("d1", "u1", 4.30, 50.80, START_S - 10)])  # older: ignored
    fleet.apply([fix("d1", "u1", 9.0, 50.0, START_S + 1, flags=FixFlag.IMPOSSIBLE_SPEED)])
    fleet.apply([fix("d1", "u1", 4.5, 50.9, START_S + 2, flags=FixFlag.LOW_ACCURACY, accuracy_m=900)])
    fleet.apply([fix("d1", "u1", 4.5, 50.9, START_S + 3, flags=FixFlag.OUT_OF_ORDER)])
    fleet.apply([fix("d1", "u1", 4.6, 50.95, START_S + 3.5, flags=FixFlag.MOCK)])  # spoofed: never moves it
    (nearest,) = fleet.nearest(4.6, 50.95, k=1).neighbors
    assert (nearest.entry.lon, nearest.entry.lat) == (4.35, 50.85)
    position = fleet.position("u1")
    assert position is not None and (position.lon, position.lat) == (4.35, 50.85)
    device = fleet.device("d1")
    assert device is not None and device.last_fix is not None and device.last_fix.flags == FixFlag.MOCK
    fleet.apply([fix("d1", "u1", 4.36, 50.86, START_S + 4)])
    assert [(e.lon, e.lat) for e in events if isinstance(e, UnitMoved)] == [(4.35, 50.85), (4.36, 50.86)]


async def test_a_unit_is_fused_from_its_devices_and_separation_is_raised(pg_engine: Engine) -> None:
    _unit(pg_engine, "u1")
    _device(pg_engine, "cam", "body_cam", "u1")
    _device(pg_engine, "phone", "phone", "u1")
    settings = ApiSettings(separation_threshold_m=150, separation_hold_s=30)
    fleet, events = await _fleet(pg_engine, settings)
    t = START_S
    fleet.apply(
        [
            fix("phone", "u1", 4.3500, 50.85, t, accuracy_m=5),
            fix("cam", "u1", 4.3501, 50.85, t - 3, accuracy_m=15),
        ]
    )
    position = fleet.position("u1")
    assert position is not None and position.device_id == "cam"  # the worn camera outranks the phone
    # The officer walks off; the phone stays in the car.
    for step in range(1, 8):
        fleet.apply(
            [
                fix("cam", "u1", 4.3500 + 0.001 * step, 50.85, t + 10 * step, accuracy_m=10),
                fix("phone", "u1", 4.3500, 50.85, t + 10 * step, accuracy_m=5),
            ]
        )
    separated = [e for e in events if isinstance(e, DevicesSeparated)]
    assert (
        len(separated) == 1
        and separated[0].separated
        and {separated[0].device_a, separated[0].device_b} == {"cam", "phone"}
    )
    assert separated[0].ts_s - t >= 30 + 30  # apart from 2 steps in (>150 m + accuracies), held 30 s
    assert fleet.unit("u1").separated  # type: ignore[union-attr]
    fleet.apply(
        [
            fix("phone", "u1", 4.3570, 50.85, t + 80, accuracy_m=5),
            fix("cam", "u1", 4.3570, 50.85, t + 80, accuracy_m=10),
        ]
    )
    assert [e.separated for e in events if isinstance(e, DevicesSeparated)] == [True, False]


async def test_off_duty_leaves_the_index_and_other_statuses_keep_it(pg_engine: Engine) -> None:
    _unit(pg_engine, "u1")
    fleet, events = await _fleet(pg_engine)
    fleet.apply([fix("d1", "u1", 4.35, 50.85, START_S)])
    await fleet.set_status("u1", "busy", actor="test")
    assert fleet.index.get("u1").status == "busy"  # type: ignore[union-attr]
    await fleet.set_status("u1", "off_duty", actor="test")
    assert "u1" not in fleet.index
    fleet.apply([fix("d1", "u1", 4.36, 50.86, START_S + 1)])  # still tracked, not indexed nor streamed
    assert "u1" not in fleet.index and fleet.position("u1").lon == 4.36  # type: ignore[union-attr]
    await fleet.set_status("u1", "available", actor="test")
    assert fleet.index.get("u1").lon == 4.36  # type: ignore[union-attr]
    changes = [(e.old, e.new, e.actor) for e in events if isinstance(e, StatusChanged)]
    assert changes == [
        ("available", "busy", "test"),
        ("busy", "off_duty", "test"),
        ("off_duty", "available", "test"),
    ]
    assert registry.get_unit(pg_engine, "u1").status == "available"  # type: ignore[union-attr]


@pytest.mark.parametrize("racers", [2, 8])
async def test_two_dispatchers_racing_for_one_unit_get_one_success(pg_engine: Engine, racers: int) -> None:
    _unit(pg_engine, "u1")
    fleet, _ = await _fleet(pg_engine)
    fleet.apply([fix("d1", "u1", 4.35, 50.85, START_S)])
    # Two fleets on one database stand for two API processes: only the database can arbitrate.
    other, _ = await _fleet(pg_engine)
    results = await asyncio.gather(
        *[
            (fleet if i % 2 else other).compare_and_set_status("u1", ["available"], "offered", actor=f"d{i}")
            for i in range(racers)
        ]
    )
    assert sorted(results) == [False] * (racers - 1) + [True]
    assert registry.get_unit(pg_engine, "u1").status == "offered"  # type: ignore[union-attr]


async def test_compare_and_set_is_atomic_on_sqlite_too(sqlite_url: str) -> None:
    from store.engine import open_engine

    engine = open_engine(sqlite_url, pool_size=4)
    try:
        _unit(engine, "u1")
        fleet, _ = await _fleet(engine)
        results = await asyncio.gather(
            *[fleet.compare_and_set_status("u1", ["available"], "offered", actor=f"d{i}") for i in range(4)]
        )
        assert sorted(results) == [False, False, False, True]
    finally:
        engine.dispose()


async def test_another_replicas_unit_changes_are_taken_and_told_once(pg_engine: Engine) -> None:
    _unit(pg_engine, "u1")
    _unit(pg_engine, "u2")
    _device(pg_engine, "d1", "phone", "u1")
    _device(pg_engine, "d2", "phone", "u2")
    here, events = await _fleet(pg_engine)
    there, _ = await _fleet(pg_engine)  # another replica over the same database
    for fleet in (here, there):
        fleet.apply([fix("d1", "u1", 4.35, 50.85, START_S), fix("d2", "u2", 4.36, 50.85, START_S)])
    await there.set_status("u1", "busy", actor="dispatcher:7")
    registry.update_unit(pg_engine, "u2", kind="auxiliary", skills=["first_aid"])
    assert [n.entry.unit_id for n in here.nearest(4.35, 50.85, 2, statuses=["available"]).neighbors] == [
        "u1",
        "u2",
    ]

    assert await here.follow_units({"u1", "u2", "nobody"}) == 2
    assert [n.entry.unit_id for n in here.nearest(4.35, 50.85, 2, statuses=["available"]).neighbors] == ["u2"]
    assert [
        n.entry.unit_id
        for n in here.nearest(4.35, 50.85, 2, kinds=["auxiliary"], skills=["first_aid"]).neighbors
    ] == ["u2"]
    told = [e for e in events if isinstance(e, StatusChanged)]
    assert [(e.unit_id, e.old, e.new, e.actor) for e in told] == [
        ("u1", "available", "busy", "another replica")
    ]
    assert await here.follow_units(None) == 0  # already so: nothing changes, nothing is told again
    assert len([e for e in events if isinstance(e, StatusChanged)]) == 1
