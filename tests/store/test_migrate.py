"""The schema: migrate creates it, a second run changes nothing, the live database matches the code."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from schemas.tables import build_metadata
from store.engine import open_engine
from store.migrate import STEPS, migrate
from store.settings import StoreSettings


def _settings(url: str) -> StoreSettings:
    return StoreSettings(database_url=url)


def test_second_run_changes_nothing(store_url: str) -> None:
    engine = open_engine(store_url)
    report = migrate(engine, _settings(store_url))
    assert report.applied == ()
    with engine.connect() as conn:
        versions = [r[0] for r in conn.execute(text("SELECT version FROM schema_version ORDER BY version"))]
    assert versions == [version for version, _, _ in STEPS]
    engine.dispose()


def test_live_database_matches_definitions(store_url: str) -> None:
    engine: Engine = open_engine(store_url)
    with engine.connect() as conn:
        report_flavour = migrate(engine, _settings(store_url)).flavour
        expected = build_metadata(report_flavour)
        live = inspect(conn)
        for table in expected.sorted_tables:
            assert live.has_table(table.name), table.name
            live_cols = {c["name"]: c for c in live.get_columns(table.name)}
            assert set(live_cols) == {c.name for c in table.columns}, table.name
            for col in table.columns:
                assert live_cols[col.name]["nullable"] == col.nullable, (table.name, col.name)
                # Generated in code ⇔ generated in the database (fixes.geom differs by storage path).
                assert ("computed" in live_cols[col.name]) == (col.computed is not None), (
                    table.name,
                    col.name,
                )
            live_pk = live.get_pk_constraint(table.name)["constrained_columns"]
            assert live_pk == [c.name for c in table.primary_key.columns], table.name
            live_indexes = {ix["name"] for ix in live.get_indexes(table.name)}
            assert {ix.name for ix in table.indexes} <= live_indexes, table.name
    engine.dispose()


def test_postgres_without_timescaledb_partitions_fixes(pg_engine: Engine) -> None:
    with pg_engine.connect() as conn:
        kind = conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'fixes'")).scalar()
        geom_type = conn.execute(
            text(
                "SELECT type FROM geometry_columns"
                " WHERE f_table_name = 'fixes' AND f_geometry_column = 'geom'"
            )
        ).scalar()
    assert kind == "p"
    assert geom_type == "POINT"
