"""The `api` role's follower: recent fixes every poll, late ones (lagging clocks, spool drains) by a sweep."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from dispatch import follow
from dispatch.clock import ManualClock
from dispatch.fleet import Fleet
from dispatch.settings import ApiSettings
from schemas.fix import Fix
from store import registry
from store.engine import open_engine
from store.fixes import FixWriter
from tests.dispatch.conftest import START_S, fix
from tests.ingest.ingest_harness import wait_for

NOW = datetime.fromtimestamp(START_S, UTC)
SWEEP_EVERY_S = 30.0


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = open_engine(store_url, pool_size=2)
    registry.insert_unit(engine, id="u1", name="u1", kind="police", status="available", now=NOW)
    registry.insert_device(engine, id="d1", kind="phone", now=NOW)
    registry.insert_binding(engine, device_id="d1", unit_id="u1", valid_from=NOW, valid_to=None)
    yield engine
    engine.dispose()


class Polls:
    """Counts the follower's reads (the real query runs: a spy, not a stand-in)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = follow.latest_fixes

        def counted(*args: Any, **kwargs: Any) -> list[Fix]:
            try:
                return real(*args, **kwargs)
            finally:
                self.count += 1

        monkeypatch.setattr(follow, "latest_fixes", counted)

    async def next(self, seen: int, applied: Fleet) -> None:
        await wait_for(lambda: self.count > seen, 10, "the follower's next poll")
        await applied.drain()
        await asyncio.sleep(0.01)  # apply_gradually's last slice


def _lon_of(fleet: Fleet) -> float | None:
    position = fleet.position("u1")
    return None if position is None else position.lon


async def test_a_device_whose_clock_lags_moves_its_unit_at_the_next_sweep(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock(START_S)
    fleet = Fleet(engine, clock, ApiSettings())
    polls = Polls(monkeypatch)
    writer = FixWriter(engine)
    lag_s = 60.0  # the device's clock is a minute behind: every fix it sends looks a minute old
    writer.write([fix("d1", "u1", 4.35, 50.85, START_S - lag_s)])
    task = asyncio.create_task(
        follow.follow_database(
            engine, fleet, clock, max_fix_age_s=300.0, poll_s=1.0, recent_s=10.0, sweep_every_s=SWEEP_EVERY_S
        )
    )
    try:
        await polls.next(0, fleet)  # the first poll is a sweep
        assert _lon_of(fleet) == 4.35

        writer.write([fix("d1", "u1", 4.36, 50.85, START_S + 1 - lag_s)])
        clock.advance(1.0)
        await polls.next(1, fleet)
        assert _lon_of(fleet) == 4.35  # a recent-window poll cannot see it: its device time is a minute old

        for _ in range(int(SWEEP_EVERY_S)):  # one poll a second, until the sweep is due
            clock.advance(1.0)
            await polls.next(polls.count, fleet)
        assert _lon_of(fleet) == 4.36  # the sweep did
    finally:
        task.cancel()


class _Seen(logging.Handler):
    def __init__(self, event: asyncio.Event) -> None:
        super().__init__()
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()


@pytest.mark.timeout(30)
async def test_failures_are_logged_and_following_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, sqlite_url: str
) -> None:
    calls = 0

    def broken(*_: object, **__: object) -> list[Fix]:  # fault injection: the database is gone
        nonlocal calls
        calls += 1
        raise OSError("database gone")

    monkeypatch.setattr(follow, "latest_fixes", broken)
    engine = open_engine(sqlite_url, pool_size=2)
    clock = ManualClock(START_S)
    fleet = Fleet(engine, clock, ApiSettings())
    caplog.set_level(logging.WARNING, logger=follow.__name__)
    logged = asyncio.Event()
    seen = _Seen(logged)
    follow.log.addHandler(seen)
    task = asyncio.create_task(follow.follow_database(engine, fleet, clock, max_fix_age_s=300.0))
    try:
        await logged.wait()
        clock.advance(1.0)
        await wait_for(lambda: calls >= 2, 10, "a poll after the failure")
    finally:
        task.cancel()
        follow.log.removeHandler(seen)
        engine.dispose()
    assert caplog.records[0].levelno == logging.WARNING
    assert "database gone" in caplog.text
