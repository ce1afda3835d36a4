"""What every fleet source produces: samples of a device's state at a simulated time, and a schedule."""

from __future__ import annotations

import heapq
from typing import NamedTuple, Protocol


class Sample(NamedTuple):
    """A device's position at simulated second `sim_s` (None: the source does not know that quantity)."""

    device_id: str
    sim_s: float
    lon: float
    lat: float
    speed_mps: float | None = None
    heading_deg: float | None = None
    acc_m: float | None = None
    battery_pct: float | None = None


class Source(Protocol):
    """A fleet: samples in simulated-time order."""

    def next_due_s(self) -> float | None:
        """Simulated time of the next sample; None when the source is exhausted."""
        ...

    def due(self, sim_s: float) -> list[Sample]:
        """Every sample due at or before `sim_s`, in time order."""
        ...


class Schedule:
    """When each of `n` devices reports next: every `interval_s` simulated seconds, staggered."""

    def __init__(self, n: int, interval_s: float, offsets_s: list[float]) -> None:
        """`offsets_s[i]`: device i's first report, in [0, interval_s) so the load is spread evenly."""
        self.interval_s = interval_s
        self._heap = [(offsets_s[i], i) for i in range(n)]
        heapq.heapify(self._heap)

    def next_due_s(self) -> float | None:
        """Time of the earliest pending report."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, sim_s: float) -> list[tuple[float, int]]:
        """(time, device index) of the reports due by `sim_s`, each rescheduled one interval later."""
        out: list[tuple[float, int]] = []
        heap = self._heap
        while heap and heap[0][0] <= sim_s:
            at_s, i = heap[0]
            heapq.heapreplace(heap, (at_s + self.interval_s, i))
            out.append((at_s, i))
        return out
