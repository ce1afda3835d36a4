"""Native partitioning (PostgreSQL without TimescaleDB) and retention on every store; clock injected."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import Engine, text

from schemas.fix import Fix, RejectedMessage
from store.engine import open_engine
from store.fixes import FixWriter, count_fixes, count_rejected, fetch_fixes
from store.partitions import DEFAULT_PARTITION, partition_name, run_maintenance
from store.settings import StoreSettings

SETTINGS = StoreSettings(retention_days=90, partition_ahead_days=3)


def noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


def fix(device: str, ts: datetime) -> Fix:
    return Fix(device_id=device, ts=ts, lon=2.35, lat=48.85, received_at=ts)


def partitions(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'fixes'::regclass")
        )
        return {r[0] for r in rows}


def home_of(engine: Engine, device: str) -> str:
    """The partition that physically holds the device's fix."""
    with engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT DISTINCT tableoid::regclass::text FROM fixes WHERE device_id = :d"),
                {"d": device},
            ).scalar_one()
        )


@pytest.fixture
def today(pg_engine: Engine) -> date:
    """Today (UTC), with the partitions of today's window guaranteed, whenever the template was migrated."""
    now = datetime.now(UTC)
    run_maintenance(pg_engine, SETTINGS, now)
    return now.date()


def test_migrate_creates_partitions_from_the_horizon_to_days_ahead(pg_engine: Engine, today: date) -> None:
    expected = {partition_name(today + timedelta(days=d)) for d in range(-90, 4)}
    assert partitions(pg_engine) == expected | {DEFAULT_PARTITION}


def test_maintenance_is_idempotent(pg_engine: Engine, today: date) -> None:
    now = noon(today)
    assert run_maintenance(pg_engine, SETTINGS, now) == ([], [])
    assert run_maintenance(pg_engine, SETTINGS, now) == ([], [])


def test_days_later_new_partitions_are_made_and_expired_ones_dropped_with_their_fixes(
    pg_engine: Engine, today: date
) -> None:
    writer = FixWriter(pg_engine)
    writer.write(
        [fix("old", noon(today - timedelta(days=85))), fix("recent", noon(today - timedelta(days=1)))]
    )
    assert home_of(pg_engine, "old") == partition_name(today - timedelta(days=85))

    later = today + timedelta(days=10)
    created, dropped = run_maintenance(pg_engine, SETTINGS, noon(later))
    assert created == [partition_name(today + timedelta(days=d)) for d in range(4, 14)]
    assert dropped == [partition_name(today + timedelta(days=d)) for d in range(-90, -80)]
    assert [f.device_id for f in fetch_fixes(pg_engine)] == ["recent"]
    assert run_maintenance(pg_engine, SETTINGS, noon(later)) == ([], [])


def test_a_fix_for_a_day_without_partition_waits_in_default_then_moves(
    pg_engine: Engine, today: date
) -> None:
    far = today + timedelta(days=10)  # beyond partition_ahead_days
    writer = FixWriter(pg_engine)
    assert writer.write([fix("early", noon(far)), fix("early", noon(far) + timedelta(hours=1))]) == 2
    assert home_of(pg_engine, "early") == DEFAULT_PARTITION

    created, _ = run_maintenance(pg_engine, SETTINGS, noon(far - timedelta(days=2)))
    assert partition_name(far) in created
    assert home_of(pg_engine, "early") == partition_name(far)
    with pg_engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {DEFAULT_PARTITION}")).scalar() == 0
        # The generated point survives the move.
        assert conn.execute(text("SELECT count(*) FROM fixes WHERE ST_X(geom) = lon")).scalar() == 2
    assert writer.write([fix("early", noon(far))]) == 0  # still one key per (device, ts) after the move


def test_default_partition_rows_past_retention_are_deleted(pg_engine: Engine, today: date) -> None:
    FixWriter(pg_engine).write([fix("ancient", noon(today - timedelta(days=120)))])
    assert home_of(pg_engine, "ancient") == DEFAULT_PARTITION
    run_maintenance(pg_engine, SETTINGS, noon(today))
    assert count_fixes(pg_engine) == 0


def test_dead_letters_expire_on_postgres(pg_engine: Engine, today: date) -> None:
    _expire_dead_letters(pg_engine, noon(today))


def test_sqlite_retention_deletes_old_fixes_and_dead_letters(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url, pool_size=1)
    now = datetime(2030, 6, 1, 12, tzinfo=UTC)
    FixWriter(engine).write([fix("old", now - timedelta(days=91)), fix("kept", now - timedelta(days=90))])
    assert run_maintenance(engine, SETTINGS, now) == ([], [])
    assert [f.device_id for f in fetch_fixes(engine)] == ["kept"]
    _expire_dead_letters(engine, now)
    engine.dispose()


def _expire_dead_letters(engine: Engine, now: datetime) -> None:
    FixWriter(engine).write_rejected(
        [
            RejectedMessage(received_at=now - timedelta(days=100), source="t", reasons=("nan",), raw=b"x"),
            RejectedMessage(received_at=now - timedelta(days=1), source="t", reasons=("nan",), raw=b"y"),
        ]
    )
    run_maintenance(engine, SETTINGS, now)
    assert count_rejected(engine) == 1
