"""Backpressure and freshness: with the database down and the spool full, nothing is acknowledged and
memory stays bounded (reading pauses); everything is stored once the database is back. The live index
hears of fixes before they are stored. The same pipeline runs on the embedded SQLite store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from ingest.devices import DeviceDirectory
from ingest.pipeline import Pipeline
from ingest.spool import Spool
from ingest.validate import Validator
from schemas.fix import Fix
from store.engine import open_engine
from store.fixes import FixWriter, StoreUnavailable, count_fixes, count_rejected, fetch_fixes
from tests.ingest.ingest_harness import (
    Accepted,
    ingest_settings,
    publish_stream,
    register,
    running_ingest,
    tally,
    wait_for,
)
from tests.support.services import Mosquitto


class FlakyWriter(FixWriter):
    """The real writer, with a switch that makes the database 'unavailable' (fault injection only)."""

    down = False

    def write(self, fixes: Sequence[Fix]) -> int:
        if self.down:
            raise StoreUnavailable("injected outage")
        return super().write(fixes)


def pending() -> float:
    return REGISTRY.get_sample_value("outpost_ingest_pending_messages") or 0.0


async def test_database_down_and_spool_full_holds_everything_unacknowledged_and_bounded(
    mosquitto: Mosquitto, pg_engine: Engine, tmp_path: Path
) -> None:
    devices = [f"bp-{i}" for i in range(5)]
    for device in devices:
        register(pg_engine, device)
    settings = ingest_settings(mosquitto.url, tmp_path, mqtt_receive_maximum=40, batch_max_fixes=10)
    writer = FlakyWriter(pg_engine)
    writer.down = True
    accepted = Accepted()
    pipeline = Pipeline(
        settings,
        writer=writer,
        directory=DeviceDirectory(pg_engine),
        validator=Validator(settings),
        spool=Spool(tmp_path / "spool", max_bytes=100),
        on_accepted=accepted,
    )
    peak = 0.0
    async with running_ingest(settings, pg_engine, pipeline=pipeline, on_accepted=accepted):
        sent = await publish_stream(
            mosquitto.url, devices, 60, 2000.0
        )  # 300 messages, all acked by the broker
        await wait_for(lambda: len(accepted.fixes) >= 40, what="the first window of fixes")
        for _ in range(25):  # a second: long enough for anything unbounded to show
            peak = max(peak, pending())
            await asyncio.sleep(0.04)
        assert count_fixes(pg_engine) == 0
        assert 40 <= peak <= 40 + 2000  # paused at the window (plus at most one read chunk)
        assert len(accepted.fixes) < sent  # the broker holds the rest: we stopped reading
        writer.down = False
        await wait_for(lambda: count_fixes(pg_engine) >= sent, 30, "everything stored after the outage")
        await wait_for(lambda: pending() == 0, what="everything acknowledged")
    result = tally(pg_engine, sent)
    assert (result.lost, result.duplicated) == (0, 0)


async def test_the_live_index_hears_of_fixes_before_they_are_stored(
    mosquitto: Mosquitto, pg_engine: Engine, tmp_path: Path
) -> None:
    register(pg_engine, "fresh-1")
    settings = ingest_settings(mosquitto.url, tmp_path, batch_max_age_ms=60_000, batch_max_fixes=1000)
    accepted = Accepted()
    async with running_ingest(settings, pg_engine, on_accepted=accepted):
        await publish_stream(mosquitto.url, ["fresh-1"], 3, 100.0)
        await wait_for(lambda: len(accepted.fixes) == 3)
        assert count_fixes(pg_engine) == 0  # the batch waits for its age; the index already has them
    assert count_fixes(pg_engine) == 3  # and the last batch was flushed on stop


async def test_the_pipeline_stores_into_the_embedded_sqlite_store(
    mosquitto: Mosquitto, sqlite_url: str, tmp_path: Path
) -> None:
    engine = open_engine(sqlite_url, pool_size=2)
    try:
        settings = ingest_settings(mosquitto.url, tmp_path, register_unknown_devices=True)
        async with running_ingest(settings, engine):
            base_ms = int(time.time() * 1000) - 60_000
            sent = await publish_stream(mosquitto.url, ["lite-1", "lite-2"], 50, 1000.0, base_ms=base_ms)
            await wait_for(lambda: count_fixes(engine) == sent)
            before = REGISTRY.get_sample_value("outpost_ingest_duplicates_ignored_total") or 0.0
            await publish_stream(mosquitto.url, ["lite-1"], 50, 1000.0, base_ms=base_ms)  # a replay
            await wait_for(
                lambda: (
                    (REGISTRY.get_sample_value("outpost_ingest_duplicates_ignored_total") or 0.0) - before
                    == 50
                ),
                what="the replay counted as duplicates",
            )
        assert count_fixes(engine) == 100
        assert [f.seq for f in fetch_fixes(engine, device_id="lite-2")] == list(range(1, 51))
        assert fetch_fixes(engine, device_id="lite-1")[0].unit_id == "lite-1"
    finally:
        engine.dispose()


class PickyWriter(FixWriter):
    """The real writer, refusing any batch containing seq 13 as a content error (a validation gap)."""

    def write(self, fixes: Sequence[Fix]) -> int:
        if any(f.seq == 13 for f in fixes):
            raise psycopg.errors.NumericValueOutOfRange("value out of range")  # SQLSTATE 22003
        return super().write(fixes)


async def test_a_fix_the_database_refuses_is_dead_lettered_and_the_rest_stored(
    mosquitto: Mosquitto, pg_engine: Engine, tmp_path: Path
) -> None:
    register(pg_engine, "picky-1")
    settings = ingest_settings(mosquitto.url, tmp_path, batch_max_age_ms=500)
    pipeline = Pipeline(
        settings,
        writer=PickyWriter(pg_engine),
        directory=DeviceDirectory(pg_engine),
        validator=Validator(settings),
        spool=None,
        on_accepted=lambda f: None,
    )
    async with running_ingest(settings, pg_engine, pipeline=pipeline):
        await publish_stream(mosquitto.url, ["picky-1"], 40, 1000.0)
        await wait_for(lambda: count_fixes(pg_engine) == 39)
        await wait_for(lambda: count_rejected(pg_engine, "store_refused") == 1)
    assert 13 not in [f.seq for f in fetch_fixes(pg_engine, device_id="picky-1")]
