"""The spool drain: what was spooled while the database was away goes into it, oldest first, once it is
back; live batches and the drain then proceed side by side. Writes are idempotent on (device_id, ts), so a
replayed record is a counted duplicate, never a second row."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ingest.aio import first_of, sleep_unless
from ingest.durable import Durability
from ingest.ports import SpoolStore
from ingest.write import count_stored
from schemas.backoff import Backoff
from store.fixes import StoreUnavailable

log = logging.getLogger(__name__)

_DRAIN_RETRY_S = (0.5, 5.0)
_DRAIN_FIXES = 20000


async def drain(durable: Durability, stop: asyncio.Event, clock: Callable[[], float]) -> None:
    """Replay the spool into the database, oldest first, whenever it holds anything; until `stop`."""
    spool = durable.spool
    if spool is None:
        return
    retry = Backoff(*_DRAIN_RETRY_S)
    if not spool.is_empty():
        durable.spool_ready.set()
    while not stop.is_set():
        await first_of(durable.spool_ready.wait(), stop.wait())
        if stop.is_set():
            return
        try:
            drained = await drain_some(durable, spool, clock)
        except StoreUnavailable:
            drained = None
        except Exception:  # a bug: keep the records on disk, keep trying, keep the live path free
            log.exception("spool drain failed; the spool keeps its records")
            drained = None
        if drained is None:
            await sleep_unless(stop, retry.failed())
        else:
            retry.succeeded()


async def drain_some(durable: Durability, spool: SpoolStore, clock: Callable[[], float]) -> int | None:
    """Write the oldest spooled records to the database; the fixes drained (0: the spool is empty)."""
    # Cleared before looking: an append that lands while the peek runs sets it again, so its batch is
    # drained now rather than left on disk until the next outage or restart.
    durable.spool_ready.clear()
    records = await durable.in_thread(spool.peek, _DRAIN_FIXES)
    if not records:
        return 0
    durable.spool_ready.set()  # more may follow this chunk: look again
    fixes = [f for r in records for f in r.entry.fixes]
    rejected = [m for r in records for m in r.entry.rejected]
    stored = await durable.store(fixes, rejected)
    durable.database_up()
    await durable.in_thread(spool.commit, records[-1].end)
    count_stored(fixes, stored, clock())
    durable.update_spool_gauges()
    log.info(
        "spool drained into the database",
        extra={"fixes": len(fixes), "stored": stored.new, "left_bytes": spool.depth_bytes},
    )
    return len(fixes)
