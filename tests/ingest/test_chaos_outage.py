"""Chaos at scale: a 3-minute PostgreSQL outage at 5,000 fixes/s, and the spool's disk filling up while the
database is away. The per-device `seq` oracle finds 0 lost and 0 duplicated; each has a negative control,
the same run with its safeguard switched off, which must show the loss (proof that the test can see it)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from ingest.safeguards import UNSAFE_ACK_ON_SPOOL_FAILURE
from schemas.credentials import hash_secret
from store import registry
from store.engine import open_engine
from store.fixes import count_fixes
from tests.ingest.ingest_harness import (
    NOW,
    IngestProcess,
    Tally,
    ingest_settings,
    publish_stream,
    runner_env,
    tally,
    wait_for,
)
from tests.support.services import Mosquitto, PgCluster

pytestmark = pytest.mark.slow

# 100 devices × 20 ms between their fixes: 9,000 fixes each span 3 minutes of device time (never "future").
FLEET = [f"outage-{i}" for i in range(100)]
OUTAGE_S = 180.0
RATE_PER_S = 5000.0


def register_fleet(engine: Engine, devices: list[str]) -> None:
    """Devices with credentials (one hash for all: scrypt is slow), each bound to a unit of its id."""
    secret_hash = hash_secret("chaos-secret")
    for device in devices:
        registry.insert_unit(engine, id=device, name=device, kind="police", status="available", now=NOW)
        registry.insert_device(engine, id=device, kind="phone", enabled=True, now=NOW)
        registry.insert_binding(engine, device_id=device, unit_id=device, valid_from=NOW, valid_to=None)
        registry.set_device_credentials(engine, device, secret_hash)


def start_ingest(
    url: str, broker: Mosquitto, spool: Path, log: Path, unsafe: str = "", **kw: object
) -> IngestProcess:
    settings = ingest_settings(
        broker.url, spool, unsafe_disable_safeguard=unsafe, mqtt_client_id="outage-ingest", **kw
    )
    return IngestProcess(runner_env(url, settings), log)


async def settle(engine: Engine, expected: int, ingest: IngestProcess, quiet_s: float) -> Tally:
    """Wait until everything is stored, or until nothing more arrives for `quiet_s` (then: loss)."""
    last, still = -1, 0.0
    while True:
        n = count_fixes(engine)
        if n >= expected or not ingest.alive():
            break
        still = still + 0.5 if n == last else 0.0
        if still >= quiet_s:
            break
        last = n
        await asyncio.sleep(0.5)
    return tally(engine, expected)


def out_of_order(engine: Engine) -> int:
    """Fixes committed in an earlier transaction than a fix of the same device published before them
    (`xmin` grows with every commit of a fresh cluster): 0 when the spool drained in order."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM (SELECT xmin::text::bigint AS x, lag(xmin::text::bigint)"
                    " OVER (PARTITION BY device_id ORDER BY seq) AS before FROM fixes) s WHERE x < before"
                )
            ).scalar_one()
        )


# ------------------------------------------------------------------------ 3 minutes down at 5,000 fixes/s
async def long_outage(cluster: PgCluster, url: str, broker: Mosquitto, tmp_path: Path, unsafe: str) -> Tally:
    engine = open_engine(url, pool_size=2)
    try:
        register_fleet(engine, FLEET)
        ingest = start_ingest(url, broker, tmp_path / "spool", tmp_path / "ingest.log", unsafe)
        await ingest.start().connected()
        try:
            await asyncio.to_thread(cluster.stop, "fast")
            per_device = int(OUTAGE_S * RATE_PER_S) // len(FLEET)
            started_s = time.monotonic()
            sent = await publish_stream(broker.url, FLEET, per_device, RATE_PER_S, flush_timeout_s=900)
            rate_per_s = sent / (time.monotonic() - started_s)
            # The broker has them all; the ingest's last batch may still be on its way to the spool.
            await wait_for(
                lambda: ingest.metric("outpost_ingest_fixes_spooled_total") >= sent or not ingest.alive(),
                60,
                "the last batches spooled",
            )
            spooled = ingest.metric("outpost_ingest_fixes_spooled_total")
            await asyncio.to_thread(cluster.start_again)
            result = await settle(engine, sent, ingest, quiet_s=20.0)
        finally:
            ingest.stop()
        # On a loaded machine the publisher falls below 5,000/s; the database stays down until it is done.
        print(f"outage: {sent} published at {rate_per_s:,.0f}/s, {spooled:.0f} spooled; {result}")
        if not unsafe:
            assert spooled == sent, "every fix of the outage went through the spool"
            assert out_of_order(engine) == 0, "the spool drained in the order the fixes came"
        return result
    finally:
        engine.dispose()


# 3 minutes of publishing, then the drain of 900,000 fixes: far past the suite's 300 s default.
@pytest.mark.timeout(1500)
async def test_database_down_3_minutes_at_5000_fixes_per_s_loses_nothing(
    own_cluster: tuple[PgCluster, str], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    result = await long_outage(*own_cluster, mosquitto, tmp_path, unsafe="")
    assert (result.lost, result.duplicated) == (0, 0), result
    assert result.stored == result.expected == int(OUTAGE_S * RATE_PER_S)


# The negative control of this outage is test_chaos.py's: the same kind of outage without the spool
# (UNSAFE_DROP_ON_STORE_FAILURE) loses fixes; three more minutes to see the same loss would prove nothing new.


# ------------------------------------------------------------------------------ the spool's disk fills up
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB filesystem of its own for the spool (tmpfs), so the disk really fills: ENOSPC, not a limit."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for the spool (needs root): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        with contextlib.suppress(OSError):
            subprocess.run(["umount", "-l", str(mount)], check=False)


async def disk_fills(
    cluster: PgCluster, url: str, broker: Mosquitto, spool_disk: Path, tmp_path: Path, unsafe: str
) -> tuple[Tally, float, float]:
    engine = open_engine(url, pool_size=2)
    try:
        register_fleet(engine, FLEET[:10])
        # The spool's own limit far above the disk: what stops it is the disk, as in the field.
        ingest = start_ingest(
            url, broker, spool_disk, tmp_path / "ingest.log", unsafe, spool_max_bytes=1 << 30
        )
        await ingest.start().connected()
        try:
            await asyncio.to_thread(cluster.stop, "fast")
            sent = await publish_stream(broker.url, FLEET[:10], 4000, 2000.0)  # ~4 MB of batches: 2× the disk
            await wait_for(
                lambda: (
                    ingest.metric("outpost_ingest_spool_refusals_total", cause="disk_full") > 0
                    or not ingest.alive()
                ),
                60,
                "the spool refusing a batch for a full disk",
            )
            holding = ingest.metric("outpost_ingest_holding")
            spooled = ingest.metric("outpost_ingest_fixes_spooled_total")
            assert ingest.alive(), "a full disk must not end the ingest"
            await asyncio.to_thread(cluster.start_again)
            result = await settle(engine, sent, ingest, quiet_s=15.0)
        finally:
            ingest.stop()
        print(f"disk full: {sent} published, {spooled:.0f} spooled before the disk filled; {result}")
        return result, holding, spooled
    finally:
        engine.dispose()


async def test_a_full_spool_disk_stops_acknowledgements_and_loses_nothing(
    own_cluster: tuple[PgCluster, str], mosquitto: Mosquitto, small_disk: Path, tmp_path: Path
) -> None:
    result, holding, spooled = await disk_fills(*own_cluster, mosquitto, small_disk, tmp_path, unsafe="")
    assert holding == 1.0, (
        "the operator's alarm: outpost_ingest_holding is 1 while nothing can be made durable"
    )
    assert 0 < spooled < result.expected, "acknowledgements stopped once the disk was full"
    assert (result.lost, result.duplicated) == (0, 0), result
    assert result.stored == result.expected


async def test_negative_control_acknowledging_past_a_full_disk_loses_fixes(
    own_cluster: tuple[PgCluster, str], mosquitto: Mosquitto, small_disk: Path, tmp_path: Path
) -> None:
    result, _, _ = await disk_fills(
        *own_cluster, mosquitto, small_disk, tmp_path, unsafe=UNSAFE_ACK_ON_SPOOL_FAILURE
    )
    assert result.lost > 0, result
    assert result.duplicated == 0
