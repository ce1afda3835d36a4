"""Open-loop pacing: events follow a fixed schedule whatever the server does.

Devices do not slow down because Outpost is slow, so the generator must not either (a closed loop would hide
overload, the "coordinated omission" trap). The schedule is absolute: a tick that comes late releases every
event that fell due meanwhile, and `behind_s` says how far the generator itself lagged.
"""

from __future__ import annotations

import math


class Pacer:
    """`rate_per_s` events spread evenly from `start_s`, at most `limit` of them."""

    def __init__(self, rate_per_s: float, start_s: float, limit: int) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be > 0, got {rate_per_s!r}")
        self.rate_per_s = rate_per_s
        self.start_s = start_s
        self.limit = max(0, limit)
        self.issued = 0
        # The largest gap seen between an event's scheduled time and its release (s): generator lag.
        self.behind_s = 0.0

    @property
    def done(self) -> bool:
        """Whether every event has been released."""
        return self.issued >= self.limit

    def due(self, now_s: float) -> int:
        """How many events to release now (and mark them released)."""
        target = min(self.limit, math.floor((now_s - self.start_s) * self.rate_per_s + 1e-9) + 1)
        count = max(0, target - self.issued)
        if count:
            first_due_s = self.start_s + self.issued / self.rate_per_s
            self.behind_s = max(self.behind_s, now_s - first_due_s)
            self.issued += count
        return count

    def next_due_s(self) -> float:
        """When the next event falls due (inf once done)."""
        if self.done:
            return math.inf
        return self.start_s + self.issued / self.rate_per_s
