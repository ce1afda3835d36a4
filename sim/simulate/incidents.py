"""Calls for service at the places and times of real SFPD incidents, shifted to now and accelerated.

The shipped sample (sim/data/sf_incidents_2008-05-30.csv.gz: Friday 30 May 2008 inside the road graph's
box) is replayed as a feed: an incident that happened `d` seconds after the sample's start is due
`d / speedup` seconds after the feed starts. One incident recorded as several rows (one per offence, same
time and place) becomes one call. When the day is over the feed starts it again (unless `repeat=False`).
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sim.simulate.roads import DATA_DIR

DEFAULT_INCIDENTS_PATH = DATA_DIR / "sf_incidents_2008-05-30.csv.gz"
INCIDENT_COLUMNS = ("ts", "lat", "lon", "category", "descript", "pd_district", "address")
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class IncidentRecord:
    """One historical incident (offences at the same time and place merged)."""

    source_ts: datetime
    lon: float
    lat: float
    category: str
    descript: str
    pd_district: str
    address: str


@dataclass(frozen=True)
class Call:
    """A call for service in the present: a historical incident and when it is due now (UTC)."""

    ref: str
    due: datetime
    incident: IncidentRecord


def _open_text(path: Path) -> Iterator[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:  # type: ignore[operator]
        yield from csv.DictReader(f)


def load_incidents(path: Path = DEFAULT_INCIDENTS_PATH) -> list[IncidentRecord]:
    """Read an incident CSV (columns INCIDENT_COLUMNS), merge multi-offence rows, sort by time."""
    merged: dict[tuple[str, str, str], IncidentRecord] = {}
    for row in _open_text(path):
        key = (row["ts"], row["lat"], row["lon"])
        if key in merged:
            first = merged[key]
            merged[key] = IncidentRecord(
                first.source_ts,
                first.lon,
                first.lat,
                first.category,
                f"{first.descript}; {row['descript']}",
                first.pd_district,
                first.address,
            )
            continue
        merged[key] = IncidentRecord(
            source_ts=datetime.fromisoformat(row["ts"].replace("Z", "+00:00")),
            lon=float(row["lon"]),
            lat=float(row["lat"]),
            category=row["category"],
            descript=row["descript"],
            pd_district=row["pd_district"],
            address=row["address"],
        )
    return sorted(merged.values(), key=lambda r: r.source_ts)


class IncidentFeed:
    """The incidents as calls due from `start` on, `speedup` times faster than they happened."""

    def __init__(
        self,
        incidents: list[IncidentRecord],
        *,
        start: datetime,
        speedup: float = 1.0,
        source_start: datetime | None = None,
        repeat: bool = True,
    ) -> None:
        """`source_start`: the historical moment mapped to `start` (default: the first incident; a later
        time skips the earlier incidents, e.g. to begin at the evening peak)."""
        if speedup <= 0:
            raise ValueError("speedup must be positive")
        if not incidents:
            raise ValueError("no incidents to replay")
        self.incidents = incidents
        self.start = start
        self.speedup = speedup
        self.source_start = source_start or incidents[0].source_ts
        self.repeat = repeat
        self._pending = self.calls()
        self._next: Call | None = next(self._pending, None)

    def calls(self) -> Iterator[Call]:
        """Every call in due order (endless when repeating)."""
        cycle = 0
        while True:
            for i, incident in enumerate(self.incidents):
                offset = incident.source_ts + cycle * _DAY - self.source_start
                if offset < timedelta(0):
                    continue
                yield Call(
                    f"sfpd-{incident.source_ts:%Y%m%dT%H%M%S}-{i}-c{cycle}",
                    self.start + offset / self.speedup,
                    incident,
                )
            if not self.repeat:
                return
            cycle += 1

    def due(self, now: datetime) -> list[Call]:
        """Calls due at or before `now` that were not returned yet, in order."""
        out: list[Call] = []
        while self._next is not None and self._next.due <= now:
            out.append(self._next)
            self._next = next(self._pending, None)
        return out

    @property
    def next_due(self) -> datetime | None:
        """When the next call is due (None when a non-repeating feed is exhausted)."""
        return self._next.due if self._next else None

    async def follow(
        self,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> AsyncIterator[Call]:
        """Yield each call when it becomes due (clock and sleep injectable)."""
        while self._next is not None:
            wait_s = (self._next.due - now()).total_seconds()
            if wait_s > 0:
                await sleep(wait_s)
                continue
            for call in self.due(now()):
                yield call


def feed_from_now(speedup: float, path: Path = DEFAULT_INCIDENTS_PATH, repeat: bool = True) -> IncidentFeed:
    """The shipped sample as a feed starting now (wall clock)."""
    start = datetime.fromtimestamp(time.time(), UTC)
    return IncidentFeed(load_incidents(path), start=start, speedup=speedup, repeat=repeat)
