"""Named one-shot timers on an injected `Clock`: offer timeouts and SLA deadlines.

One task per armed timer (there are only as many as pending offers plus open incidents). Re-arming a key
replaces its timer; cancelling a key stops it unless it is already firing. A firing handler re-checks the
database under the incident's lock, so a timer that loses a race with an answer does nothing. Deadlines are
stored in the database, so `IncidentService.start` re-arms them after a restart.

A handler that fails (typically the database is briefly away) is retried with exponential backoff, capped
per wait and bounded in attempts, each retry logged; handlers re-read the database, so a retry is safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from dispatch.clock import Clock

log = logging.getLogger(__name__)

Fire = Callable[[], Awaitable[None]]

# First retry wait after a failed handler (s); doubled per failure up to RETRY_MAX_S.
RETRY_FIRST_S = 1.0
# Longest wait between retries (s): higher means less load on a struggling database, later recovery.
RETRY_MAX_S = 60.0
# Retries before giving up (about 25 min with the defaults); `IncidentService.start` re-arms after that.
RETRY_ATTEMPTS = 30


class Timers:
    """Timers keyed by name (e.g. "offer:<id>", "sla:<incident id>")."""

    def __init__(
        self,
        clock: Clock,
        *,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
        retry_attempts: int = RETRY_ATTEMPTS,
    ) -> None:
        self._clock = clock
        self._retry_first_s = retry_first_s
        self._retry_max_s = retry_max_s
        self._retry_attempts = retry_attempts
        self._closed = False
        self._armed: dict[str, asyncio.Task[None]] = {}
        self._due_s: dict[str, float] = {}
        self._firing: set[asyncio.Task[None]] = set()

    def __contains__(self, key: object) -> bool:
        return key in self._armed

    @property
    def armed(self) -> list[str]:
        """Keys of the timers waiting to fire."""
        return sorted(self._armed)

    @property
    def next_due_s(self) -> float | None:
        """When the earliest armed timer fires (epoch s), or None (tests step a ManualClock with it)."""
        return min(self._due_s.values(), default=None)

    def arm(self, key: str, due_at_s: float, fire: Fire) -> None:
        """Run `fire` once the clock reaches `due_at_s` (at once if it already has); replaces `key`."""
        self._arm(key, due_at_s, fire, failures=0)

    def _arm(self, key: str, due_at_s: float, fire: Fire, failures: int) -> None:
        self.cancel(key)
        task = asyncio.get_running_loop().create_task(self._run(key, due_at_s, fire, failures), name=key)
        self._armed[key] = task
        self._due_s[key] = due_at_s

    def cancel(self, key: str) -> None:
        """Stop the timer `key` if it has not started firing."""
        self._due_s.pop(key, None)
        task = self._armed.pop(key, None)
        if task is not None:
            task.cancel()

    async def _run(self, key: str, due_at_s: float, fire: Fire, failures: int) -> None:
        delay_s = due_at_s - self._clock.now()
        if delay_s > 0:
            await self._clock.sleep(delay_s)
        me = asyncio.current_task()
        assert me is not None
        if self._armed.get(key) is me:
            del self._armed[key]
            del self._due_s[key]
        self._firing.add(me)  # type: ignore[arg-type]
        try:
            await fire()
        except Exception:
            self._retry(key, fire, failures + 1)
        finally:
            self._firing.discard(me)  # type: ignore[arg-type]

    def _retry(self, key: str, fire: Fire, failures: int) -> None:
        """Re-arm a failed timer after a backoff, unless it was re-armed meanwhile or retries ran out."""
        if self._closed or key in self._armed:  # shutting down, or a newer deadline replaced this one
            log.exception("timer %s failed (not retried: %s)", key, "closed" if self._closed else "re-armed")
            return
        if failures > self._retry_attempts:
            log.exception("timer %s failed %d times; giving up until the next start", key, failures)
            return
        wait_s = min(self._retry_max_s, self._retry_first_s * 2 ** (failures - 1))
        log.warning(
            "timer %s failed (attempt %d of %d); retrying in %g s",
            key,
            failures,
            self._retry_attempts + 1,
            wait_s,
            exc_info=True,
        )
        self._arm(key, self._clock.now() + wait_s, fire, failures)

    async def settle(self) -> None:
        """Wait until no timer is firing (tests call it after moving a ManualClock)."""
        while True:
            for _ in range(5):
                await asyncio.sleep(0)
            if not self._firing:
                return
            await asyncio.gather(*self._firing, return_exceptions=True)

    async def close(self) -> None:
        """Cancel every timer and wait for firing ones to finish (failing ones are not retried)."""
        self._closed = True
        for key in list(self._armed):
            self.cancel(key)
        await self.settle()
