"""What the pipeline counts as durable, on a real PostgreSQL with faults injected: a read-only server (a
failover) spools the batch instead of dead-lettering it; dead letters that cannot be stored keep the batch;
a batch spooled while the drainer looks is drained; stopping waits for the spool write in flight."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from ingest import pipeline as pipeline_module
from ingest.batch import Batch
from ingest.devices import DeviceDirectory
from ingest.pipeline import Pipeline
from ingest.spool import Spool
from ingest.validate import Validator
from ingest.write import STORE_REFUSED
from schemas.fix import Fix, RejectedMessage
from store.engine import open_engine
from store.fixes import FixWriter, StoreUnavailable, count_fixes, count_rejected
from tests.ingest.ingest_harness import ingest_settings, wait_for

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


def fixes(n: int, start: int = 0) -> list[Fix]:
    return [
        Fix(device_id="dur-1", ts=T0 + timedelta(seconds=start + i), lon=-122.4, lat=37.7, received_at=T0)
        for i in range(n)
    ]


def dead_letter(device_id: str | None = None) -> RejectedMessage:
    return RejectedMessage(
        received_at=T0, source="t", reasons=("invalid_json",), raw=b"{", device_id=device_id
    )


def make_pipeline(
    engine: Engine, spool: Spool | None, tmp_path: Path, writer: FixWriter | None = None
) -> Pipeline:
    settings = ingest_settings(
        "mqtt://127.0.0.1:1", tmp_path, batch_max_age_ms=60_000, batch_max_fixes=10_000
    )
    return Pipeline(
        settings,
        writer=writer or FixWriter(engine),
        directory=DeviceDirectory(engine),
        validator=Validator(settings),
        spool=spool,
        on_accepted=lambda f: None,
    )


def set_read_only(pg_url: str, on: bool) -> None:
    # A session that is read-write whatever the database default: the way back from the read-only state.
    with psycopg.connect(pg_url, autocommit=True, options="-c default_transaction_read_only=off") as conn:
        db = make_url(pg_url).database
        conn.execute(
            f'ALTER DATABASE "{db}" SET default_transaction_read_only = on'
            if on
            else f'ALTER DATABASE "{db}" RESET default_transaction_read_only'
        )


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = open_engine(pg_url, pool_size=2)
    yield engine
    engine.dispose()


async def test_a_read_only_server_spools_the_batch_and_dead_letters_nothing(
    engine: Engine, pg_url: str, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    pipeline = make_pipeline(engine, spool, tmp_path)
    set_read_only(pg_url, True)  # the old primary, demoted: new sessions cannot write
    try:
        durable, stored = await pipeline._make_durable(Batch(fixes=fixes(5), rejected=[dead_letter()]))
        assert (durable, stored) == (True, None)  # spooled, not "stored" with every fix refused
        assert spool.depth_fixes == 5
    finally:
        set_read_only(pg_url, False)
    engine.dispose()  # the pool's sessions were opened read-only
    assert await pipeline._drain_some(spool) == 5
    assert (count_fixes(engine), count_rejected(engine), count_rejected(engine, STORE_REFUSED)) == (5, 1, 0)
    pipeline.close()


async def test_dead_letters_that_cannot_be_stored_keep_the_batch(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    writer = FixWriter(engine)
    pipeline = make_pipeline(engine, spool, tmp_path, writer)
    real = writer.write_rejected

    def failing(rows: Sequence[RejectedMessage]) -> None:
        raise RuntimeError("injected: dead letters cannot be written")

    monkeypatch.setattr(writer, "write_rejected", failing)
    durable, stored = await pipeline._make_durable(Batch(fixes=fixes(3), rejected=[dead_letter()]))
    assert (durable, stored) == (True, None)  # spooled: the dead letter is on disk, not dropped
    monkeypatch.setattr(writer, "write_rejected", real)
    pipeline._database_up()
    # A dead letter the database refuses for its content (device id longer than its column) is stored
    # with its text made safe, never dropped.
    long_id = "x" * 200
    durable, stored = await pipeline._make_durable(Batch(rejected=[dead_letter(long_id)]))
    assert durable and stored is not None
    assert await pipeline._drain_some(spool) == 3
    assert (count_fixes(engine), count_rejected(engine)) == (3, 2)
    pipeline.close()


async def test_a_batch_spooled_while_the_drainer_looks_is_drained(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    pipeline = make_pipeline(engine, spool, tmp_path)
    spool.append(fixes(2), [])  # left by an outage: the drainer starts on it
    loop = asyncio.get_running_loop()
    original = spool.peek
    raced = threading.Event()

    def peek_racing_an_append(max_fixes: int = 20000) -> list[object]:
        records = original(max_fixes)
        if not records and not raced.is_set():
            raced.set()
            # Fault injection (timing): a live batch is spooled, and acknowledged, while this peek runs.
            later = pipeline._append_to_spool(Batch(fixes=fixes(1, start=10)))
            assert asyncio.run_coroutine_threadsafe(later, loop).result(10)
        return records  # type: ignore[return-value]

    monkeypatch.setattr(spool, "peek", peek_racing_an_append)
    stop = asyncio.Event()
    draining = asyncio.create_task(pipeline._drain(stop))
    try:
        await wait_for(lambda: count_fixes(engine) == 3, 10, "the batch spooled during the peek drained")
        # The drainer commits the spool after the database write, in a thread of its own: wait for it.
        await wait_for(spool.is_empty, 10, "the spool committed past the drained batch")
        assert count_fixes(engine) == 3
    finally:
        stop.set()
        await draining
        pipeline.close()


class DownWriter(FixWriter):
    """The real writer, with the database 'unavailable' (fault injection only)."""

    def write(self, fixes: Sequence[Fix]) -> int:
        raise StoreUnavailable("injected outage")


async def test_stopping_waits_for_the_spool_write_in_flight(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    pipeline = make_pipeline(engine, spool, tmp_path, DownWriter(engine))
    entered, release = threading.Event(), threading.Event()
    original = spool.append

    def stalled_append(fixes: Sequence[Fix], rejected: Sequence[RejectedMessage]) -> None:
        entered.set()
        release.wait(10)  # fault injection: a stalled disk, longer than the final flush may take
        original(fixes, rejected)

    monkeypatch.setattr(spool, "append", stalled_append)
    monkeypatch.setattr(pipeline_module, "_FINAL_FLUSH_S", 0.05)
    stop = asyncio.Event()
    running = asyncio.create_task(pipeline.run(stop))
    await asyncio.sleep(0)
    pipeline._batcher.current.fixes.extend(fixes(4))
    stop.set()
    assert await asyncio.to_thread(entered.wait, 10)
    done, _ = await asyncio.wait({running}, timeout=0.5)  # the final flush has given up by now
    assert not done  # but run waits for the thread still writing to the spool
    release.set()
    await running
    pipeline.close()
    again = Spool(tmp_path / "spool", max_bytes=1 << 20)
    assert again.depth_fixes == 4  # written whole, to an open file
    again.close()
