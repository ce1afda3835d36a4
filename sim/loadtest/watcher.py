"""The commit watcher: polls the store while the run goes on, to time publish → stored from outside.

What it measures: for each valid fix, the time from its publish to the end of the first poll whose result
contains it. That is an upper bound of publish → commit, too high by at most one poll interval plus the poll
query's own duration; `received_at` (Outpost's receive stamp, see oracle.py) gives the matching lower bound.
Fixes the watcher has not seen after `give_up_s` stop widening its query window; the final oracle read
records them at the time it sees them (still an upper bound).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from datetime import UTC, datetime

from sim.loadtest.crew import Crew
from sim.loadtest.store import RunStore

_NAME_LEN = 7  # d000001 / p000001


class CommitWatcher:
    """Polls `fixes` for the run's newest rows every `interval_s` until stopped."""

    def __init__(
        self,
        crew: Crew,
        store: RunStore,
        interval_s: float = 0.1,
        give_up_s: float = 10.0,
    ) -> None:
        ledger = crew.ledger
        self.ledger, self.recorder, self.clock, self.sleep = ledger, crew.recorder, crew.clock, crew.sleep
        self.store = store
        self.interval_s = interval_s
        self.give_up_s = give_up_s
        self.polls = 0
        self.gave_up = 0
        self.stopping = False
        if ledger.recent is None:
            ledger.recent = deque()

    async def run(self) -> None:
        """Poll until `stopping` is set and nothing is left to look for."""
        while True:
            since = self._window_start(self.clock())
            if since is None:
                if self.stopping:
                    return
            else:
                rows = await asyncio.to_thread(self.store.fixes_since, since)
                self.observe(rows, self.clock())
            await self.sleep(self.interval_s)

    def _window_start(self, now_s: float) -> datetime | None:
        recent = self.ledger.recent
        assert recent is not None
        while recent:
            ts_ms, name, seq = recent[0]
            log = self.ledger.devices[name]
            if log.watched[seq]:
                recent.popleft()
            elif now_s - log.published_s[seq - 1] > self.give_up_s:
                recent.popleft()
                self.gave_up += 1
            else:
                return datetime.fromtimestamp((ts_ms - 1) / 1000.0, UTC)
        return None

    def observe(self, rows: list[tuple[str, int | None, datetime]], seen_s: float) -> int:
        """Mark the rows of one poll as stored at `seen_s`; returns how many were new."""
        self.polls += 1
        new = 0
        for device_id, seq, ts in rows:
            name = device_id[-_NAME_LEN:]
            log = self.ledger.devices.get(name)
            if seq is None:
                seq = self.ledger.seq_by_ts_s.get((name, math.floor(ts.timestamp())))
            if log is None or seq is None or not 1 <= seq <= log.last_seq or log.watched[seq]:
                continue
            published_s = log.published_s[seq - 1]
            if math.isnan(published_s):  # a bad message that was stored: the oracle reports it
                continue
            log.watched[seq] = 1
            new += 1
            self.recorder.latency("publish_to_stored", seen_s, (seen_s - published_s) * 1000.0)
            self.recorder.count("stored", seen_s)
        return new
