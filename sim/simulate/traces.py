"""Replay recorded GPS traces (Cabspotting CSV: object_id,ts_iso8601_utc,lat,lon; gzip or plain).

The file must be sorted by time (the shared San Francisco files are). Simulated time 0 is the first fix in
the file; a fix recorded `d` seconds later is due at simulated second `d`. Speed and heading are derived
from each object's previous fix. The traces are research-use data: they are read from where the user
points, never copied into this repository.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

from geo import haversine_m, initial_bearing_deg
from sim.simulate.sample import Sample

TRACE_COLUMNS = ("object_id", "ts_iso8601_utc", "lat", "lon")


def _open(path: Path) -> IO[str]:
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    if gzipped:
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _epoch_s(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class TraceReplay:
    """A `Source` reading a trace file lazily; at most `max_devices` objects (the first ones seen)."""

    def __init__(self, path: Path, *, max_devices: int = 0, prefix: str = "cab") -> None:
        """`max_devices` 0: every object in the file."""
        self.path = path
        self.max_devices = max_devices
        self.prefix = prefix
        self.devices: dict[str, str] = {}  # object id -> device id
        self._last: dict[str, tuple[float, float, float]] = {}  # device id -> (t, lon, lat)
        self._rows = self._read()
        self._t0: float | None = None
        self._head: tuple[str, float, float, float] | None = None
        self._advance()

    def _read(self) -> Iterator[tuple[str, float, float, float]]:
        with _open(self.path) as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or tuple(h.strip() for h in header[:4]) != TRACE_COLUMNS:
                raise ValueError(f"{self.path}: expected a CSV with header {','.join(TRACE_COLUMNS)}")
            for row in reader:
                device = self._device(row[0])
                if device is not None:
                    yield device, _epoch_s(row[1]), float(row[3]), float(row[2])

    def _device(self, object_id: str) -> str | None:
        device = self.devices.get(object_id)
        if device is None and (not self.max_devices or len(self.devices) < self.max_devices):
            device = self.devices[object_id] = f"{self.prefix}-{object_id}"
        return device

    def _advance(self) -> None:
        self._head = next(self._rows, None)
        if self._head is not None and self._t0 is None:
            self._t0 = self._head[1]

    def next_due_s(self) -> float | None:
        """Simulated time of the next recorded fix; None at the end of the file."""
        if self._head is None or self._t0 is None:
            return None
        return self._head[1] - self._t0

    def due(self, sim_s: float) -> list[Sample]:
        """The recorded fixes up to simulated second `sim_s`."""
        out: list[Sample] = []
        while self._head is not None and self._t0 is not None and self._head[1] - self._t0 <= sim_s:
            device, t, lon, lat = self._head
            out.append(self._sample(device, t, lon, lat))
            self._advance()
        return out

    def _sample(self, device: str, t: float, lon: float, lat: float) -> Sample:
        speed_mps = heading_deg = None
        prev = self._last.get(device)
        if prev is not None and t > prev[0]:
            moved_m = haversine_m(prev[1], prev[2], lon, lat)
            speed_mps = round(moved_m / (t - prev[0]), 2)
            heading_deg = round(initial_bearing_deg(prev[1], prev[2], lon, lat), 1) if moved_m > 1 else None
        self._last[device] = (t, lon, lat)
        assert self._t0 is not None
        return Sample(device, t - self._t0, lon, lat, speed_mps, heading_deg)
