"""The one retry policy every reconnect and retry loop uses: exponential backoff, reset by a success.

Pure arithmetic (no sleeping here), shared by the gateway's MQTT loops, the spool's drainer and the
dispatcher's timers, so that "how long after the n-th failure" has one answer.
"""

from __future__ import annotations


class Backoff:
    """Delays from `min_s`, growing by `factor` with each failure up to `max_s`, reset by a success."""

    def __init__(self, min_s: float, max_s: float, factor: float = 2.0) -> None:
        if not 0 < min_s <= max_s or factor < 1:
            raise ValueError(
                f"backoff needs 0 < min_s <= max_s and factor >= 1, not {min_s}, {max_s}, {factor}"
            )
        self.min_s, self.max_s, self.factor = min_s, max_s, factor
        self._next_s = min_s

    @property
    def next_s(self) -> float:
        """The delay the next failure will get."""
        return self._next_s

    def failed(self) -> float:
        """The delay to wait before trying again after a failure; the one after it is longer."""
        delay_s = self._next_s
        self._next_s = min(self._next_s * self.factor, self.max_s)
        return delay_s

    def succeeded(self) -> None:
        """A success: the next failure waits `min_s` again."""
        self._next_s = self.min_s
