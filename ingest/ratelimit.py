"""A token bucket for log lines that a flood of bad input (or a long outage) would otherwise multiply."""

from __future__ import annotations

import time


class RateLimit:
    """`allow()` at most `per_s` times a second on average (bursts of one second's worth)."""

    def __init__(self, per_s: float) -> None:
        self._per_s = per_s
        self._tokens = per_s
        self._at = time.monotonic()

    def allow(self) -> bool:
        """Whether one more may go now (and count it)."""
        now = time.monotonic()
        self._tokens = min(self._per_s, self._tokens + (now - self._at) * self._per_s)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
