"""The garbage collector's policy for a process holding the live picture: short pauses, bounded memory.

Every move leaves new GC-tracked objects in the picture (the unit's fused UnitPosition and the index's
entry: NamedTuples, which CPython never untracks), ~3,000 a second at 2,000 fixes/s. With CPython's default
thresholds (700, 10, 10) they reached the oldest generation, and a full collection, due whenever it had
grown by a quarter, walked them all: 121 ms at 125k objects after 45 s of ingest (bench_http_nearest at
100k units: o400 p99 78 ms); generation-1 collections walked ~15k of them, 4-14 ms each.

The policy: the collector runs generation 0 by itself (~0.6 ms); what survives it is collected once more,
fully, by `freeze_survivors` every GC_FREEZE_INTERVAL_S, then frozen (moved to the permanent generation,
which no collection walks), so no pause walks more than what survived one interval: longest pause
5.6-7.6 ms over whole benchmark runs (it was 121 ms). The price, and its bound: `reclaim_frozen` every
GC_RECLAIM_INTERVAL_S (see there). Python 3.14's incremental collector would make all this unnecessary.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger(__name__)

GC_THRESHOLD0 = 700  # CPython's default allocations between generation-0 collections
GC_NEVER = 1_000_000_000  # generation-1 and -2 thresholds: collected by `freeze_survivors` only
# 0.5 s: ~1,500-2,000 survivors at 2,000 fixes/s, a 1.4-1.8 ms pause on average (bench_http_nearest; it was
# 8-13 ms every 2 s). Lowering it shortens the pause and freezes more objects while still in use (below).
GC_FREEZE_INTERVAL_S = 0.5
# Hourly: the one long pause (a walk of the whole heap, ~0.3 s at 100k units, milliseconds at a few
# thousand), which bounds what freezing keeps to about an hour's worth (~3 MB measured at 100 req/s).
GC_RECLAIM_INTERVAL_S = 3600.0


def freeze_survivors() -> int:
    """Collect everything not frozen (what survived since the last call), then freeze the survivors.

    The collection frees what became cyclic garbage since the last call. The price of freezing: an object
    frozen while in use (an open connection, a pending task) that later dies in a reference cycle is not
    reclaimed until `reclaim_frozen`; acyclic objects, the picture's, are freed by reference counting as
    usual. bench_http_nearest found 182 such objects after 45 s of freezing every 0.5 s.
    (No gauge of gc.get_freeze_count(): it counts the permanent generation one by one, 22 ms at 100k units.)
    Returns the objects collected.
    """
    collected = gc.collect()
    gc.freeze()
    return collected


def reclaim_frozen() -> int:
    """Unfreeze everything, collect it all and freeze the survivors again: frees the cyclic garbage that
    freezing kept. One pause the length of a walk over the whole heap. Returns the objects collected."""
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    return collected


class GcPolicy:
    """Apply the collector policy above while at least one app runs; after the last, restore the thresholds
    and unfreeze, so the collector sees everything again."""

    _users = 0
    _saved: tuple[int, int, int] = gc.get_threshold()

    @classmethod
    async def run(
        cls, interval_s: float = GC_FREEZE_INTERVAL_S, reclaim_every_s: float = GC_RECLAIM_INTERVAL_S
    ) -> None:
        """`freeze_survivors` every `interval_s`, `reclaim_frozen` every `reclaim_every_s` (wall-clock:
        this is about the process), until cancelled."""
        if cls._users == 0:
            cls._saved = gc.get_threshold()
        cls._users += 1
        gc.set_threshold(GC_THRESHOLD0, GC_NEVER, GC_NEVER)
        reclaim_at = time.monotonic() + reclaim_every_s
        try:
            while True:
                await asyncio.sleep(interval_s)
                if time.monotonic() < reclaim_at:
                    freeze_survivors()
                    continue
                started = time.perf_counter()
                collected = reclaim_frozen()
                pause_ms = round((time.perf_counter() - started) * 1e3, 1)
                reclaim_at = time.monotonic() + reclaim_every_s
                log.info(
                    "garbage collector: frozen objects reclaimed",
                    extra={"collected": collected, "pause_ms": pause_ms},
                )
        finally:
            cls._users -= 1
            if cls._users == 0:
                gc.set_threshold(*cls._saved)
                gc.unfreeze()
