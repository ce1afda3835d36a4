"""FixWriter and the reads, against both real stores: idempotent writes, timestamps, latest per device,
dead letters, and the line between "database unavailable" (StoreUnavailable) and a bug (propagates)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from schemas.fix import Fix, FixFlag, RejectedMessage
from store.engine import open_engine
from store.fixes import (
    FixWriter,
    StoreUnavailable,
    count_fixes,
    count_rejected,
    fetch_fixes,
    latest_fixes,
)
from tests.support.services import PgCluster, free_port

T0 = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def fix(device: str, ts: datetime, **kw: Any) -> Fix:
    base: dict[str, Any] = {
        "lon": -122.4 + ts.second / 1000,
        "lat": 37.7,
        "received_at": ts + timedelta(seconds=1),
    }
    base.update(kw)
    return Fix(device_id=device, ts=ts, **base)


@pytest.fixture
def store(store_url: str) -> Iterator[Engine]:
    engine = open_engine(store_url, pool_size=2)
    yield engine
    engine.dispose()


def test_write_is_idempotent_on_device_and_ts(store: Engine) -> None:
    writer = FixWriter(store)
    batch = [fix("a", T0), fix("a", T0 + timedelta(seconds=1)), fix("b", T0)]
    assert writer.write(batch) == 3
    assert writer.write(batch) == 0
    # A replayed buffer overlapping what is stored, with a duplicate inside the batch itself.
    again = [
        fix("a", T0 + timedelta(seconds=1)),
        fix("a", T0 + timedelta(seconds=2)),
        fix("a", T0 + timedelta(seconds=2)),
    ]
    assert writer.write(again) == 1
    assert count_fixes(store) == 4
    assert writer.write([]) == 0


def test_round_trip_keeps_every_field_and_returns_aware_utc(store: Engine) -> None:
    original = fix(
        "dev-1",
        T0,
        unit_id="u-1",
        accuracy_m=5.5,
        speed_mps=12.25,
        heading_deg=270.0,
        altitude_m=31.5,
        battery_pct=88.0,
        seq=2**40,
        flags=int(FixFlag.MOCK | FixFlag.NO_UNIT),
    )
    FixWriter(store).write([original])
    [back] = fetch_fixes(store)
    assert back == original  # values chosen exact in float4, so both stores return them unchanged
    assert back.ts.tzinfo is UTC and back.received_at.tzinfo is UTC


def test_one_instant_is_one_key_whatever_its_time_zone(store: Engine) -> None:
    writer = FixWriter(store)
    paris = timezone(timedelta(hours=2))
    assert writer.write([fix("a", T0.astimezone(paris))]) == 1
    assert writer.write([fix("a", T0)]) == 0
    [back] = fetch_fixes(store)
    assert back.ts == T0 and back.ts.utcoffset() == timedelta(0)


def test_microseconds_order_and_range_queries(store: Engine) -> None:
    writer = FixWriter(store)
    times = [T0 + timedelta(microseconds=us) for us in (999_999, 0, 1, 10, 1_000_000)]
    writer.write([fix("a", t) for t in times])
    assert [f.ts for f in fetch_fixes(store)] == sorted(times)
    window = fetch_fixes(store, start=T0 + timedelta(microseconds=1), end=T0 + timedelta(seconds=1))
    assert [f.ts for f in window] == sorted(times)[1:4]
    assert len(fetch_fixes(store, limit=2)) == 2


def test_fetch_filters_by_device_and_unit(store: Engine) -> None:
    FixWriter(store).write(
        [fix("a", T0, unit_id="u1"), fix("b", T0, unit_id="u2"), fix("c", T0, unit_id="u1")]
    )
    assert [f.device_id for f in fetch_fixes(store, unit_id="u1")] == ["a", "c"]
    assert [f.device_id for f in fetch_fixes(store, device_id="b")] == ["b"]


def test_latest_fixes_per_device_since(store: Engine) -> None:
    writer = FixWriter(store)
    writer.write(
        [
            fix("a", T0),
            fix("a", T0 + timedelta(minutes=1)),
            fix("a", T0 + timedelta(minutes=2), flags=int(FixFlag.LOW_ACCURACY)),
            fix("b", T0 - timedelta(hours=2)),  # too old for `since`
            fix("c", T0 + timedelta(minutes=5), flags=int(FixFlag.IMPOSSIBLE_SPEED)),
        ]
    )
    latest = {f.device_id: f.ts for f in latest_fixes(store, T0 - timedelta(hours=1))}
    assert latest == {"a": T0 + timedelta(minutes=2), "c": T0 + timedelta(minutes=5)}
    usable = {f.device_id: f.ts for f in latest_fixes(store, T0 - timedelta(hours=1), usable_only=True)}
    assert usable == {"a": T0 + timedelta(minutes=1)}


def test_dead_letters_are_bounded_and_counted_per_reason(store: Engine) -> None:
    writer = FixWriter(store)
    writer.write_rejected(
        [
            RejectedMessage(
                received_at=T0,
                source="outpost/v1/devices/x/fix",
                reasons=("nan", "out_of_range"),
                raw=b"x" * 10_000,
                device_id="x",
            ),
            RejectedMessage(received_at=T0, source="/osmand", reasons=("unknown_device",), raw=b"{}"),
        ]
    )
    assert count_rejected(store) == 2
    assert count_rejected(store, "nan") == 1
    assert count_rejected(store, "unknown_device") == 1
    assert count_rejected(store, "future") == 0
    with store.connect() as conn:
        assert conn.execute(text("SELECT max(length(raw)) FROM rejected_messages")).scalar() == 4096


def test_writes_from_worker_threads(store: Engine) -> None:
    writer = FixWriter(store)
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda d=d: results.append(writer.write([fix(d, T0), fix(d, T0)])))
        for d in ("a", "b", "c")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [1, 1, 1]


def test_postgres_geometry_is_the_fix_position(pg_engine: Engine) -> None:
    FixWriter(pg_engine).write([fix("a", T0, lon=-122.41, lat=37.77)])
    with pg_engine.connect() as conn:
        x, y, srid = conn.execute(text("SELECT ST_X(geom), ST_Y(geom), ST_SRID(geom) FROM fixes")).one()
    assert (x, y, srid) == (-122.41, 37.77, 4326)


# ------------------------------------------------------------------ unavailable vs bug


def test_refused_connection_is_unavailable() -> None:
    engine = open_engine(f"postgresql://outpost@127.0.0.1:{free_port()}/outpost", pool_size=1)
    with pytest.raises(StoreUnavailable):
        FixWriter(engine).write([fix("a", T0)])
    engine.dispose()


def test_connection_killed_mid_write_is_unavailable_then_recovers(
    pg_engine: Engine, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = FixWriter(pg_engine)
    writer.write([fix("a", T0)])  # the pooled connection now has its staging table
    admin = open_engine(pg_url, pool_size=1)
    original = FixWriter._write_pg

    def killed_first(self: FixWriter, raw: Any, fixes: Any) -> int:
        # Fault injection: the server ends this session after checkout, as a restart or failover would.
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": raw.driver_connection.info.backend_pid}
            )
        return original(self, raw, fixes)

    monkeypatch.setattr(FixWriter, "_write_pg", killed_first)
    batch = [fix("a", T0 + timedelta(seconds=s)) for s in range(1, 50)]
    with pytest.raises(StoreUnavailable):
        writer.write(batch)
    monkeypatch.setattr(FixWriter, "_write_pg", original)
    assert writer.write(batch) == 49  # nothing half-written; a fresh connection got a fresh staging table
    assert count_fixes(pg_engine) == 50
    admin.dispose()


def test_statement_timeout_is_unavailable_and_connection_stays_usable(pg_engine: Engine, pg_url: str) -> None:
    writer = FixWriter(pg_engine, statement_timeout_s=0.2)
    blocker = open_engine(pg_url, pool_size=1)
    with blocker.begin() as conn:
        conn.execute(text("LOCK TABLE fixes IN ACCESS EXCLUSIVE MODE"))
        with pytest.raises(StoreUnavailable):
            writer.write([fix("a", T0)])
    assert writer.write([fix("a", T0)]) == 1
    blocker.dispose()


def test_locked_sqlite_is_unavailable_after_retries(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url, pool_size=1, sqlite_busy_timeout_ms=20)
    writer = FixWriter(engine, sqlite_busy_retries=1)
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreUnavailable):
        writer.write([fix("a", T0)])
    other.execute("ROLLBACK")
    other.close()
    assert writer.write([fix("a", T0)]) == 1
    engine.dispose()


def test_a_bug_is_not_unavailability(tmp_path: Path, pg_cluster: PgCluster) -> None:
    # No schema: the query is wrong for this database, and retrying later would not help.
    bare_sqlite = open_engine(f"sqlite:///{tmp_path / 'bare.db'}", pool_size=1)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        FixWriter(bare_sqlite).write([fix("a", T0)])
    bare_sqlite.dispose()
    bare_pg = open_engine(pg_cluster.url("postgres"), pool_size=1)
    with pytest.raises(Exception) as caught:
        FixWriter(bare_pg).write([fix("a", T0)])
    assert not isinstance(caught.value, StoreUnavailable)
    assert "fixes" in str(caught.value)
    bare_pg.dispose()
