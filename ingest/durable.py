"""Making a batch durable: in the database, or in the local spool while the database is away, or held.

A batch neither can take (database down, spool full) is held and retried: nothing is acknowledged
meanwhile. While the database is down, batches go straight to the spool, and the database is tried again
after a growing pause (1 s to 30 s) or as soon as the drainer gets a write through.

The stores block, so they run in worker threads; a cancelled await does not stop a thread, so every one
is tracked until it ends (`in_thread`), and `settle` waits for them before the spool is closed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from ingest import metrics
from ingest.acknowledge import answer
from ingest.batch import Batch
from ingest.ports import FixStore, SpoolStore
from ingest.ratelimit import RateLimit
from ingest.safeguards import UNSAFE_ACK_ON_SPOOL_FAILURE, UNSAFE_DROP_ON_STORE_FAILURE
from ingest.spool import SpoolFull
from ingest.write import Stored, store_batch
from schemas.backoff import Backoff
from schemas.fix import Fix, RejectedMessage
from store.fixes import StoreUnavailable

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_HOLD_RETRY_S = 1.0
_DB_RETRY_S = (1.0, 30.0)


class Durability:
    """Database first, spool when it is away, hold when neither takes the batch. Runs on the loop."""

    def __init__(
        self, writer: FixStore, spool: SpoolStore | None, *, unsafe: str, log_budget: RateLimit
    ) -> None:
        self._writer = writer
        self.spool = spool
        self._unsafe = unsafe
        self._log_budget = log_budget
        # After the database refuses a write, batches go to the spool until this (monotonic) time.
        self._db_down_until = 0.0
        self._db_retry = Backoff(*_DB_RETRY_S)
        self.spool_ready = asyncio.Event()  # set when the spool may hold something to drain
        self._threads: set[asyncio.Future[Any]] = set()
        self.update_spool_gauges()

    @property
    def spooling(self) -> bool:
        """Whether new batches currently go to the spool (the database refused the last write)."""
        return self.spool is not None and time.monotonic() < self._db_down_until

    async def make_durable(self, batch: Batch) -> tuple[bool, Stored | None]:
        """(durable, what the database did, or None if spooled). Holds the batch while nothing can take it."""
        if not batch.fixes and not batch.rejected:
            return True, Stored(0, 0)
        while True:
            if not self.spooling:
                try:
                    stored = await self.store(batch.fixes, batch.rejected)
                except StoreUnavailable as exc:
                    metrics.STORE_UNAVAILABLE.inc()
                    log.warning("database unavailable; spooling", extra={"error": str(exc)[:300]})
                    if self._unsafe == UNSAFE_DROP_ON_STORE_FAILURE:
                        metrics.FIXES_DROPPED.inc(len(batch.fixes))
                        return False, None  # the negative control: acknowledged all the same, lost
                    self.database_down()
                else:
                    self.database_up()
                    metrics.HOLDING.set(0)
                    return True, stored
            if self.spool is not None and await self.append_to_spool(batch):
                metrics.HOLDING.set(0)
                return True, None
            if self._unsafe == UNSAFE_ACK_ON_SPOOL_FAILURE:
                metrics.FIXES_DROPPED.inc(len(batch.fixes))
                return False, None  # the negative control: acknowledged all the same, lost
            # Neither the database nor the spool can take it: no acks, the broker keeps the backlog.
            metrics.HOLDING.set(1)
            answer(batch.waiters, False)
            await asyncio.sleep(_HOLD_RETRY_S)
            self._db_down_until = 0.0  # try the database again

    async def store(self, fixes: list[Fix], rejected: list[RejectedMessage]) -> Stored:
        """`store_batch` in a worker thread; raises StoreUnavailable."""
        return await self.in_thread(store_batch, self._writer, fixes, rejected)

    def database_down(self) -> None:
        """Send batches to the spool for a while; the database is tried again after a growing pause (or
        as soon as the drainer gets a write through), so a probe that has to time out is rare."""
        self._db_down_until = time.monotonic() + self._db_retry.failed()

    def database_up(self) -> None:
        """A write went through: batches go to the database again."""
        self._db_down_until = 0.0
        self._db_retry.succeeded()

    async def append_to_spool(self, batch: Batch) -> bool:
        """Spool `batch` (fsynced); False when the spool cannot take it (full, or a disk error)."""
        assert self.spool is not None
        try:
            await self.in_thread(self.spool.append, batch.fixes, batch.rejected)
        except (SpoolFull, OSError) as exc:
            metrics.SPOOL_REFUSALS.labels(cause=_cause(exc)).inc()
            if self._log_budget.allow():
                log.error(
                    "spool cannot take the batch; holding it, not acknowledging",
                    extra={"error": str(exc), "spool_bytes": self.spool.depth_bytes},
                )
            return False
        metrics.FIXES_SPOOLED.inc(len(batch.fixes))
        self.update_spool_gauges()
        self.spool_ready.set()
        return True

    def update_spool_gauges(self) -> None:
        """The spool's depth, in bytes and fixes."""
        if self.spool is not None:
            metrics.SPOOL_BYTES.set(self.spool.depth_bytes)
            metrics.SPOOL_FIXES.set(self.spool.depth_fixes)

    async def in_thread(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn` in a worker thread, tracked until it ends: cancelling the await (the bounded final flush,
        stopping the drainer) leaves the thread running, and `settle` waits for it before `close`."""
        work = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
        self._threads.add(work)
        work.add_done_callback(self._threads.discard)
        return await asyncio.shield(work)

    async def settle(self) -> None:
        """Wait for store and spool work still running in worker threads (their outcome is not needed:
        a batch not acknowledged is redelivered, and writes are idempotent)."""
        while self._threads:
            await asyncio.gather(*self._threads, return_exceptions=True)


def _cause(exc: Exception) -> str:
    """Why the spool refused a batch (a metric label): its own limit, a full disk, or another disk error."""
    if isinstance(exc, SpoolFull):
        return "spool_full"
    return "disk_full" if isinstance(exc, OSError) and exc.errno == errno.ENOSPC else "disk_error"
