"""Patrol presence against a fixture computed by hand, on both stores: time-weighted to the next fix and
capped by the gap, on duty only (status history), flagged fixes left out, hours split exactly; the
materialized rollup and the raw arithmetic agree, and so do PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from geo.hexes import cell_of, parent_of
from outpost.cli import main
from schemas.fix import Fix, FixFlag
from store import registry
from store.engine import open_engine
from store.fixes import FixWriter
from store.presence import (
    REFRESH_WINDOW,
    PresenceQuery,
    PresenceSettings,
    keep_presence,
    materialized_hours,
    presence_cells,
    refresh,
)
from store.presence_weights import StatusSpan, duty_spans, presence

T0 = datetime(2024, 5, 30, 17, 0, tzinfo=UTC)  # on the hour
A = (-122.4194, 37.7793)
B = (-122.4000, 37.7900)
FAR = (-122.2000, 37.8500)
SETTINGS = PresenceSettings(patrol_res=9, max_gap_s=120.0, settle_s=3600.0)
CELL_A, CELL_B = cell_of(*A, 9), cell_of(*B, 9)


def _fix(unit: str, place: tuple[float, float], offset_s: float, flags: int = 0) -> Fix:
    ts = T0 + timedelta(seconds=offset_s)
    return Fix(
        device_id=f"dev-{unit}", unit_id=unit, ts=ts, received_at=ts, lon=place[0], lat=place[1], flags=flags
    )


def seed(engine: Engine) -> None:
    """u1: on duty from +600 s to +4200 s; u2: on duty before T0, on a break from +1800 s (still on duty),
    out of service from +2400 s. The seconds each fix earns are written beside it."""
    for unit in ("u1", "u2", "u3"):
        registry.insert_unit(engine, id=unit, name=unit, kind="police", now=T0 - timedelta(days=1))
    for unit, status, offset_s in (
        ("u2", "available", -100),
        ("u1", "available", 600),
        ("u2", "break", 1800),
        ("u2", "out_of_service", 2400),
        ("u1", "off_duty", 4200),
    ):
        registry.change_unit_status(engine, unit, status, actor="test", now=T0 + timedelta(seconds=offset_s))
    u1 = [
        _fix("u1", A, 0),  # off duty: 0
        _fix("u1", A, 300),  # off duty: 0
        _fix("u1", A, 630),  # A 30 (to the next fix)
        _fix("u1", B, 660),  # B 120 (the gap caps it)
        _fix("u1", B, 1000),  # B 120: the flagged fix after it does not cut it short
        _fix("u1", FAR, 1050, flags=int(FixFlag.IMPOSSIBLE_SPEED)),  # left out
        _fix("u1", B, 3500),  # B 90
        _fix("u1", B, 3590),  # B 10 in the first hour, 50 in the second
        _fix("u1", A, 3650),  # A 50
        _fix("u1", A, 3700),  # A 120
        _fix("u1", A, 4150),  # A 50, then off duty
    ]
    u2 = [_fix("u2", A, s) for s in range(0, 3600, 30)]  # A 30 each until +2400 s: 2400
    u3 = [_fix("u3", B, s) for s in range(0, 600, 30)]  # never on duty: 0
    FixWriter(engine).write([*u1, *u2, *u3])


@pytest.fixture
def store(store_engine: Engine) -> Engine:
    seed(store_engine)
    return store_engine


def _ask(
    engine: Engine, start_s: float, end_s: float, now_s: float, *units: str, res: int = 9
) -> dict[int, float]:
    query = PresenceQuery(res, T0 + timedelta(seconds=start_s), T0 + timedelta(seconds=end_s), units)
    return dict(presence_cells(engine, query, SETTINGS, T0 + timedelta(seconds=now_s)))


HOURS_LATER = 10 * 3600.0
CASES = [
    # (from, to, now, units): {cell: seconds}, by hand from the comments in `seed`
    ((0, 7200, HOURS_LATER, ()), {CELL_A: 30 + 2400 + 50 + 120 + 50, CELL_B: 120 + 120 + 90 + 10 + 50}),
    ((0, 7200, 5400, ()), {CELL_A: 2650, CELL_B: 390}),  # nothing settled yet: all from the raw fixes
    ((0, 3600, HOURS_LATER, ()), {CELL_A: 2430, CELL_B: 340}),
    ((3600, 7200, HOURS_LATER, ()), {CELL_A: 220, CELL_B: 50}),  # the fix before the range counts in it
    ((1800, 5400, HOURS_LATER, ()), {CELL_A: 600 + 220, CELL_B: 100 + 50}),  # partial hours at both edges
    ((0, 7200, HOURS_LATER, ("u1",)), {CELL_A: 250, CELL_B: 390}),
    ((0, 7200, HOURS_LATER, ("u3",)), {}),
]


@pytest.mark.parametrize(("ask", "expected"), CASES)
def test_presence_is_what_the_fixture_says_by_hand(
    store: Engine, ask: tuple[float, float, float, tuple[str, ...]], expected: dict[int, float]
) -> None:
    start_s, end_s, now_s, units = ask
    assert _ask(store, start_s, end_s, now_s, *units) == pytest.approx(expected)


def test_the_rollup_and_the_raw_fixes_agree_and_coarser_cells_add_up(store: Engine) -> None:
    raw = _ask(store, 0, 7200, 5400)
    assert materialized_hours(store, 9) == 0
    rolled = _ask(store, 0, 7200, HOURS_LATER)
    assert materialized_hours(store, 9) == 2 and rolled == raw
    assert _ask(store, 0, 7200, HOURS_LATER) == rolled  # read again: nothing recomputed, same answer
    coarse = _ask(store, 0, 7200, HOURS_LATER, res=6)
    expected: dict[int, float] = {}
    for cell, seconds in rolled.items():
        expected[parent_of(cell, 6)] = expected.get(parent_of(cell, 6), 0.0) + seconds
    assert coarse == pytest.approx(expected)
    # A late fix for a materialized hour counts once the hour is refreshed.
    FixWriter(store).write([_fix("u1", FAR, 2000)])
    assert _ask(store, 0, 3600, HOURS_LATER) == {CELL_A: 2430, CELL_B: 340}  # not yet
    refresh(store, T0, T0 + timedelta(hours=1), SETTINGS, T0 + timedelta(seconds=HOURS_LATER))
    late = _ask(store, 0, 3600, HOURS_LATER)
    assert late[cell_of(*FAR, 9)] == 120


def test_both_stores_answer_alike(pg_url: str, sqlite_url: str) -> None:
    answers = []
    for url in (pg_url, sqlite_url):
        engine = open_engine(url, pool_size=2)
        seed(engine)
        answers.append([_ask(engine, *ask[:3], *ask[3]) for ask, _ in CASES])
        engine.dispose()
    assert answers[0] == answers[1]


def test_duty_spans_and_weights_by_hand() -> None:
    changes = [StatusSpan(10.0, "off_duty"), StatusSpan(20.0, "busy"), StatusSpan(25.0, "break")]
    assert duty_spans("available", changes, 0.0, 40.0) == [(0.0, 10.0), (20.0, 40.0)]
    assert duty_spans("off_duty", [], 0.0, 40.0) == []
    fixes = [(0.0, 1), (5.0, 2), (3595.0, 3)]
    got = presence(fixes, [(0.0, 7200.0)], 0.0, 7200.0, 60.0)
    assert got == {(0.0, 1): 5.0, (0.0, 2): 60.0, (0.0, 3): 5.0, (3600.0, 3): 55.0}


async def test_the_hourly_refresh_materializes_the_last_settled_hours(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url, pool_size=2)
    settle = timedelta(seconds=SETTINGS.settle_s)
    last = datetime.fromtimestamp((datetime.now(UTC) - settle).timestamp() // 3600 * 3600, UTC)
    registry.insert_unit(engine, id="u1", name="u1", kind="police", now=last - timedelta(days=1))
    registry.change_unit_status(engine, "u1", "available", actor="test", now=last - timedelta(hours=3))
    FixWriter(engine).write([_at("u1", A, last - timedelta(hours=2, seconds=-s)) for s in range(0, 600, 30)])
    task = asyncio.create_task(keep_presence(engine, SETTINGS))
    # Polled: the refresh runs in a worker thread of the task, which signals nothing.
    while materialized_hours(engine, 9) < REFRESH_WINDOW // timedelta(hours=1):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    task.cancel()
    query = PresenceQuery(9, last - timedelta(hours=2), last - timedelta(hours=1))
    assert presence_cells(engine, query, SETTINGS, datetime.now(UTC)) == [
        (CELL_A, 19 * 30 + 120.0)
    ]  # the last fix: the gap
    engine.dispose()


def _at(unit: str, place: tuple[float, float], ts: datetime) -> Fix:
    return Fix(device_id=f"dev-{unit}", unit_id=unit, ts=ts, received_at=ts, lon=place[0], lat=place[1])


def test_outpost_presence_refresh_computes_the_hours_ahead_of_any_request(
    store_url: str, store: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OUTPOST_DATABASE_URL", store_url)
    assert materialized_hours(store, 9) == 0
    span = ["--from", T0.isoformat(), "--to", (T0 + timedelta(hours=2)).isoformat()]
    assert main(["presence", "refresh", *span]) == 0
    assert "patrol presence computed" in capsys.readouterr().out
    assert materialized_hours(store, 9) == 2
    assert main(["presence", "refresh", *span]) == 0  # again: the same hours, replaced
    assert materialized_hours(store, 9) == 2
    assert main(["presence", "refresh", "--from", span[3], "--to", span[1]]) == 2
