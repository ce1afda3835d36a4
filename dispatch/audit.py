"""The audit log of location reads: who read which unit or area, when.

Entries are recorded synchronously in memory by the handler (so a read is never answered without its
entry queued) and written to the database in batches by a background task, so a nearest query does not
wait for a commit. `flush` writes what is queued now; the app flushes once more on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Engine

from dispatch.blocking import run_db
from dispatch.clock import Clock
from dispatch.problems import Unavailable
from store import access

log = logging.getLogger(__name__)

AUDIT_DROPPED = Counter("outpost_audit_dropped_total", "Audit entries dropped because the queue was full")
AUDIT_WRITTEN = Counter("outpost_audit_written_total", "Audit entries written to the database")


class AuditLog:
    """Queue audit entries and write them in batches every `flush_s` seconds."""

    def __init__(self, engine: Engine, clock: Clock, *, flush_s: float, max_pending: int) -> None:
        self._engine = engine
        self._clock = clock
        self._flush_s = flush_s
        self._max_pending = max_pending
        self._pending: list[access.AuditEntry] = []
        self._lock = asyncio.Lock()

    def record(self, actor: str, action: str, subject: str, detail: dict[str, Any] | None = None) -> None:
        """Queue one entry stamped with the clock's time."""
        if len(self._pending) >= self._max_pending:
            # The database has been away for a long time: bounded memory beats an unbounded queue.
            AUDIT_DROPPED.inc()
            return
        at = datetime.fromtimestamp(self._clock.now(), UTC)
        self._pending.append(
            access.AuditEntry(at=at, actor=actor, action=action, subject=subject, detail=detail)
        )

    @property
    def pending(self) -> int:
        """Entries queued and not yet written."""
        return len(self._pending)

    async def flush(self) -> int:
        """Write everything queued; returns how many entries were written (kept queued on failure)."""
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                await run_db(access.write_audit, self._engine, batch)
            except (Unavailable, OSError):
                self._pending[:0] = batch
                raise
            AUDIT_WRITTEN.inc(len(batch))
            return len(batch)

    async def run(self) -> None:
        """Flush forever, every `flush_s`; database outages are logged and retried."""
        while True:
            await self._clock.sleep(self._flush_s)
            try:
                await self.flush()
            except Exception:
                log.warning(
                    "audit flush failed; %d entries kept for the next attempt", self.pending, exc_info=True
                )

    async def lifecycle(self) -> AsyncIterator[None]:
        """Run the flusher while the app runs and flush what remains at shutdown (for cleanup_ctx)."""
        task = asyncio.create_task(self.run(), name="audit-flush")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            try:
                await self.flush()
            except Exception:
                log.error("audit entries lost at shutdown: %d", self.pending, exc_info=True)
