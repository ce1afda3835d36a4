"""Storage maintenance for the role that keeps the store: now and hourly, partitions made ahead and expired
ones dropped (PostgreSQL), expired rows deleted (SQLite), old dead letters deleted (every store;
TimescaleDB's own jobs expire its chunks)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy import Engine

from store import partitions
from store.settings import StoreSettings

log = logging.getLogger(__name__)

# Partitions are made days ahead, so hourly is plenty (s).
MAINTENANCE_EVERY_S = 3600.0


async def maintain_storage(engine: Engine, store: StoreSettings) -> None:
    """Run the maintenance now and then every `MAINTENANCE_EVERY_S`, forever; a failure waits for the next."""
    while True:
        try:
            await asyncio.to_thread(partitions.run_maintenance, engine, store, datetime.now(UTC))
        except Exception:
            log.exception("storage maintenance failed; retrying in an hour")
        await asyncio.sleep(MAINTENANCE_EVERY_S)
