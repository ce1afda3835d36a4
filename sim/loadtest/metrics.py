"""Latencies (HDR histograms, in µs internally, reported in ms) and per-second series for the chart."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000  # an hour: anything slower is recorded as an hour (and is a finding anyway)
_SIGNIFICANT_FIGURES = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
# Latencies kept per run second for the chart's per-second percentiles: a uniform sample (reservoir) of at
# most this many, so memory stays bounded at any rate. The HDR histograms above keep every value.
SAMPLES_PER_SECOND = 2000


class Recorder:
    """Everything a run measures over time. Times are wall-clock epoch seconds; `start_s` is second 0."""

    def __init__(self, start_s: float) -> None:
        self.start_s = start_s
        self.histograms: dict[str, HdrHistogram] = {}
        self.clamped: dict[str, int] = defaultdict(int)
        # name → second of the run → a sample of the latencies (ms) observed in that second.
        self.per_second_ms: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        self._seen: dict[tuple[str, int], int] = defaultdict(int)
        self._rng = random.Random(0)
        # name → second of the run → count
        self.counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    def second(self, at_s: float) -> int:
        """The run second `at_s` falls in (clamped at 0)."""
        return max(0, math.floor(at_s - self.start_s))

    def latency(self, name: str, at_s: float, value_ms: float) -> None:
        """Record one latency of `name`, observed at wall time `at_s`."""
        hist = self.histograms.get(name)
        if hist is None:
            hist = self.histograms[name] = HdrHistogram(_LOWEST_US, _HIGHEST_US, _SIGNIFICANT_FIGURES)
        value_us = max(_LOWEST_US, round(value_ms * 1000.0))
        if value_us > _HIGHEST_US:
            self.clamped[name] += 1
            value_us = _HIGHEST_US
        hist.record_value(value_us)
        second = self.second(at_s)
        sample = self.per_second_ms[name][second]
        seen = self._seen[(name, second)] = self._seen[(name, second)] + 1
        if len(sample) < SAMPLES_PER_SECOND:
            sample.append(value_ms)
        else:
            slot = self._rng.randrange(seen)  # reservoir sampling (Algorithm R): every value equally likely
            if slot < SAMPLES_PER_SECOND:
                sample[slot] = value_ms

    def count(self, name: str, at_s: float, n: int = 1) -> None:
        """Add `n` events of `name` at wall time `at_s`."""
        self.counts[name][self.second(at_s)] += n

    def total(self, name: str) -> int:
        """All events of `name` so far."""
        return sum(self.counts[name].values()) if name in self.counts else 0

    def summary(self, name: str) -> dict[str, Any]:
        """count, p50/p90/p99/p99.9/max/mean (ms) and the encoded HDR histogram (to merge or replot)."""
        hist = self.histograms.get(name)
        if hist is None or hist.get_total_count() == 0:
            return {"count": 0}
        out: dict[str, Any] = {"count": int(hist.get_total_count())}
        for p in PERCENTILES:
            key = f"p{p:g}".replace(".", "_")
            out[f"{key}_ms"] = hist.get_value_at_percentile(p) / 1000.0
        out["max_ms"] = hist.get_max_value() / 1000.0
        out["mean_ms"] = round(hist.get_mean_value() / 1000.0, 3)
        out["clamped"] = self.clamped.get(name, 0)
        out["hdr"] = hist.encode().decode("ascii")
        return out

    def series(self, name: str, seconds: int) -> list[int]:
        """Counts of `name` for seconds 0 .. seconds-1."""
        by_s = self.counts.get(name, {})
        return [by_s.get(s, 0) for s in range(seconds)]

    def percentile_series(self, name: str, p: float, seconds: int) -> list[float | None]:
        """The p-th percentile (ms) of `name` in each second (None where nothing was observed)."""
        by_s = self.per_second_ms.get(name, {})
        out: list[float | None] = []
        for s in range(seconds):
            values = by_s.get(s)
            out.append(float(np.percentile(values, p)) if values else None)
        return out

    @property
    def seconds(self) -> int:
        """How many seconds the recorded data spans."""
        last = [max(d) for d in self.counts.values() if d]
        last += [max(d) for d in self.per_second_ms.values() if d]
        return (max(last) + 1) if last else 0
