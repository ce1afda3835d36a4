"""Migration step 11 on TimescaleDB: `patrol_presence` a hypertable, `patrol_presence_cells` its continuous
aggregate, and answers without a unit filter read from it the same as from the rollup. Executed only where
the server offers TimescaleDB (skips with the reason otherwise); that the statements are issued on the
TimescaleDB path, in order, is checked everywhere by tests/store/test_timescale.py."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, text

from store.migrate import migrate
from store.presence import CAGG, PresenceQuery, PresenceSettings, presence_cells
from tests.store.test_presence import CELL_A, CELL_B, T0, seed
from tests.store.test_timescale import SETTINGS, empty_pg_url, ts_engine

__all__ = ["empty_pg_url", "ts_engine"]  # the fixtures, shared


def test_real_timescaledb_presence_aggregate_answers_like_the_rollup(ts_engine: Engine) -> None:
    migrate(ts_engine, SETTINGS)
    with ts_engine.connect() as conn:
        views = conn.execute(
            text("SELECT view_name FROM timescaledb_information.continuous_aggregates")
        ).scalars()
        assert CAGG in set(views)
    seed(ts_engine)
    settings = PresenceSettings(patrol_res=9, max_gap_s=120.0)
    query = PresenceQuery(9, T0, T0 + timedelta(hours=2))
    got = dict(presence_cells(ts_engine, query, settings, T0 + timedelta(hours=10)))
    assert got == {CELL_A: 2650.0, CELL_B: 390.0}
    only_u1 = PresenceQuery(9, T0, T0 + timedelta(hours=2), ("u1",))  # the rollup itself
    assert dict(presence_cells(ts_engine, only_u1, settings, T0 + timedelta(hours=10))) == {
        CELL_A: 250.0,
        CELL_B: 390.0,
    }
