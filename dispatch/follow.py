"""The `api` role's live picture: it follows the fixes the `ingest` role stores.

Every poll reads the newest fix of each device stored with a recent device time: cheap, since that is the
newest partition and its (device_id, ts) index. Two kinds of fix carry older device times and would slip
past it: those of a device whose clock lags, and those the ingest spool drains after a database outage.
A wider sweep, less often, therefore reads the newest usable fix of each device over the whole dispatch
window (`max_fix_age_s`: an older unit is stale for nearest anyway). The fleet never moves a unit
backwards, so a fix read twice changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy import Engine

from dispatch.clock import Clock
from dispatch.fleet import Fleet
from store.fixes import latest_fixes

log = logging.getLogger(__name__)


async def follow_database(
    engine: Engine,
    fleet: Fleet,
    clock: Clock,
    *,
    max_fix_age_s: float,
    poll_s: float = 1.0,
    recent_s: float = 10.0,
    sweep_every_s: float = 30.0,
) -> None:
    """Apply the newest stored fixes to `fleet` every `poll_s`, sweeping the dispatch window every
    `sweep_every_s` (the first poll is a sweep). Failures are logged and the next poll tries again."""
    next_sweep_s = clock.now()
    while True:
        now_s = clock.now()
        sweep = now_s >= next_sweep_s
        since = datetime.fromtimestamp(now_s - (max_fix_age_s if sweep else recent_s), UTC)
        try:
            fixes = await asyncio.to_thread(latest_fixes, engine, since, usable_only=sweep)
            await fleet.apply_gradually(fixes)
        except Exception as exc:  # keep following: the next poll may succeed (at most one warning a poll)
            log.warning("following the database failed: %s: %s", type(exc).__name__, exc)
        else:
            if sweep:
                next_sweep_s = now_s + sweep_every_s
        await clock.sleep(poll_s)
