"""One updating terminal line for long-running simulation: devices, sent, acked, rate."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from sim.simulate.run import SimulateStats


class ProgressLine:
    """Rewrites one line (carriage return) on a terminal; on a pipe, writes a line every `pipe_interval_s`."""

    def __init__(
        self,
        stream: TextIO = sys.stderr,
        *,
        interval_s: float = 0.5,
        pipe_interval_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.interval_s = interval_s if self.tty else pipe_interval_s
        self._monotonic = monotonic
        self._start_t = self._last_t = monotonic()
        self._last_sent = 0
        self._rate = 0.0

    def __call__(self, stats: SimulateStats) -> None:
        """Show the counters, at most every interval."""
        now = self._monotonic()
        if now - self._last_t < self.interval_s:
            return
        self._rate = (stats.sent - self._last_sent) / (now - self._last_t)
        self._last_t, self._last_sent = now, stats.sent
        self.stream.write(("\r" if self.tty else "") + self.render(stats) + ("" if self.tty else "\n"))
        self.stream.flush()

    def render(self, stats: SimulateStats) -> str:
        """The line itself."""
        return (
            f"simulate: {stats.devices:,} devices | {stats.sent:,} sent | {stats.acked:,} acked | "
            f"{self._rate:,.0f} msg/s | {stats.elapsed_s:,.0f} s".ljust(79)
        )

    def close(self, stats: SimulateStats) -> None:
        """Final line (with the average rate) and a newline."""
        self._rate = stats.sent / max(1e-9, self._monotonic() - self._start_t)
        self.stream.write(("\r" if self.tty else "") + self.render(stats) + "\n")
        self.stream.flush()
