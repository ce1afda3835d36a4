"""The synthetic fleet the HTTP design comparison serves, and the fix stream that moves it.

Every design starts from the same units (`Fleet.generate`: ids, San Francisco positions, statuses) and is fed
the same stream (`Walk`: batches of random walks every BATCH_INTERVAL_S, seeded). The feeder logs each batch
with the monotonic time just before it was sent or written (`FixLog`), which is what the answer checker
(benchmarks/truth.py) replays to know where every unit was when a request was asked. CLOCK_MONOTONIC is one
clock for every process on the machine, so the log and the load generator's times compare directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# San Francisco and its near surroundings (lon, lat order, as everywhere in Outpost).
WEST, SOUTH, EAST, NORTH = -122.52, 37.70, -122.35, 37.82
STATUSES = ("available", "busy", "en_route", "on_scene", "assigned")
STATUS_WEIGHTS = (0.6, 0.1, 0.1, 0.1, 0.1)
KINDS = ("police", "auxiliary", "vehicle")
BATCH_INTERVAL_S = 0.05
# One step of a walk: up to this many degrees in lon and in lat (~27 m by ~33 m here).
STEP_DEG = 3e-4


@dataclass(frozen=True)
class Fleet:
    """The units every design starts from: parallel arrays, index i is unit `ids[i]`."""

    ids: list[str]
    lons: np.ndarray
    lats: np.ndarray
    status_codes: np.ndarray  # index into STATUSES
    kind_codes: np.ndarray  # index into KINDS

    @classmethod
    def generate(cls, n: int, seed: int = 42) -> Fleet:
        """n units spread uniformly over the city, 60 % available."""
        rng = np.random.default_rng(seed)
        return cls(
            ids=[f"b{i:07d}" for i in range(n)],
            lons=rng.uniform(WEST, EAST, n),
            lats=rng.uniform(SOUTH, NORTH, n),
            status_codes=rng.choice(len(STATUSES), n, p=STATUS_WEIGHTS).astype(np.int8),
            kind_codes=rng.integers(0, len(KINDS), n).astype(np.int8),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def status(self, i: int) -> str:
        """Unit i's status (the run never changes one)."""
        return STATUSES[int(self.status_codes[i])]

    def kind(self, i: int) -> str:
        """Unit i's kind."""
        return KINDS[int(self.kind_codes[i])]


class Walk:
    """The fix stream: each batch moves distinct random units one step, clipped to the city."""

    def __init__(self, fleet: Fleet, seed: int = 1) -> None:
        self.rng = np.random.default_rng(seed)
        self.lons = fleet.lons.copy()
        self.lats = fleet.lats.copy()

    def batch(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(unit indexes, new lons, new lats) of the next batch; a unit appears at most once in a batch, so
        every store applies the batch in any order and ends in the same state."""
        idx = np.unique(self.rng.integers(0, len(self.lons), size))
        step = self.rng.uniform(-STEP_DEG, STEP_DEG, (2, len(idx)))
        lons = np.clip(self.lons[idx] + step[0], WEST, EAST)
        lats = np.clip(self.lats[idx] + step[1], SOUTH, NORTH)
        self.lons[idx], self.lats[idx] = lons, lats
        return idx, lons, lats


class FixLog:
    """Every batch the feeder sent, with the time it started sending it (ns, CLOCK_MONOTONIC)."""

    def __init__(self) -> None:
        self._t: list[np.ndarray] = []
        self._idx: list[np.ndarray] = []
        self._lon: list[np.ndarray] = []
        self._lat: list[np.ndarray] = []

    def add(self, t_ns: int, idx: np.ndarray, lons: np.ndarray, lats: np.ndarray) -> None:
        """Log one batch."""
        self._t.append(np.full(len(idx), t_ns, dtype=np.int64))
        self._idx.append(idx.astype(np.int64))
        self._lon.append(lons)
        self._lat.append(lats)

    def save(self, path: Path) -> None:
        """Write the log as one .npz (t_ns, idx, lon, lat; one row per fix, in sending order)."""
        cat = lambda parts, dtype: np.concatenate(parts) if parts else np.empty(0, dtype)  # noqa: E731
        np.savez(
            path,
            t_ns=cat(self._t, np.int64),
            idx=cat(self._idx, np.int64),
            lon=cat(self._lon, np.float64),
            lat=cat(self._lat, np.float64),
        )


@dataclass(frozen=True)
class LoggedFixes:
    """A FixLog read back: one row per fix, in sending order (so t_ns is non-decreasing)."""

    t_ns: np.ndarray
    idx: np.ndarray
    lon: np.ndarray
    lat: np.ndarray

    @classmethod
    def load(cls, path: Path) -> LoggedFixes:
        """Read a log written by FixLog.save."""
        with np.load(path) as data:
            return cls(data["t_ns"], data["idx"], data["lon"], data["lat"])
