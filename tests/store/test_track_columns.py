"""The columnar read of a one-device track (PostgreSQL): simplified, it keeps exactly the points the general
path keeps, times to the microsecond; several devices, SQLite or too many fixes send the caller back."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from geo.track import simplify, simplify_indices
from schemas.fix import Fix
from store.engine import open_engine
from store.fixes import FixWriter
from store.tracks import TrackColumns, TrackQuery, points_of, track_columns, track_points
from tests.store.test_tracks import T0, fixes


@pytest.fixture
def store(store_url: str) -> Iterator[Engine]:
    engine = open_engine(store_url, pool_size=2)
    yield engine
    engine.dispose()


def wiggle(device: str, unit: str, n: int) -> list[Fix]:
    """A track that bends (so a simplification keeps some points), microsecond-precise times."""
    return [
        Fix(
            device_id=device,
            unit_id=unit,
            ts=T0 + timedelta(microseconds=i * 1_000_250),
            received_at=T0,
            lon=-122.4 + i * 1e-4,
            lat=37.7 + 1e-3 * math.sin(i / 7),
            accuracy_m=5.0,
            speed_mps=3.5,
            flags=i % 2,
        )
        for i in range(n)
    ]


def test_the_columns_simplify_to_the_points_the_general_path_keeps(store: Engine) -> None:
    FixWriter(store).write([*wiggle("cam", "u1", 500), *fixes("other", "u2", 50)])
    query = TrackQuery(T0, T0 + timedelta(seconds=400), unit_id="u1")
    columns = track_columns(store, query, 10_000)
    if store.dialect.name != "postgresql":
        assert columns is None  # SQLite: the general path
        return
    assert isinstance(columns, TrackColumns) and columns.device_id == "cam" and len(columns.lons) == 400
    kept = points_of(store, columns, simplify_indices(columns.lons, columns.lats, 5.0))
    expected = simplify(track_points(store, query, 10_000), 5.0)
    assert kept == expected and 2 < len(kept) < 400
    assert track_columns(store, query, 399) == 400  # over the limit: the count, so the caller can say 422


def test_several_devices_or_none_go_the_general_way(pg_engine: Engine) -> None:
    FixWriter(pg_engine).write([*wiggle("cam", "u1", 20), *wiggle("phone", "u1", 20)])
    assert track_columns(pg_engine, TrackQuery(T0, T0 + timedelta(hours=1), unit_id="u1"), 100) is None
    later = TrackQuery(T0 + timedelta(hours=1), T0 + timedelta(hours=2), unit_id="u1")
    assert track_columns(pg_engine, later, 100) is None
