"""The TimescaleDB path. The decision and the statements are tested everywhere; the statements are executed
only where the server offers TimescaleDB (the tests that need it skip with the reason otherwise)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_postgresql.janitor import DatabaseJanitor
from sqlalchemy import Engine, event, inspect, text

from schemas.fix import Fix
from schemas.tables import build_metadata
from store import timescale
from store.engine import open_engine
from store.fixes import FixWriter, count_fixes, fetch_fixes
from store.migrate import detect_flavour, migrate, storage_path
from store.partitions import run_maintenance
from store.presence_tables import CAGG_STATEMENTS
from store.settings import StoreSettings
from tests.support.services import PgCluster

SETTINGS = StoreSettings(retention_days=90, compress_after_days=7)
_names = (f"outpost_empty_{i}" for i in itertools.count())
# Calls into TimescaleDB's API: recorded, and only executed where the extension exists.
_TIMESCALE_API = (
    "create_hypertable(",
    "timescaledb.",
    "add_columnstore_policy(",
    "add_retention_policy(",
    "add_continuous_aggregate_policy(",
)


@pytest.fixture
def empty_pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A database with nothing of Outpost's in it (migrate has to decide everything)."""
    name = next(_names)
    janitor = DatabaseJanitor(user=pg_cluster.user, host="127.0.0.1", port=pg_cluster.port, dbname=name)
    janitor.init()
    try:
        yield pg_cluster.url(name)
    finally:
        janitor.drop()


def timescaledb_available(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).scalar()
        )


def fix(device: str, ts: datetime, lon: float = -122.4) -> Fix:
    return Fix(device_id=device, ts=ts, lon=lon, lat=37.8, received_at=ts)


# ---------------------------------------------------------------- always run


def test_without_the_extension_the_database_gets_partitions(empty_pg_url: str, caplog: Any) -> None:
    engine = open_engine(empty_pg_url, pool_size=1)
    if timescaledb_available(engine):
        pytest.skip("this server offers timescaledb: the partitions fallback is not what it chooses")
    with engine.begin() as conn:
        flavour, has_timescale = detect_flavour(conn)
    assert (flavour.partitioned, flavour.hypertable, has_timescale) == (True, False, False)
    with caplog.at_level(logging.INFO, logger="store.migrate"):
        report = migrate(engine, SETTINGS)
    assert storage_path(report.flavour) == "partitions"
    assert "fixes storage: partitions" in caplog.text  # which path runs is logged at start
    engine.dispose()


def test_version_parsing_and_minimum() -> None:
    assert timescale.parse_version("2.28.1") == (2, 28, 1)
    assert timescale.parse_version("2.29.0-dev") == (2, 29, 0)
    assert timescale.parse_version("2.17.2") < timescale.MIN_VERSION <= timescale.parse_version("2.19.0")


def test_policy_statements_use_the_2x_api() -> None:
    create, columnstore, compress, retain = timescale.policy_statements(SETTINGS)
    assert "create_hypertable('fixes', by_range('ts', INTERVAL '1 day')" in create
    assert "if_not_exists => TRUE" in create and "create_default_indexes => FALSE" in create
    assert "timescaledb.segmentby = 'device_id'" in columnstore
    assert "timescaledb.orderby = 'ts DESC'" in columnstore
    assert (
        compress == "CALL add_columnstore_policy('fixes', after => INTERVAL '7 days', if_not_exists => TRUE)"
    )
    assert (
        retain
        == "SELECT add_retention_policy('fixes', drop_after => INTERVAL '90 days', if_not_exists => TRUE)"
    )
    with pytest.raises(ValueError, match="compress_after_days"):
        timescale.policy_statements(StoreSettings(retention_days=7, compress_after_days=7))


def test_timescaledb_path_issues_its_statements_and_gets_a_plain_geometry(
    empty_pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision is faked (enable → True); TimescaleDB's API calls are recorded and replaced by no-ops,
    everything else (tables, versions, the writer) runs for real on PostgreSQL."""
    engine = open_engine(empty_pg_url, pool_size=2)
    if timescaledb_available(engine):
        pytest.skip("this server offers timescaledb: test_real_timescaledb_* run the real statements")
    monkeypatch.setattr(timescale, "enable", lambda engine, mode="auto": True)
    issued: list[str] = []

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def record(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> tuple[str, Any]:
        if any(call in statement for call in _TIMESCALE_API):
            issued.append(statement)
            return "SELECT 1", None
        return statement, params

    report = migrate(engine, SETTINGS)
    assert (report.timescaledb, report.flavour.hypertable, report.flavour.partitioned) == (True, True, False)
    assert issued == [*timescale.policy_statements(SETTINGS), *CAGG_STATEMENTS]  # fixes, then presence
    with engine.connect() as conn:
        assert conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'fixes'")).scalar() == "r"
        generated = conn.execute(
            text(
                "SELECT attgenerated FROM pg_attribute"
                " WHERE attrelid = 'fixes'::regclass AND attname = 'geom'"
            )
        ).scalar()
        assert generated == ""  # a plain column the writer fills
        live = {c["name"]: c for c in inspect(conn).get_columns("fixes")}
    expected = build_metadata(report.flavour).tables["fixes"]
    assert set(live) == {c.name for c in expected.columns}
    assert live["geom"]["nullable"] is False

    now = datetime.now(UTC)
    writer = FixWriter(engine)
    assert writer.write([fix("a", now, lon=-122.41), fix("a", now), fix("b", now)]) == 2
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM fixes WHERE ST_X(geom) = lon AND ST_Y(geom) = lat")
            ).scalar()
            == 2
        )
    assert run_maintenance(engine, SETTINGS, now) == ([], [])  # retention belongs to TimescaleDB's jobs here

    issued.clear()
    assert migrate(engine, SETTINGS).applied == ()  # the existing table keeps its path
    assert issued == []
    engine.dispose()


# ---------------------------------------------------------------- need TimescaleDB


@pytest.fixture
def ts_engine(empty_pg_url: str) -> Iterator[Engine]:
    engine = open_engine(empty_pg_url, pool_size=2)
    if not timescaledb_available(engine):
        engine.dispose()
        pytest.skip(
            "timescaledb is not in pg_available_extensions on this PostgreSQL (no packages for this "
            "machine); the native partitioning path is tested instead"
        )
    yield engine
    engine.dispose()


def test_real_timescaledb_hypertable_and_policies(ts_engine: Engine) -> None:
    report = migrate(ts_engine, SETTINGS)
    assert report.timescaledb and storage_path(report.flavour) == "timescaledb"
    with ts_engine.connect() as conn:
        dims = conn.execute(
            text(
                "SELECT column_name, time_interval FROM timescaledb_information.dimensions"
                " WHERE hypertable_name = 'fixes'"
            )
        ).all()
        assert dims == [("ts", timedelta(days=1))]
        jobs: dict[str, Any] = dict(
            conn.execute(
                text(
                    "SELECT proc_name, config FROM timescaledb_information.jobs"
                    " WHERE hypertable_name = 'fixes'"
                )
            ).all()
        )
    assert jobs["policy_compression"]["compress_after"] == "7 days"
    assert jobs["policy_retention"]["drop_after"] == "90 days"
    assert migrate(ts_engine, SETTINGS).applied == ()


def test_real_timescaledb_replay_into_compressed_chunk_loses_nothing(ts_engine: Engine) -> None:
    """The staging insert into a compressed chunk: conflicts skipped, every new row kept, geom filled."""
    migrate(ts_engine, SETTINGS)
    day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    writer = FixWriter(ts_engine)
    first = [fix(f"d{i % 5}", day + timedelta(minutes=i)) for i in range(0, 200, 2)]
    assert writer.write(first) == 100
    with ts_engine.begin() as conn:
        conn.execute(text("SELECT compress_chunk(c) FROM show_chunks('fixes') c"))
    replay = [fix(f"d{i % 5}", day + timedelta(minutes=i)) for i in range(200)]  # half conflicts, interleaved
    assert writer.write(replay) == 100
    assert count_fixes(ts_engine) == 200
    assert len({(f.device_id, f.ts) for f in fetch_fixes(ts_engine)}) == 200
    with ts_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM fixes WHERE geom IS NULL")).scalar() == 0
