"""Chaos: the ingest (a subprocess) is killed -9, PostgreSQL stops for 30 s, the broker restarts; the
per-device `seq` oracle finds 0 lost and 0 duplicated. Each test has a negative control, the same run with
one safeguard switched off, which must show loss: proof that the test can see it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ingest.safeguards import UNSAFE_ACK_ON_RECEIPT, UNSAFE_CLEAN_SESSION, UNSAFE_DROP_ON_STORE_FAILURE
from store.devices import register_unknown
from store.engine import open_engine
from store.fixes import count_fixes
from tests.ingest.ingest_harness import (
    NOW,
    IngestProcess,
    Tally,
    ingest_settings,
    issue_test_credentials,
    publish_stream,
    runner_env,
    tally,
    wait_for,
)
from tests.support.services import Mosquitto, PgCluster

pytestmark = pytest.mark.slow

DEVICES = [f"chaos-{i}" for i in range(10)]


def ingest_process(
    db_url: str, broker: Mosquitto, tmp_path: Path, unsafe: str = "", **overrides: object
) -> IngestProcess:
    settings = ingest_settings(
        broker.url,
        tmp_path / "spool",
        unsafe_disable_safeguard=unsafe,
        mqtt_client_id="chaos-ingest",
        **overrides,
    )
    return IngestProcess(runner_env(db_url, settings), tmp_path / "ingest.log")


def register_devices(engine: Engine) -> None:
    for device in DEVICES:
        register_unknown(engine, device, now=NOW)
    issue_test_credentials(engine, *DEVICES)


async def settle(engine: Engine, expected: int, ingest: IngestProcess, quiet_s: float = 3.0) -> Tally:
    """Wait until everything is stored, or until nothing more arrives for `quiet_s` (then: loss)."""
    last, still = -1, 0.0
    while True:
        n = count_fixes(engine)
        if n >= expected:
            break
        still = still + 0.25 if n == last else 0.0
        if still >= quiet_s or not ingest.alive():
            break
        last = n
        await asyncio.sleep(0.25)
    result = tally(engine, expected)
    print(
        f"oracle: {result}; ingest counted {ingest.metric('outpost_ingest_duplicates_ignored_total'):.0f} "
        "redelivered duplicates since its last start"
    )
    return result


# ------------------------------------------------------------------------------------------------- kill -9
async def kill_mid_stream(
    pg_url: str, pg_engine: Engine, broker: Mosquitto, tmp_path: Path, unsafe: str
) -> Tally:
    register_devices(pg_engine)
    # A long batch age keeps a second of fixes in memory at any moment: what an unsafe ack would lose.
    ingest = ingest_process(pg_url, broker, tmp_path, unsafe, batch_max_age_ms=1000, batch_max_fixes=100000)
    await ingest.start().connected()
    per_device = 800  # 8,000 fixes at 1,000/s
    publishing = asyncio.create_task(publish_stream(broker.url, DEVICES, per_device, 1000.0))
    try:
        await wait_for(lambda: count_fixes(pg_engine) >= 2000, 30, "a first part stored")
        await asyncio.sleep(0.5)  # half-way through the next batch
        ingest.kill()  # SIGKILL, mid-stream
        await asyncio.sleep(0.5)
        await ingest.start().connected()
        sent = await publishing
        return await settle(pg_engine, sent, ingest)
    finally:
        ingest.stop()


async def test_kill_9_mid_stream_loses_nothing(
    mosquitto: Mosquitto, pg_url: str, pg_engine: Engine, tmp_path: Path
) -> None:
    result = await kill_mid_stream(pg_url, pg_engine, mosquitto, tmp_path, unsafe="")
    assert (result.lost, result.duplicated) == (0, 0), result
    assert result.stored == result.expected == 8000


async def test_negative_control_ack_on_receipt_loses_fixes_on_kill_9(
    mosquitto: Mosquitto, pg_url: str, pg_engine: Engine, tmp_path: Path
) -> None:
    result = await kill_mid_stream(pg_url, pg_engine, mosquitto, tmp_path, unsafe=UNSAFE_ACK_ON_RECEIPT)
    assert result.lost > 0, result
    assert result.duplicated == 0


# ---------------------------------------------------------------------------------------- PostgreSQL down


async def database_outage(
    cluster: PgCluster, url: str, broker: Mosquitto, tmp_path: Path, unsafe: str
) -> Tally:
    engine = open_engine(url, pool_size=2)
    try:
        register_devices(engine)
        ingest = ingest_process(url, broker, tmp_path, unsafe)
        await ingest.start().connected()
        try:
            await asyncio.to_thread(cluster.stop, "fast")
            down_at = asyncio.get_running_loop().time()
            # 20,000 fixes while the database is down (about 20 s of the 30 s outage).
            sent = await publish_stream(broker.url, DEVICES, 2000, 1000.0)
            await asyncio.sleep(max(0.0, 30.0 - (asyncio.get_running_loop().time() - down_at)))
            await asyncio.to_thread(cluster.start_again)
            result = await settle(engine, sent, ingest, quiet_s=8.0)
            spooled = ingest.metric("outpost_ingest_fixes_spooled_total")
        finally:
            ingest.stop()
        if not unsafe:
            assert spooled == sent, "every fix of the outage went through the spool"
        return result
    finally:
        engine.dispose()


async def test_database_down_for_30_s_loses_nothing(
    own_cluster: tuple[PgCluster, str], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    result = await database_outage(*own_cluster, mosquitto, tmp_path, unsafe="")
    assert (result.lost, result.duplicated) == (0, 0), result
    assert result.stored == result.expected == 20000


async def test_negative_control_without_spool_fixes_are_lost_in_an_outage(
    own_cluster: tuple[PgCluster, str], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    result = await database_outage(*own_cluster, mosquitto, tmp_path, unsafe=UNSAFE_DROP_ON_STORE_FAILURE)
    assert result.lost > 0, result


# ----------------------------------------------------------------------------------------- broker restart
async def broker_restart(
    pg_url: str, pg_engine: Engine, broker: Mosquitto, tmp_path: Path, unsafe: str
) -> Tally:
    register_devices(pg_engine)
    # The ingest comes back 2 s after the broker: messages published meanwhile wait in its session (or not).
    ingest = ingest_process(
        pg_url, broker, tmp_path, unsafe, mqtt_reconnect_min_s=2.0, mqtt_reconnect_max_s=2.0
    )
    await ingest.start().connected()
    try:
        publishing = asyncio.create_task(publish_stream(broker.url, DEVICES, 600, 1000.0))
        await wait_for(lambda: count_fixes(pg_engine) >= 1500, 30, "a first part stored")
        await asyncio.to_thread(broker.restart)  # SIGTERM: Mosquitto saves its sessions, then starts again
        sent = await publishing
        return await settle(pg_engine, sent, ingest, quiet_s=5.0)
    finally:
        ingest.stop()


async def test_broker_restart_loses_nothing(
    mosquitto: Mosquitto, pg_url: str, pg_engine: Engine, tmp_path: Path
) -> None:
    result = await broker_restart(pg_url, pg_engine, mosquitto, tmp_path, unsafe="")
    assert (result.lost, result.duplicated) == (0, 0), result
    assert result.stored == result.expected == 6000


async def test_negative_control_clean_session_loses_fixes_on_broker_restart(
    mosquitto: Mosquitto, pg_url: str, pg_engine: Engine, tmp_path: Path
) -> None:
    result = await broker_restart(pg_url, pg_engine, mosquitto, tmp_path, unsafe=UNSAFE_CLEAN_SESSION)
    assert result.lost > 0, result
