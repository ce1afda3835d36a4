"""Reading tracks back, on both stores: pages in (ts, device) order adding up to the range exactly once,
the one-read path giving the same points, and fixes of other units and outside the range left out."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from geo.track import TrackPoint
from schemas.fix import Fix
from store.engine import open_engine
from store.fixes import FixWriter
from store.tracks import Cursor, TrackQuery, track_page, track_points

T0 = datetime(2024, 5, 30, 17, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Engine]:
    engine = open_engine(store_url, pool_size=2)
    yield engine
    engine.dispose()


def fixes(device: str, unit: str | None, n: int, *, step_us: int = 1_000_250) -> list[Fix]:
    """`n` fixes of `device`, microsecond-precise times (so rounding of times would show)."""
    return [
        Fix(
            device_id=device,
            unit_id=unit,
            ts=T0 + timedelta(microseconds=i * step_us),
            received_at=T0,
            lon=-122.4 + i * 1e-5,
            lat=37.7,
            accuracy_m=5.0 + i % 3,
            flags=i % 2,
        )
        for i in range(n)
    ]


def test_pages_add_up_to_the_range_once_in_order_and_the_one_read_agrees(store: Engine) -> None:
    cam, phone = fixes("cam", "u1", 230), fixes("phone", "u1", 230, step_us=1_000_000)
    FixWriter(store).write([*cam, *phone, *fixes("other", "u2", 50)])
    query = TrackQuery(T0, T0 + timedelta(seconds=200), unit_id="u1")
    paged: list[TrackPoint] = []
    after: Cursor | None = None
    while True:
        page, after = track_page(store, query, after, 37)
        paged.extend(page)
        if after is None:
            break
    expected = sorted(
        (f.ts.timestamp(), f.device_id) for f in (*cam, *phone) if f.ts < T0 + timedelta(seconds=200)
    )
    assert [(p.ts_s, p.device_id) for p in paged] == expected  # no other unit, none past `to`, no repeat
    assert track_points(store, query, 10_000) == paged  # the same points, times to the microsecond
    assert len(track_points(store, query, 5)) == 6  # one over the limit, so the caller can tell


def test_a_device_track_and_an_empty_range(store: Engine) -> None:
    FixWriter(store).write(fixes("cam", "u1", 10))
    one = track_points(store, TrackQuery(T0, T0 + timedelta(hours=1), device_id="cam"), 100)
    assert [p.accuracy_m for p in one] == [5.0 + i % 3 for i in range(10)] and one[1].flags == 1
    later = TrackQuery(T0 + timedelta(hours=1), T0 + timedelta(hours=2), device_id="cam")
    assert track_points(store, later, 100) == [] and track_page(store, later, None, 10) == ([], None)
