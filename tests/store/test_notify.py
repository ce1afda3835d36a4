"""Device and unit changes told across processes: NOTIFY on one connection, LISTEN on another, on a real
PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from store import registry
from store.engine import open_engine
from store.notify import UNITS_CHANNEL, announce_unit, listen, listen_payloads, notify


async def until(predicate, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 (the notice comes from another connection)
            await asyncio.sleep(0.02)


async def test_a_notification_reaches_the_listener_and_a_lost_connection_is_made_again(
    pg_engine: Engine,
) -> None:
    heard: list[int] = []
    listening: list[int] = []

    async def on_notice() -> None:
        heard.append(1)

    stop = asyncio.Event()
    task = asyncio.create_task(
        listen(pg_engine, on_notice, stop, retry_s=0.1, on_listening=lambda: listening.append(1))
    )
    try:
        await until(lambda: listening and heard)  # one reload on connecting: what changed while away
        before = len(heard)
        await asyncio.to_thread(notify, pg_engine)
        await until(lambda: len(heard) > before)

        # The listener's session is ended (a failover, a restart): it connects again and reloads once.
        with pg_engine.begin() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = 'outpost-listen'"
                )
            )
        await until(lambda: len(listening) == 2)
        before = len(heard)
        await asyncio.to_thread(notify, pg_engine)
        await until(lambda: len(heard) > before)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_a_burst_of_notifications_costs_few_reloads(pg_engine: Engine) -> None:
    reloads: list[int] = []
    listening = asyncio.Event()

    async def slow_reload() -> None:
        reloads.append(1)
        await asyncio.sleep(0.3)

    stop = asyncio.Event()
    task = asyncio.create_task(listen(pg_engine, slow_reload, stop, on_listening=listening.set))
    try:
        await asyncio.wait_for(listening.wait(), 20)
        await until(lambda: len(reloads) == 1)
        await asyncio.sleep(0.4)
        for _ in range(50):
            await asyncio.to_thread(notify, pg_engine)
        await until(lambda: len(reloads) >= 2)
        await asyncio.sleep(1.0)
        assert 2 <= len(reloads) <= 4, reloads  # coalesced: not one reload per notification
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_sqlite_has_nobody_to_tell(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'o.db'}")
    notify(engine)  # nothing to do, and no error

    async def never() -> None:
        raise AssertionError("no notice on SQLite")

    await asyncio.wait_for(listen(engine, never, asyncio.Event()), 1)


async def test_unit_changes_are_heard_by_id_once_committed_and_only_then(pg_engine: Engine) -> None:
    batches: list[set[str]] = []
    everything: list[None] = []

    async def on_payloads(ids: set[str] | None) -> None:
        if ids is None:
            everything.append(None)
        else:
            batches.append(ids)

    async def marked(step: str) -> list[str]:
        """What was heard before a marker unit's creation (notices come in commit order, a call's batch
        holding those that arrived together)."""
        marker = f"marker-{step}"
        await asyncio.to_thread(registry.insert_unit, pg_engine, id=marker, name=step, kind="police", now=now)
        await until(lambda: any(marker in b for b in batches))
        end = next(i for i, b in enumerate(batches) if marker in b) + 1
        got = set().union(*batches[:end]) - {marker}
        del batches[:end]
        return sorted(got)

    now = datetime.now(UTC)
    stop = asyncio.Event()
    task = asyncio.create_task(listen_payloads(pg_engine, on_payloads, stop, UNITS_CHANNEL, retry_s=0.1))
    try:
        await until(lambda: everything)  # on connecting: anything may have changed
        registry.insert_unit(pg_engine, id="u-1", name="One", kind="police", now=now)
        assert await marked("a") == ["u-1"]
        registry.change_unit_status(pg_engine, "u-1", "available", actor="t", now=now)
        assert await marked("b") == ["u-1"]
        registry.change_unit_status(pg_engine, "u-1", "available", actor="t", now=now)  # no change
        registry.change_unit_status(pg_engine, "u-1", "busy", expected=["off_duty"], actor="t", now=now)
        assert registry.update_unit(pg_engine, "nobody", name="x") is None
        assert await marked("c") == []
        registry.update_unit(pg_engine, "u-1", kind="auxiliary")
        assert await marked("d") == ["u-1"]
        with pytest.raises(RuntimeError), pg_engine.begin() as conn:  # rolled back: never heard
            announce_unit(conn, "u-1")
            raise RuntimeError("rolled back")
        assert await marked("e") == []
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
